"""Where a gateway that holds an embedded store can be reached.

The embedded engines admit one process per folder. While a gateway runs it holds the
store, and it leaves its address in ``<store>/gateway.json`` (an absolute path: the store's
is); the CLI (``cli.stack``) then sends its work to that gateway's HTTP API instead of
failing on a lock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gateway.settings import Settings

GATEWAY_FILE = "gateway.json"


def address_file(settings: Settings) -> Path:
    return settings.qdrant_path / GATEWAY_FILE


def advertise(settings: Settings) -> Path | None:
    """Record where this gateway listens, for CLI calls on the same store (embedded only)."""
    if settings.store_backend == "server":
        return None
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    path = address_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": f"http://{host}:{settings.port}", "pid": os.getpid()}))
    tmp.replace(path)
    return path


def withdraw(path: Path | None) -> None:
    if path is not None:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def gateway_url(settings: Settings) -> str:
    """The gateway holding the embedded store (its advertised address, else the settings')."""
    try:
        return str(json.loads(address_file(settings).read_text())["url"])
    except (OSError, ValueError, KeyError):
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        return f"http://{host}:{settings.port}"
