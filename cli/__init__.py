"""The ``ragserve`` command line: one module per command group (see ``cli.main``)."""

import os

# Weights ship inside packages: never reach for a model hub, and keep its progress bars quiet.
# Set before any command module imports the embedding stack (which reads them on import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
