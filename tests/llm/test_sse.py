"""The SSE parser: framing rules from the WHATWG event-stream format."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from llm.sse import ServerSentEvent, SSEDecoder, iter_sse


def feed_all(lines: list[str]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for line in lines if (e := decoder.feed(line)) is not None]
    last = decoder.flush()
    return events + ([last] if last else [])


def test_data_lines_join_with_newlines_and_blank_line_dispatches() -> None:
    assert feed_all(["data: a", "data: b", "", "data: c", ""]) == [
        ServerSentEvent("a\nb"),
        ServerSentEvent("c"),
    ]


def test_comments_are_ignored_and_one_leading_space_is_stripped() -> None:
    assert feed_all([": ping", "data:  two spaces", "data:none", ""]) == [
        ServerSentEvent(" two spaces\nnone")
    ]


def test_event_and_id_fields() -> None:
    assert feed_all(["event: error", "id: 7", "data: {}", ""]) == [
        ServerSentEvent("{}", event="error", id="7")
    ]


def test_unterminated_last_event_is_flushed_and_blank_runs_yield_nothing() -> None:
    assert feed_all(["", "", "data: [DONE]"]) == [ServerSentEvent("[DONE]")]


def test_iter_sse_strips_carriage_returns() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["data: x\r", "\r", "data: y", ""]:
            yield line

    async def collect() -> list[ServerSentEvent]:
        return [event async for event in iter_sse(lines())]

    assert anyio.run(collect) == [ServerSentEvent("x"), ServerSentEvent("y")]
