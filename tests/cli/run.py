"""Run the real ``ragserve`` command (the installed console script) in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.processes import REPO

RAGSERVE = Path(sys.executable).parent / "ragserve"


def ragserve_in(cwd: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``ragserve ARGS`` from the folder ``cwd``, with ``env`` on top of this process's."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120", **env}
    return subprocess.run(
        [str(RAGSERVE), *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def ragserve(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ragserve ARGS`` from the repo, on the embedded store at ``store``."""
    return ragserve_in(REPO, {"RAGSERVE_QDRANT_PATH": str(store)}, *args)
