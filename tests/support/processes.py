"""Real server processes for tests: free ports, start, wait, stop by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not up after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_gateway(env: Mapping[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """Start a real ``uvicorn gateway.app:create_app`` process (not waiting for it)."""
    scratch = tempfile.mkdtemp(prefix="ragserve-store-")  # never the repo's data/qdrant
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAGSERVE_QDRANT_PATH": scratch, **env}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--timeout-graceful-shutdown", "60",
            ],
            cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@contextmanager
def gateway_process(
    env: Mapping[str, str],
    log: Path,
    *,
    port: int | None = None,
    ready_path: str = "/healthz",
    timeout: float = 300.0,  # a bound for a busy machine, not a speed goal
) -> Iterator[str]:
    """A real ``uvicorn gateway.app:create_app`` process; yields its base URL."""
    port = port or free_port()
    process = start_gateway(env, log, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + ready_path, process, timeout, log)
        yield url
    finally:
        stop(process)


@contextmanager
def python_module_process(
    module: str, args: list[str], log: Path, ready_url: str
) -> Iterator[None]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_http(ready_url, process, 30.0, log)
        yield
    finally:
        stop(process)
