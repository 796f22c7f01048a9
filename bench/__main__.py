"""``python -m bench``: the comparison run (see bench/compare.py)."""

import sys

from bench.compare import main

sys.exit(main())
