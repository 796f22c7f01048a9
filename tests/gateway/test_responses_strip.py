"""``rag.citations: "strip"`` on ``/v1/responses``: invented [n] markers leave neither the
streamed deltas nor any event that repeats the whole text, nor a whole answer; the report
still names them. Keep mode leaves the deltas byte for byte as the engine sent them.

In-process over vLLM 0.32-shaped events (built from tests/fixtures/vllm/response.sse with
a text that cites), no engine: the relay and the edits are the gateway's own code.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import openai
import pytest

from gateway.lifecycle import Lifecycle
from gateway.metrics import Metrics
from gateway.proxy import Observer, Prepared
from gateway.rag.citations import strip_invalid
from gateway.relay import relay
from gateway.responses.stream import ResponseEdits, finish_response
from gateway.retrieval_setup import RetrievalStack
from tests.gateway.test_citations import prepared
from tests.gateway.test_stream_open import serving
from tests.gateway.test_stream_open import stack as stack  # the module's seeded store
from tests.support.replay_engine import ReplayEngine, ReplayStream, Script, pieces, recording

# Five sources (test_citations.SOURCES): [7] names none. The text ends on a marker, so
# the stripper still holds " [2]" when the engine's text is done.
DELTAS = ["See", " [", "1", "]", " and", " [", "7", "]", " too", ",", " as", " [", "2", "]"]
WRITTEN = "".join(DELTAS)
STRIPPED = "See [1] and too, as [2]"
SIZES = (1, 7, 40, 333, 100_000)


def response_stream(deltas: list[str]) -> bytes:
    """The recorded Responses stream with ``deltas`` as its text, renumbered."""
    recorded = [e for e in recording("response.sse").decode().split("\n\n") if e]
    parsed = [(e.split("\n")[0][7:], json.loads(e.split("data: ", 1)[1])) for e in recorded]
    first_delta = next(body for kind, body in parsed if kind == "response.output_text.delta")
    text = "".join(deltas)
    events: list[tuple[str, dict[str, Any]]] = []
    for kind, body in parsed:
        if kind == "response.output_text.delta":
            if body is first_delta:
                events += [(kind, {**body, "delta": d}) for d in deltas]
            continue
        if kind == "response.output_text.done":
            body["text"] = text
        elif kind == "response.content_part.done":
            body["part"]["text"] = text
        elif kind == "response.output_item.done":
            body["item"]["content"][0]["text"] = text
        elif kind == "response.completed":
            body["response"]["output"][0]["content"][0]["text"] = text
        events.append((kind, body))
    out = []
    for number, (kind, body) in enumerate(events):
        body["sequence_number"] = number
        out.append(f"event: {kind}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n")
    return "".join(out).encode()


def relayed(raw: bytes, p: Prepared, size: int) -> list[tuple[str, str]]:
    """The gateway's events (kind, data) for ``raw`` cut into ``size``-byte reads."""

    async def main() -> bytes:
        stream = ReplayStream(Script(pieces(raw, size)))
        edits = ResponseEdits(p, stream, Observer(Metrics(), p.timings))
        return b"".join([part async for part in relay(stream, edits, Lifecycle(30))])

    events = [e for e in anyio.run(main).decode().split("\n\n") if e]
    return [(e.split("\n")[0][7:], e.split("data: ", 1)[1]) for e in events]


def whole_texts(events: list[tuple[str, str]]) -> dict[str, str]:
    """Each event kind that repeats the whole text, with the text it carries."""
    out: dict[str, str] = {}
    for kind, data in events:
        body = json.loads(data)
        if kind == "response.output_text.done":
            out[kind] = body["text"]
        elif kind == "response.content_part.done":
            out[kind] = body["part"]["text"]
        elif kind == "response.output_item.done":
            out[kind] = body["item"]["content"][0]["text"]
        elif kind == "response.completed":
            out[kind] = body["response"]["output"][0]["content"][0]["text"]
    return out


def deltas_of(events: list[tuple[str, str]]) -> str:
    return "".join(
        json.loads(data)["delta"] for kind, data in events if kind == "response.output_text.delta"
    )


def completed(events: list[tuple[str, str]]) -> dict[str, Any]:
    kind, data = events[-1]
    assert kind == "response.completed"
    response: dict[str, Any] = json.loads(data)["response"]
    return response


