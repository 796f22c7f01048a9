"""A real Redis server (Debian's redis-server) on loopback, started and stopped by PID."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.support.processes import free_port, stop


@contextmanager
def redis_server(log: Path) -> Iterator[str]:
    """Yields ``redis://127.0.0.1:PORT/0`` for a fresh, persistence-free server."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (the Makefile's sysdeps target installs it)")
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
             "no", "--protected-mode", "yes"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{log.read_text()}") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        stop(process)
