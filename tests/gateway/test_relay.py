"""The byte relay over recorded vLLM streams (replayed, no engine): framing, edits, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from gateway.chunk_edits import CHAT_TEXT, COMPLETION_TEXT, ChunkEdits, chat_texts, completion_texts
from gateway.lifecycle import Lifecycle
from gateway.metrics import Metrics
from gateway.proxy import Observer, Prepared
from gateway.rag.options import RagOptions
from gateway.rag.pipeline import RagContext, RagDefaults, plan_retrieval
from gateway.relay import StreamEdits, relay
from gateway.responses.stream import ResponseEdits
from gateway.timing import Timings
from llm.types import EngineCall, EngineLost, EventStream
from tests.support.replay_engine import MODEL, ReplayStream, Script, pieces, recording


def prepared(*, public: str = MODEL, rag: bool = False, usage: bool = False) -> Prepared:
    context = None
    if rag:
        plan = plan_retrieval(
            RagOptions(enabled=True), None, RagDefaults("docs", 5, "hybrid", None, "degrade")
        )
        assert plan is not None
        context = RagContext(plan=plan, query="q", sources=[{"id": 1}, {"id": 2}])
    return Prepared(
        call=EngineCall("/v1/chat/completions", b"{}"),
        stream=True,
        public_model=public,
        engine_model=MODEL,
        timings=Timings(),
        rag=context,
        include_usage=usage,
    )


def chat_edits(p: Prepared, stream: EventStream) -> StreamEdits:
    return ChunkEdits(p, Observer(Metrics(), p.timings), pattern=CHAT_TEXT, texts_of=chat_texts)


def completion_edits(p: Prepared, stream: EventStream) -> StreamEdits:
    observer = Observer(Metrics(), p.timings)
    return ChunkEdits(p, observer, pattern=COMPLETION_TEXT, texts_of=completion_texts)


def response_edits(p: Prepared, stream: EventStream) -> StreamEdits:
    return ResponseEdits(p, stream, Observer(Metrics(), p.timings))


EditsFor = Callable[[Prepared, EventStream], StreamEdits]


def run(script: Script, p: Prepared, edits: EditsFor = chat_edits) -> bytes:
    async def main() -> bytes:
        stream = ReplayStream(script)
        out = [part async for part in relay(stream, edits(p, stream), Lifecycle(30))]
        return b"".join(out)

    return anyio.run(main)


def events(body: bytes) -> list[str]:
    return [e for e in body.decode().split("\n\n") if e]


def data(body: bytes) -> list[Any]:
    out = []
    for event in events(body):
        line = next(x for x in event.split("\n") if x.startswith("data: "))[6:]
        out.append(line if line == "[DONE]" else json.loads(line))
    return out


def test_any_split_gives_the_same_events() -> None:
    raw = recording("chat.sse")
    whole = without_timings(run(Script([raw]), prepared(usage=True)))
    for size in (1, 2, 3, 7, 64, 333):
        assert without_timings(run(Script(pieces(raw, size)), prepared(usage=True))) == whole


def without_timings(body: bytes) -> list[Any]:
    """The events, minus the finish chunk's timings (they differ run to run)."""
    return [{k: v for k, v in e.items() if k != "timings"} if isinstance(e, dict) else e
            for e in data(body)]  # fmt: skip


def test_chat_stream_passes_through_with_extras_only_where_they_belong() -> None:
    raw = recording("chat.sse")
    out = data(run(Script(pieces(raw, 50)), prepared(usage=True)))
    upstream = data(raw)
    assert out[-1] == "[DONE]" and upstream[-1] == "[DONE]"
    assert len(out) == len(upstream)
    for mine, theirs in zip(out[:-1], upstream[:-1], strict=True):
        extras = set(mine) - set(theirs)
        finished = any(c.get("finish_reason") for c in theirs["choices"])
        assert extras == ({"timings"} if finished else set())
        assert {k: mine[k] for k in theirs} == theirs
    assert out[-2]["usage"]["completion_tokens"] > 0


def test_fast_path_events_cross_byte_identical() -> None:
    raw = recording("chat_tool_call.sse")
    out = run(Script(pieces(raw, 100)), prepared(usage=True)).decode()
    tool_deltas = [e for e in raw.decode().split("\n\n") if '"tool_calls"' in e]
    assert len(tool_deltas) > 2
    for event in tool_deltas[1:]:  # the first event of a stream takes the slow path
        if '"finish_reason":null' in event:
            assert event + "\n\n" in out


def test_usage_chunk_only_when_asked() -> None:
    raw = recording("chat.sse")
    out = data(run(Script([raw]), prepared(usage=False)))
    assert not [c for c in out[:-1] if c.get("usage")]
    assert out[-1] == "[DONE]"


def test_public_model_name_on_every_event() -> None:
    raw = recording("chat_n2_logprobs.sse")
    out = data(run(Script(pieces(raw, 80)), prepared(public="docs", usage=True)))
    assert all(c["model"] == "docs" for c in out[:-1])
    indexes = {c["choices"][0]["index"] for c in out[:-1] if c["choices"]}
    assert indexes == {0, 1}
    logprobs = [c["choices"][0]["logprobs"] for c in out[:-1] if c["choices"]]
    assert any(lp and lp["content"][0]["top_logprobs"] for lp in logprobs)


