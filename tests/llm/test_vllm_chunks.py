"""Parsing vLLM's chunk JSON into engine-neutral deltas."""

from __future__ import annotations

import pytest

from llm.types import Delta, EngineError, Usage
from llm.vllm_client import _parse_chunk, _status_error, normalise_base_url


def test_text_finish_and_usage_chunks() -> None:
    text = '{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}'
    assert _parse_chunk(text) == Delta(text="Hi")
    finish = '{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}'
    assert _parse_chunk(finish) == Delta(finish_reason="length")
    usage = '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    assert _parse_chunk(usage) == Delta(usage=Usage(3, 2))


def test_role_only_chunk_is_skipped() -> None:
    assert _parse_chunk('{"choices":[{"delta":{"role":"assistant","content":""}}]}') is None


def test_error_chunk_and_garbage_raise() -> None:
    with pytest.raises(EngineError, match="boom"):
        _parse_chunk('{"error":{"message":"boom","code":500}}')
    with pytest.raises(EngineError, match="unreadable"):
        _parse_chunk("{not json")


@pytest.mark.parametrize(
    ("status", "expected"), [(400, 400), (422, 400), (404, 404), (503, 503), (500, 502)]
)
def test_upstream_status_mapping(status: int, expected: int) -> None:
    error = _status_error(status, b'{"error":{"message":"nope","code":400}}')
    assert error.status == expected
    assert "nope" in error.message


def test_base_url_forms() -> None:
    for url in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"):
        assert normalise_base_url(url) == "http://h:1"
