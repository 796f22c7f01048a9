"""Citations checked against the passages: valid ones with their sources, invented ones
flagged, and stripped from the text (streamed or whole) when ``rag.citations`` says so.

In-process, over replayed vLLM-shaped streams (no engine): the relay and the edits are
the gateway's own code; what a real model cites is not the point here.
"""

from __future__ import annotations

import json
import random
from typing import Any

import anyio
import pytest

from gateway.chunk_edits import CHAT_TEXT, ChunkEdits, chat_texts, finish_whole
from gateway.lifecycle import Lifecycle
from gateway.metrics import Metrics
from gateway.proxy import Observer, Prepared
from gateway.rag.citations import (
    StreamingStripper,
    citation_report,
    cited_numbers,
    strip_invalid,
)
from gateway.rag.options import RagOptions
from gateway.rag.pipeline import RagContext, RagDefaults, plan_retrieval
from gateway.relay import relay
from gateway.responses.stream import ResponseEdits
from gateway.timing import Timings
from llm.types import EngineCall
from tests.support.replay_engine import MODEL, ReplayStream, Script, pieces, recording

SOURCES = [
    {"id": n, "doc_id": f"doc-{n}", "chunk_id": f"chunk-{n}", "text": f"passage {n}"}
    for n in range(1, 6)
]


def prepared(citations: str | None = None, *, stream: bool = True) -> Prepared:
    options = RagOptions(enabled=True, citations=citations)  # type: ignore[arg-type]
    plan = plan_retrieval(options, None, RagDefaults("docs", 5, "hybrid", None, "degrade"))
    assert plan is not None
    return Prepared(
        call=EngineCall("/v1/chat/completions", b"{}"),
        stream=stream,
        public_model=MODEL,
        engine_model=MODEL,
        timings=Timings(),
        rag=RagContext(plan=plan, query="q", sources=SOURCES),
    )


def chat_stream(texts: list[str]) -> bytes:
    """A vLLM-shaped chat stream: a role chunk, one chunk a text, the last one finishing."""
    events = [{"role": "assistant", "content": ""}] + [{"content": t} for t in texts]
    out = []
    for i, delta in enumerate(events):
        finish = "stop" if i == len(events) - 1 else None
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish}]}  # fmt: skip
        out.append("data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n")
    return ("".join(out) + "data: [DONE]\n\n").encode()


def relayed(raw: bytes, p: Prepared, size: int = 1000) -> list[Any]:
    async def main() -> bytes:
        stream = ReplayStream(Script(pieces(raw, size)))
        edits = ChunkEdits(
            p, Observer(Metrics(), p.timings), pattern=CHAT_TEXT, texts_of=chat_texts
        )
        return b"".join([part async for part in relay(stream, edits, Lifecycle(30))])

    body = anyio.run(main).decode()
    out: list[Any] = []
    for event in body.split("\n\n"):
        if event.startswith("data: "):
            out.append(event[6:] if event == "data: [DONE]" else json.loads(event[6:]))
    return out


def text_of(chunks: list[Any]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in chunks
        if isinstance(c, dict) and c.get("choices")
    )


def test_the_report_lists_valid_numbers_with_their_sources_and_flags_invented_ones() -> None:
    report = citation_report("As [1] and [3, 7] say, and [1-2]; see also [0] and [12].", SOURCES)
    assert report["citations"] == [1, 3, 2]
    assert report["invalid_citations"] == [7, 0, 12]
    assert report["cited_sources"][:2] == [
        {"id": 1, "doc_id": "doc-1", "chunk_id": "chunk-1"},
        {"id": 3, "doc_id": "doc-3", "chunk_id": "chunk-3"},
    ]
    assert cited_numbers("[1] [7]", 5) == [1]  # the old helper keeps its meaning


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("See [2] and [7].", "See [2] and."),
        ("See [7], then [2].", "See, then [2]."),
        ("Both [2, 9] agree.", "Both [2] agree."),
        ("Range [4-6] here.", "Range [4, 5] here."),
        ("No markers at all [a] [ 1 ].", "No markers at all [a] [ 1 ]."),
        ("[9]", ""),
    ],
)
def test_strip_removes_only_what_names_no_passage(text: str, stripped: str) -> None:
    assert strip_invalid(text, 5) == stripped


