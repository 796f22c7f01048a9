"""A stream that ends early is still billed: the tokens relayed so far and the prompt's,
in /metrics (all and per key), in a log line, and in the error event.

In-process: the relay and the app over the replaying engine (tests/support/replay_engine.py)
cut on cue (fault injection), and a client that leaves, driven through the ASGI app's own
``receive``/``send``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.app import create_app
from gateway.auth import ApiKey, digest
from gateway.chunk_edits import CHAT_TEXT, COMPLETION_TEXT, ChunkEdits, chat_texts, completion_texts
from gateway.lifecycle import Lifecycle
from gateway.metrics import Metrics
from gateway.proxy import Observer, Prepared
from gateway.relay import StreamEdits, relay
from gateway.responses.stream import ResponseEdits
from gateway.timing import Timings
from llm.types import EngineCall, EngineLost, EventStream
from tests.gateway.test_proxy import _STACKS, settings_for, store_path  # noqa: F401 - fixture
from tests.support.replay_engine import MODEL, ReplayEngine, ReplayStream, Script, recording

KEY = ApiKey(name="billing-team", sha256=digest("usage-secret"))
PROMPT_TOKENS = 21


def prepared(path: str = "/v1/chat/completions") -> Prepared:
    return Prepared(EngineCall(path, b"{}"), True, MODEL, MODEL, Timings(), include_usage=True)


def observer(metrics: Metrics, p: Prepared, counted: list[int]) -> Observer:
    async def count() -> int:
        counted.append(1)
        return PROMPT_TOKENS

    return Observer(metrics, p.timings, key=KEY, count_prompt=count)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


EditsOf = Callable[[Prepared, EventStream, Observer], StreamEdits]


def chat(p: Prepared, stream: EventStream, o: Observer) -> StreamEdits:
    return ChunkEdits(p, o, pattern=CHAT_TEXT, texts_of=chat_texts)


def completion(p: Prepared, stream: EventStream, o: Observer) -> StreamEdits:
    return ChunkEdits(p, o, pattern=COMPLETION_TEXT, texts_of=completion_texts)


def responses(p: Prepared, stream: EventStream, o: Observer) -> StreamEdits:
    return ResponseEdits(p, stream, o)


def run(script: Script, edits_of: EditsOf, metrics: Metrics, counted: list[int],
        *, drain: bool = False) -> tuple[str, Observer]:  # fmt: skip
    p = prepared()
    o = observer(metrics, p, counted)

    async def main() -> bytes:
        lifecycle = Lifecycle(30)
        stream = ReplayStream(script)
        out = []
        async for part in relay(stream, edits_of(p, stream, o), lifecycle):
            out.append(part)
            if drain:
                lifecycle._end_streams()  # the drain deadline passes mid-stream
        return b"".join(out)

    return anyio.run(main).decode(), o


def events_of(raw: bytes) -> list[bytes]:
    return [e + b"\n\n" for e in raw.split(b"\n\n") if e]


@pytest.mark.parametrize(
    ("name", "edits_of"),
    [("chat.sse", chat), ("completion.sse", completion), ("response.sse", responses)],
)  # fmt: skip
def test_the_relayed_count_is_the_engines_completion_tokens(name: str, edits_of: EditsOf) -> None:
    """One content event is one token on vLLM: the count a cut stream is billed by."""
    raw = recording(name)
    metrics, counted = Metrics(), list[int]()
    _, o = run(Script([raw]), edits_of, metrics, counted)
    usage = [json.loads(e.split(b"data: ", 1)[1]) for e in events_of(raw) if b'"usage":{' in e]
    last = usage[-1].get("response", usage[-1])["usage"]
    engine_count = last.get("completion_tokens", last.get("output_tokens"))
    assert o.relayed == engine_count
    # A finished stream is billed once, by the engine's own figures; nothing is counted.
    assert sample(metrics, "ragserve_tokens_total", direction="out") == engine_count
    anyio.run(o.settle)
    assert sample(metrics, "ragserve_tokens_total", direction="out") == engine_count
    assert not counted


def test_what_the_event_count_misses() -> None:
    """Known limits of one-event-one-token: with ``n`` > 1 each choice's role chunk counts
    (n - 1 too many), and a tool-call parser that buffers tokens sends fewer events."""
    for name, off in (("chat_n2_logprobs.sse", +1), ("chat_tool_call.sse", -30)):
        _, o = run(Script([recording(name)]), chat, Metrics(), [])
        usage = json.loads(events_of(recording(name))[-2].split(b"data: ", 1)[1])["usage"]
        assert o.relayed == usage["completion_tokens"] + off, name


def test_an_engine_failure_mid_stream_bills_what_was_relayed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = events_of(recording("chat.sse"))
    metrics, counted = Metrics(), list[int]()
    with caplog.at_level(logging.INFO, logger="ragserve.usage"):
        body, o = run(Script(events[:5], fail_with=EngineLost("reset")), chat, metrics, counted)
    error = json.loads(body.split("\n\n")[-3][6:])
    relayed = 4  # events 2..5 carry a token each; the first (role) none
    assert error["error"]["type"] == "server_error"
    assert error["usage"] == {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": relayed,
                              "total_tokens": PROMPT_TOKENS + relayed}  # fmt: skip
    assert sample(metrics, "ragserve_tokens_total", direction="in") == PROMPT_TOKENS
    assert sample(metrics, "ragserve_tokens_total", direction="out") == relayed
    assert sample(metrics, "ragserve_key_tokens_total", key="billing-team",
                  direction="out") == relayed  # fmt: skip
    line = next(r for r in caplog.records if r.name == "ragserve.usage")
    assert line.__dict__["key"] == "billing-team" and line.__dict__["complete"] is False
    assert line.__dict__["completion_tokens"] == relayed
    anyio.run(o.settle)  # the stream's end settles again: billed once
    assert sample(metrics, "ragserve_tokens_total", direction="out") == relayed
    assert counted == [1]


def test_the_drain_deadline_bills_what_was_relayed() -> None:
    events = events_of(recording("chat.sse"))
    metrics, counted = Metrics(), list[int]()
    body, _ = run(Script([b"".join(events[:4])], hang=True), chat, metrics, counted, drain=True)
    error = json.loads(body.split("\n\n")[-3][6:])
    assert error["error"]["code"] == "server_shutting_down"
    assert error["usage"]["completion_tokens"] == 3
    assert error["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert sample(metrics, "ragserve_key_tokens_total", key="billing-team", direction="in") == 21


def test_a_responses_error_event_carries_usage_in_its_own_names() -> None:
    raw = recording("response.sse")
    cut = raw[: raw.index(b"event: response.completed")]
    body, o = run(Script([cut]), responses, Metrics(), [])
    error = json.loads(body.strip().split("\n\n")[-1].split("data: ", 1)[1])
    assert error["usage"]["input_tokens"] == PROMPT_TOKENS
    assert error["usage"]["output_tokens"] == o.relayed > 0


def test_a_client_that_leaves_is_billed_for_what_it_was_sent(store_path: Path) -> None:  # noqa: F811
    events = events_of(recording("chat.sse"))
    engine = ReplayEngine(streams={
        "/v1/chat/completions": lambda: Script([b"".join(events[:6])], hang=True)})  # fmt: skip
    settings = settings_for(store_path, api_keys=[KEY.model_dump()])
    app = create_app(settings, engine=engine, retrieval=_STACKS[settings.qdrant_path])
    messages = [{"role": "user", "content": "say hi to me"}]
    request = json.dumps({"model": MODEL, "stream": True, "messages": messages}).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 9), "server": ("t", 80),
        "headers": [(b"host", b"t"), (b"content-type", b"application/json"),
                    (b"authorization", b"Bearer usage-secret")],
    }  # fmt: skip
    received = bytearray()
    gone = anyio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": request, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        received.extend(message.get("body", b""))
        if received.count(b'"content":"') >= 6:  # every replayed event arrived: leave
            gone.set()

    async def main() -> None:
        async with app.router.lifespan_context(app):
            with anyio.fail_after(10):
                await app(scope, receive, send)  # returns after the stream's end settled

    anyio.run(main)
    metrics: Metrics = app.state.metrics
    prompt = sum(len(json.dumps(m).split()) for m in engine.received[0]["messages"])
    assert engine.opened[0].closed  # the engine's work was aborted
    assert sample(metrics, "ragserve_tokens_total", direction="out") == 5
    assert sample(metrics, "ragserve_tokens_total", direction="in") == prompt
    assert sample(metrics, "ragserve_key_tokens_total", key="billing-team",
                  direction="out") == 5  # fmt: skip
