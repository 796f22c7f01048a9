"""Bad input against the real gateway + engine: each case → its status and OpenAI's shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import MODEL_NAME

pytestmark = pytest.mark.engine

OK_MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"] is None or isinstance(error["code"], str)
    assert error["param"] == param, error
    assert "Traceback" not in response.text
    return dict(error)


BAD_BODIES: list[tuple[str, Any, int, str | None]] = [
    ("missing model", {"messages": OK_MESSAGES}, 400, "model"),
    ("missing messages", {"model": MODEL_NAME}, 400, "messages"),
    ("empty messages", {"model": MODEL_NAME, "messages": []}, 400, "messages"),
    (
        "unknown role",
        {"model": MODEL_NAME, "messages": [{"role": "wizard", "content": "x"}]},
        400,
        "messages[0].role",
    ),
    (
        "user without content",
        {"model": MODEL_NAME, "messages": [{"role": "user"}]},
        400,
        "messages[0]",
    ),
    # Sampling parameters are the engine's to judge: vLLM's refusal comes back as a 400
    # naming the parameter, in OpenAI's shape.
    (
        "temperature not a number",
        {"model": MODEL_NAME, "messages": OK_MESSAGES, "temperature": "x"},
        400,
        "temperature",
    ),
    (
        "temperature negative",
        {"model": MODEL_NAME, "messages": OK_MESSAGES, "temperature": -1},
        400,
        "temperature",
    ),
    (
        "stop not a string",
        {"model": MODEL_NAME, "messages": OK_MESSAGES, "stop": 5},
        400,
        "stop",
    ),
    (
        "max_tokens over the window",
        {"model": MODEL_NAME, "messages": OK_MESSAGES, "max_tokens": 100_000},
        400,
        "max_tokens",
    ),
    # What the gateway acts on, it validates itself.
    (
        "max_tokens zero",
        {"model": MODEL_NAME, "messages": OK_MESSAGES, "max_tokens": 0},
        400,
        "max_tokens",
    ),
    (
        "max_tokens not a number",
        {"model": MODEL_NAME, "messages": OK_MESSAGES, "max_tokens": "x"},
        400,
        "max_tokens",
    ),
    (
        "stream not a bool",
        {"model": MODEL_NAME, "messages": OK_MESSAGES, "stream": "yes please"},
        400,
        "stream",
    ),
    ("body is a list", [1, 2], 400, None),
    ("unknown model", {"model": "gpt-17", "messages": OK_MESSAGES}, 404, "model"),
    (
        "prompt longer than the context",
        {"model": MODEL_NAME, "messages": [{"role": "user", "content": "word " * 5000}]},
        400,
        None,  # code context_length_exceeded, as OpenAI says it
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "param"), [case[1:] for case in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_bad_request_bodies(gateway_url: str, body: Any, status: int, param: str | None) -> None:
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json=body, timeout=30)
    assert_openai_error(response, status, param)


def test_malformed_json_is_400(gateway_url: str) -> None:
    response = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    error = assert_openai_error(response, 400, None)
    assert "JSON" in error["message"]


def test_unknown_route_and_method_use_the_error_shape(gateway_url: str) -> None:
    assert_openai_error(httpx.get(f"{gateway_url}/v1/nope", timeout=10), 404, None)
    assert_openai_error(httpx.get(f"{gateway_url}/v1/chat/completions", timeout=10), 405, None)


def test_models_lists_the_engine_model(gateway_url: str) -> None:
    body = httpx.get(f"{gateway_url}/v1/models", timeout=10).json()
    assert body["object"] == "list"
    assert MODEL_NAME in [card["id"] for card in body["data"]]


def test_health_and_readiness(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/healthz", timeout=10).status_code == 200
    ready = httpx.get(f"{gateway_url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["engine"] is True