def test_streamed_stripping_matches_the_whole_text_at_every_split() -> None:
    text = "Answer [1] then [7] and [2, 8] or [9][3] with a lone [ and [12 items [5"
    whole = strip_invalid(text, 5)
    for size in (1, 2, 3, 5, 8, len(text)):
        stripper = StreamingStripper(5)
        out = "".join(stripper.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert out + stripper.flush() == whole, size


def test_streamed_stripping_matches_the_whole_text_for_random_texts() -> None:
    rng = random.Random(14)
    vocab = ["[", "]", "1", "7", ",", " ", "-", "a", ".", "[2]", "[9]", " [", "12"]
    for _ in range(500):
        text = "".join(rng.choice(vocab) for _ in range(rng.randint(0, 30)))
        stripper = StreamingStripper(5)
        out, i = [], 0
        while i < len(text):
            step = rng.randint(1, 4)
            out.append(stripper.feed(text[i : i + step]))
            i += step
        assert "".join(out) + stripper.flush() == strip_invalid(text, 5), text


def test_a_held_partial_marker_is_sent_as_soon_as_it_is_decided() -> None:
    stripper = StreamingStripper(5)
    assert stripper.feed("See [") == "See"
    assert stripper.feed("2") == ""
    assert stripper.feed("] now") == " [2] now"
    assert stripper.feed(" [x") == " [x"  # no number can follow a letter: not a marker


def test_keep_streams_the_text_untouched_and_flags_invented_citations() -> None:
    raw = chat_stream(["See [", "2] and [7]", "."])
    out = relayed(raw, prepared(), size=9)
    assert text_of(out) == "See [2] and [7]."
    finish = out[-2]
    assert finish["citations"] == [2] and finish["invalid_citations"] == [7]
    assert finish["cited_sources"] == [{"id": 2, "doc_id": "doc-2", "chunk_id": "chunk-2"}]
    # Keep mode leaves the text chunks on the fast path: byte for byte as the engine sent.
    for event in raw.decode().split("\n\n")[1:-3]:
        assert event + "\n\n" in "".join(
            "data: " + json.dumps(c, separators=(",", ":")) + "\n\n"
            for c in out
            if isinstance(c, dict)
        )


def test_strip_removes_invented_markers_from_the_stream_at_any_split() -> None:
    texts = ["See [", "2] and [", "7", "]", " then [1, 9]", " end [", "3]"]
    for size in (7, 50, 10_000):
        out = relayed(chat_stream(texts), prepared("strip"), size=size)
        assert text_of(out) == "See [2] and then [1] end [3]"
        assert out[-2]["citations"] == [2, 1, 3]
        assert out[-2]["invalid_citations"] == [7, 9]  # still reported: the model wrote them
        assert out[-1] == "[DONE]"


def test_strip_applies_to_a_whole_answer() -> None:
    p = prepared("strip", stream=False)
    body = json.loads(recording("chat.json"))
    body["choices"][0]["message"]["content"] = "It is [1] or [6]."
    answer = finish_whole(
        p, body, Observer(Metrics(), p.timings), lambda b: [(0, "It is [1] or [6].")]
    )
    assert answer["choices"][0]["message"]["content"] == "It is [1] or."
    assert answer["citations"] == [1] and answer["invalid_citations"] == [6]
    assert answer["cited_sources"][0]["doc_id"] == "doc-1"


def test_the_responses_completed_event_carries_the_report() -> None:
    raw = recording("response.sse")
    p = prepared()

    async def main() -> bytes:
        stream = ReplayStream(Script(pieces(raw, 40)))
        edits = ResponseEdits(p, stream, Observer(Metrics(), p.timings))
        return b"".join([part async for part in relay(stream, edits, Lifecycle(30))])

    last = anyio.run(main).decode().strip().split("\n\n")[-1]
    completed = json.loads(last.split("data: ", 1)[1])["response"]
    assert {"citations", "invalid_citations", "cited_sources"} <= set(completed)


def test_the_control_alone_does_not_turn_retrieval_on() -> None:
    defaults = RagDefaults("docs", 5, "hybrid", None, "degrade")
    assert plan_retrieval(RagOptions(citations="strip"), None, defaults) is None
    plan = plan_retrieval(RagOptions(citations="strip", top_k=2), None, defaults)
    assert plan is not None and plan.citations == "strip"
    with pytest.raises(ValueError):
        RagOptions.model_validate({"citations": "hide"})