@pytest.mark.parametrize("size", SIZES)
def test_strip_removes_invented_markers_from_every_text_at_any_split(size: int) -> None:
    raw = response_stream(DELTAS)
    events = relayed(raw, prepared("strip"), size)
    assert deltas_of(events) == STRIPPED
    assert whole_texts(events) == dict.fromkeys(
        ["response.output_text.done", "response.content_part.done",
         "response.output_item.done", "response.completed"], STRIPPED,
    )  # fmt: skip
    # The report is about what the model wrote: the stripped [7] is still flagged.
    report = completed(events)
    assert report["citations"] == [1, 2] and report["invalid_citations"] == [7]


def test_the_held_end_goes_as_one_more_delta_and_later_numbers_move_up() -> None:
    raw = response_stream(DELTAS)
    upstream = [e.split("\n")[0][7:] for e in raw.decode().split("\n\n") if e]
    events = relayed(raw, prepared("strip"), 40)
    kinds = [kind for kind, _ in events]
    done = upstream.index("response.output_text.done")
    assert kinds == [*upstream[:done], "response.output_text.delta", *upstream[done:]]
    extra = json.loads(events[done][1])
    assert extra["delta"] == " [2]"  # held back until the text ended
    assert (extra["item_id"], extra["output_index"], extra["content_index"]) == (
        json.loads(events[done + 1][1])["item_id"], 0, 0,
    )  # fmt: skip
    numbers = [json.loads(data)["sequence_number"] for _, data in events]
    assert numbers == list(range(len(events)))  # unique and gapless, as the SDK expects


def test_a_text_ending_on_an_invented_marker_adds_no_event() -> None:
    deltas = ["Only", " [", "1", "]", " and", " [", "7", "]"]
    raw = response_stream(deltas)
    events = relayed(raw, prepared("strip"), 17)
    assert deltas_of(events) == "Only [1] and" == whole_texts(events)["response.completed"]
    assert len(events) == len([e for e in raw.split(b"\n\n") if e])


def test_keep_leaves_the_deltas_byte_for_byte_and_reports_the_invented_marker() -> None:
    raw = response_stream(DELTAS)
    upstream = [e.decode() for e in raw.split(b"\n\n") if e]
    for size in (7, 100_000):
        events = relayed(raw, prepared(), size)
        sent = [f"event: {kind}\ndata: {data}" for kind, data in events]
        upstream_deltas = [e for e in upstream if e.startswith("event: response.output_text.delta")]
        assert [e for e in sent if e.startswith("event: response.output_text.delta")] == (
            upstream_deltas
        )
        assert set(whole_texts(events).values()) == {WRITTEN}
        assert completed(events)["invalid_citations"] == [7]


@pytest.mark.parametrize(
    ("citations", "text"), [("strip", "It is [1] or."), (None, "It is [1] or [6].")]
)
def test_a_whole_answer_is_stripped_only_in_strip_mode(citations: str | None, text: str) -> None:
    p = prepared(citations, stream=False)
    body = json.loads(recording("response.json"))
    body["output"][0]["content"][0]["text"] = "It is [1] or [6]."
    finish_response(p, body, Observer(Metrics(), p.timings))
    assert body["output"][0]["content"][0]["text"] == text
    assert body["citations"] == [1] and body["invalid_citations"] == [6]


def test_the_sdk_reads_a_stripped_stream_and_a_stripped_whole_answer(
    stack: RetrievalStack,
) -> None:
    """Through the gateway's HTTP routes and the openai SDK's own Responses stream parser."""
    answer = json.loads(recording("response.json"))
    answer["output"][0]["content"][0]["text"] = WRITTEN
    replay = ReplayEngine(
        streams={"/v1/responses": lambda: Script(pieces(response_stream(DELTAS), 40))},
        answers={"/v1/responses": json.dumps(answer).encode()},
    )
    rag = {"rag": {"citations": "strip", "top_k": 3}}
    question = "What does error HX-7731 mean?"

    async def main() -> tuple[str, list[str], str, str, Any]:
        async with serving(stack, replay) as url:
            sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            async with sdk.responses.stream(model="docs", input=question, extra_body=rag) as s:
                deltas = [e.delta async for e in s if e.type == "response.output_text.delta"]
                final = await s.get_final_response()
            whole = await sdk.responses.create(model="docs", input=question, extra_body=rag)
            await sdk.close()
            return "".join(deltas), deltas, final.output_text, whole.output_text, final

    streamed, deltas, final_text, whole_text, final = anyio.run(main)
    available = len(final.model_extra["sources"])
    assert 2 <= available < 7  # [1] and [2] name passages, [7] none
    assert streamed == final_text == whole_text == strip_invalid(WRITTEN, available) == STRIPPED
    assert deltas[-1] == " [2]"
    assert final.model_extra["invalid_citations"] == [7]
