"""What the vLLM client makes of the engine's refusals, its URLs and its in-stream errors."""

from __future__ import annotations

import pytest

from gateway.relay import upstream_error
from llm.vllm_client import normalise_base_url, status_error


@pytest.mark.parametrize(
    ("status", "expected"), [(400, 400), (422, 400), (404, 404), (503, 503), (500, 502)]
)
def test_upstream_status_mapping(status: int, expected: int) -> None:
    error = status_error(status, b'{"error":{"message":"nope","code":400}}')
    assert error.status == expected
    assert "nope" in error.message


def test_a_refusal_keeps_vllms_words_and_names_the_parameter() -> None:
    body = (
        b'{"error":{"message":"bad temperature","type":"Bad Request","param":"body.temperature"}}'
    )
    error = status_error(400, body)
    assert error.message == "bad temperature" and error.param == "temperature"
    assert status_error(400, b"not json at all").message == "not json at all"


def test_in_stream_errors_are_recognised() -> None:
    assert upstream_error({"error": {"message": "boom"}}) is not None
    assert upstream_error({"object": "error", "message": "boom"}) is not None
    assert upstream_error({"choices": []}) is None


def test_base_url_forms() -> None:
    for url in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"):
        assert normalise_base_url(url) == "http://h:1"
