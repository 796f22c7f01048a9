"""The vector store failing under a chat: degrade (answer without context) or 503, per setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, gateway_process

pytestmark = pytest.mark.engine

QUESTION = {"model": "docs", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def _gateway(engine_url: str, on_error: str, log: Path) -> Iterator[str]:
    env = {
        "RAGSERVE_ENGINE_URLS": engine_url,
        # A Qdrant server nobody runs: every search fails to connect.
        "RAGSERVE_QDRANT_URL": f"http://127.0.0.1:{free_port()}",
        "RAGSERVE_ON_STORE_ERROR": on_error,
    }
    with gateway_process(env, log) as url:
        yield url


@pytest.fixture(scope="module")
def degrading_gateway(engine_url: str, artifacts_dir: Path) -> Iterator[str]:
    yield from _gateway(engine_url, "degrade", artifacts_dir / "gateway-degrade.log")


@pytest.fixture(scope="module")
def strict_gateway(engine_url: str, artifacts_dir: Path) -> Iterator[str]:
    yield from _gateway(engine_url, "error", artifacts_dir / "gateway-strict.log")


def test_degrade_answers_without_context_and_says_why(degrading_gateway: str) -> None:
    for _ in range(3):  # every time, not just the first
        response = httpx.post(f"{degrading_gateway}/v1/chat/completions", json=QUESTION, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["choices"][0]["message"]["content"]
        assert body["sources"] == []
        assert body["rag"]["degraded"] is True and "unavailable" in body["rag"]["reason"]


def test_degrade_in_a_stream_flags_the_first_chunk(degrading_gateway: str) -> None:
    with httpx.stream("POST", f"{degrading_gateway}/v1/chat/completions",
                      json={**QUESTION, "stream": True}, timeout=60) as response:  # fmt: skip
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith("data: {"))
    assert '"degraded":true' in first


def test_error_mode_is_503_in_openai_shape(strict_gateway: str) -> None:
    for stream in (False, True):
        response = httpx.post(f"{strict_gateway}/v1/chat/completions",
                              json={**QUESTION, "stream": stream}, timeout=60)  # fmt: skip
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "store_unavailable" and error["type"] == "server_error"
    # A plain chat does not need the store and still works.
    plain = {**QUESTION, "model": "smollm2-135m-instruct"}
    assert httpx.post(f"{strict_gateway}/v1/chat/completions", json=plain, timeout=60).is_success
