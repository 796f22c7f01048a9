"""Engine faults, injected: unreachable engine, and a scripted upstream dying mid-stream.

The scripted upstream is a fault-injection tool; features are proven on real vLLM elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.gateway.test_errors_engine import assert_openai_error
from tests.support.processes import free_port, gateway_process, python_module_process

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
BODY = {"model": "scripted", "messages": HI}


@pytest.fixture(scope="module")
def dead_engine_gateway(artifacts_dir: Path) -> Iterator[str]:
    env = {"RAGSERVE_ENGINE_URLS": f"http://127.0.0.1:{free_port()}"}
    with gateway_process(env, artifacts_dir / "gateway-dead-engine.log") as url:
        yield url


def test_unreachable_engine_is_503_in_openai_shape(dead_engine_gateway: str) -> None:
    url = f"{dead_engine_gateway}/v1/chat/completions"
    for stream in (False, True):
        response = httpx.post(url, json={**BODY, "stream": stream}, timeout=30)
        error = assert_openai_error(response, 503, None)
        assert error["code"] == "engine_unavailable"
    assert_openai_error(httpx.get(f"{dead_engine_gateway}/v1/models", timeout=30), 503, None)
    assert httpx.get(f"{dead_engine_gateway}/readyz", timeout=30).status_code == 503
    assert httpx.get(f"{dead_engine_gateway}/healthz", timeout=30).status_code == 200


def _gateway_on_faulty_upstream(fault: str, artifacts_dir: Path) -> Iterator[str]:
    port = free_port()
    with python_module_process(
        "tests.support.scripted_upstream",
        ["--port", str(port), "--fault", fault],
        artifacts_dir / f"upstream-{fault}.log",
        f"http://127.0.0.1:{port}/health",
    ):
        env = {
            "RAGSERVE_ENGINE_URLS": f"http://127.0.0.1:{port}",
            "RAGSERVE_ENGINE_TOKEN_GAP_TIMEOUT_S": "1",
            # A whole answer shows no progress: its one bound is the response timeout.
            "RAGSERVE_ENGINE_RESPONSE_TIMEOUT_S": "3",
        }
        with gateway_process(env, artifacts_dir / f"gateway-{fault}.log") as url:
            yield url


@pytest.mark.parametrize("fault", ["drop", "error", "stall"])
def test_engine_failure_mid_stream_is_an_error_event_then_done(
    fault: str, artifacts_dir: Path
) -> None:
    for gateway in _gateway_on_faulty_upstream(fault, artifacts_dir):
        with httpx.stream(
            "POST", f"{gateway}/v1/chat/completions", json={**BODY, "stream": True}, timeout=30
        ) as response:
            assert response.status_code == 200
            frames = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        assert frames[-1] == "[DONE]"
        error = json.loads(frames[-2])["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "server_error"
        text = "".join(json.loads(f)["choices"][0]["delta"].get("content", "") for f in frames[:-2])
        assert text == "one two three"  # what arrived before the failure is kept

        # The SDK raises instead of ending quietly with a truncated answer.
        client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIError):
            for _ in client.chat.completions.create(model="scripted", messages=HI, stream=True):
                pass
        # A non-stream request on the same failure is a 5xx error, not a partial answer.
        response = httpx.post(f"{gateway}/v1/chat/completions", json=BODY, timeout=30)
        assert response.status_code in (502, 504)
        assert "error" in response.json()
