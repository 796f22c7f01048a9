"""``ragserve serve --workers N``: N gateway processes on one port, over the real engine."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL_NAME
from tests.support.processes import REPO, free_port, stop, wait_http

pytestmark = pytest.mark.engine


def ragserve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", *args],
            cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_workers_share_one_port_and_relay_streams(
    engine_url: str, artifacts_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    # A Qdrant server backend (here unreachable: chats then answer without retrieval); the
    # embedded store admits one process, which the next test shows is refused.
    env = {
        "RAGSERVE_QDRANT_URL": f"http://127.0.0.1:{free_port()}",
        "RAGSERVE_DATA_DIR": str(tmp_path),
        "RAGSERVE_ENGINE_HEALTH_INTERVAL_S": "0",
    }
    log = artifacts_dir / "serve-workers.log"
    process = ragserve(
        ["--engine-url", engine_url, "--port", str(port), "--workers", "2"], env, log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", process, 300, log)
        body = {"model": MODEL_NAME, "stream": True, "max_tokens": 4, "ignore_eos": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip

        def ask(_: int) -> list[str]:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as r:
                assert r.status_code == 200
                return [line for line in r.iter_lines() if line.startswith("data: ")]

        with ThreadPoolExecutor(8) as pool:
            streams = list(pool.map(ask, range(8)))
        assert all(frames[-1] == "data: [DONE]" for frames in streams)
        assert len(children(process.pid)) >= 2  # uvicorn's workers under the supervisor
    finally:
        stop(process, grace=60)


def test_workers_with_the_embedded_store_are_refused_with_the_reason(
    engine_url: str, artifacts_dir: Path, tmp_path: Path
) -> None:
    env = {"RAGSERVE_DATA_DIR": str(tmp_path)}
    log = artifacts_dir / "serve-workers-refused.log"
    process = ragserve(["--engine-url", engine_url, "--workers", "2"], env, log)
    assert process.wait(120) != 0
    assert "needs a Qdrant server" in log.read_text()