def test_rag_sources_first_and_citations_at_the_finish() -> None:
    body = (
        "".join(
            f'data: {{"id":"x","object":"chat.completion.chunk","created":1,"model":"{MODEL}",'
            f'"choices":[{{"index":0,"delta":{{"content":"{text}"}},"logprobs":null,'
            f'"finish_reason":{finish}}}]}}\n\n'
            for text, finish in [
                ("", "null"),
                ("See [", "null"),
                ("2] and [7]", "null"),
                (".", '"stop"'),
            ]
        )
        + "data: [DONE]\n\n"
    )
    out = data(run(Script(pieces(body.encode(), 9)), prepared(rag=True)))
    assert out[0]["sources"] == [{"id": 1}, {"id": 2}] and out[0]["rag"]["collection"] == "docs"
    assert "sources" not in out[1]
    assert out[-2]["citations"] == [2]  # [7] names no passage


def test_an_error_event_mid_stream_ends_with_an_openai_error_and_done() -> None:
    raw = recording("chat.sse").split(b"\n\n")
    upstream_error = b'data: {"error": {"message": "boom at 10.0.0.7", "type": "x", "code": 500}}'
    out = data(run(Script([b"\n\n".join([*raw[:3], upstream_error, b""])]), prepared()))
    assert out[-1] == "[DONE]"
    assert out[-2]["error"]["type"] == "server_error"
    assert "10.0.0.7" not in json.dumps(out[-2])  # upstream detail is logged, never sent


def test_a_stream_that_stops_early_is_an_error_not_a_silent_end() -> None:
    raw = recording("chat.sse")
    cut = raw[: raw.index(b'"finish_reason":"')]
    out = data(run(Script([cut]), prepared()))
    assert out[-2]["error"]["code"] is None and out[-2]["error"]["type"] == "server_error"
    out = data(run(Script([raw[:200]], fail_with=EngineLost("reset")), prepared()))
    assert out[-1] == "[DONE]" and "error" in out[-2]


def test_the_last_event_marks_the_stream_complete_before_the_transport_ends() -> None:
    """vLLM's chunked terminator can arrive after [DONE]: the generation still finished."""
    raw = recording("chat.sse")

    async def main(script: Script) -> ReplayStream:
        stream = ReplayStream(script)
        async for _ in relay(stream, chat_edits(prepared(), stream), Lifecycle(30)):
            pass
        return stream

    whole = anyio.run(main, Script([raw], hang=True))  # [DONE], then no end of the body
    assert whole.complete and not whole.closed  # the response's cleanup releases it
    cut = anyio.run(main, Script([raw[: raw.index(b'"finish_reason":"')]]))
    assert not cut.complete and cut.closed  # dropped at once: vLLM stops generating


def test_u2028_and_crlf_framing() -> None:
    text = "a\u2028b\u0085c"
    event = json.dumps(
        {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
        ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip
    first = event.replace(text, "")
    last = event.replace('"finish_reason":null', '"finish_reason":"stop"')
    body = f"data: {first}\r\n\r\ndata: {event}\r\n\r\ndata: {last}\r\n\r\ndata: [DONE]\r\n\r\n"
    raw = body.encode()
    for size in (1, 5, len(raw)):
        out = data(run(Script(pieces(raw, size)), prepared()))
        assert out[1]["choices"][0]["delta"]["content"] == text
        assert out[-1] == "[DONE]"


def test_drain_deadline_ends_a_stream_with_shutting_down() -> None:
    raw = recording("chat.sse").split(b"\n\n")

    async def main() -> bytes:
        lifecycle = Lifecycle(30)
        stream = ReplayStream(Script([b"\n\n".join(raw[:3]) + b"\n\n"], hang=True))
        out: list[bytes] = []
        p = prepared()
        async for part in relay(stream, chat_edits(p, stream), lifecycle):
            out.append(part)
            lifecycle._end_streams()  # the deadline passes while the engine is silent
        assert stream.aborted
        return b"".join(out)

    out = data(anyio.run(main))
    assert out[-2]["error"]["code"] == "server_shutting_down" and out[-1] == "[DONE]"


def test_completions_stream() -> None:
    raw = recording("completion.sse")
    out = data(run(Script(pieces(raw, 33)), prepared(rag=True), completion_edits))
    assert out[0]["object"] == "text_completion" and "sources" in out[0]
    assert "citations" in out[-2] and out[-1] == "[DONE]"


def test_responses_stream_edits_only_whole_response_events() -> None:
    raw = recording("response.sse")
    stream = ReplayStream(Script(pieces(raw, 40)))

    async def main() -> bytes:
        p = prepared(public="docs", rag=True)
        return b"".join([x async for x in relay(stream, response_edits(p, stream), Lifecycle(30))])

    out = anyio.run(main).decode()
    upstream = [e for e in raw.decode().split("\n\n") if e]
    mine = [e for e in out.split("\n\n") if e]
    assert [e.split("\n")[0] for e in mine] == [e.split("\n")[0] for e in upstream]
    for event in upstream:
        if event.startswith("event: response.output_text.delta"):
            assert event in mine
    created = json.loads(mine[0].split("data: ", 1)[1])["response"]
    assert created["model"] == "docs" and created["sources"] == [{"id": 1}, {"id": 2}]
    completed = json.loads(mine[-1].split("data: ", 1)[1])["response"]
    assert completed["model"] == "docs" and "citations" in completed
    assert stream.held == [created["id"]]


@pytest.mark.parametrize("name", ["chat.sse", "chat_n2_logprobs.sse", "chat_tool_call.sse"])
def test_recordings_relay_to_done(name: str) -> None:
    out = data(run(Script(pieces(recording(name), 17)), prepared(usage=True)))
    assert out[-1] == "[DONE]" and not any("error" in c for c in out[:-1])
