"""Properties of what everything else trusts: the chunker and the relay's framing.

Hypothesis generates the inputs; each property states what must hold for all of them.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.chunk_edits import CHAT_TEXT, ChunkEdits, chat_texts
from gateway.lifecycle import Lifecycle
from gateway.metrics import Metrics
from gateway.proxy import Observer, Prepared
from gateway.relay import relay
from gateway.timing import Timings
from ingest.chunker import chunk_sections, chunk_spans, token_counter
from ingest.loaders import Section
from llm.types import EngineCall
from retrieval.embedder import Embedder
from tests.conftest import MODEL_NAME
from tests.support.replay_engine import ReplayStream, Script

# No deadline: a busy 2-core CI machine makes single examples slow, not wrong.
PROPERTY = settings(max_examples=200, deadline=None)

# ----------------------------------------------------------------------------- chunker


def one_per_word(texts: Sequence[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def four_chars_per_token(texts: Sequence[str]) -> list[int]:
    """Long words cost many tokens: exercises the cuts inside over-long words."""
    return [-(-len(t) // 4) for t in texts]


_word = st.one_of(
    st.text(alphabet="abcdeé学.,;:!?'\")-", min_size=1, max_size=12),
    st.text(alphabet="xyz", min_size=40, max_size=300),  # longer than a small chunk
)
_gap = st.sampled_from([" ", "  ", "\t", "\n", "\n\n", " \n \n", ". ", ", ", "\u00a0", "\r\n"])


@st.composite
def section_text(draw: st.DrawFn) -> str:
    words = draw(st.lists(_word, max_size=120))
    gaps = draw(st.lists(_gap, min_size=len(words), max_size=len(words)))
    lead = draw(st.sampled_from(["", " ", "\n\n"]))
    return lead + "".join(w + g for w, g in zip(words, gaps, strict=True))


@st.composite
def sizes(draw: st.DrawFn) -> tuple[int, int]:
    max_tokens = draw(st.integers(8, 80))
    return max_tokens, draw(st.integers(0, max_tokens // 2))


def assert_chunks_cover_in_order(text: str, spans: list[tuple[int, int, int]]) -> None:
    words = {m.start() for m in re.finditer(r"\S", text)}
    if not words:
        assert spans == []
        return
    covered: set[int] = set()
    for start, end, _ in spans:
        piece = text[start:end]
        assert piece and piece == piece.strip(), "a chunk is empty or padded with blanks"
        covered |= set(range(start, end))
    assert words <= covered, "some text is in no chunk"
    assert [s for s, _, _ in spans] == sorted({s for s, _, _ in spans}), "starts not increasing"
    assert [e for _, e, _ in spans] == sorted({e for _, e, _ in spans}), "ends not increasing"


@PROPERTY
@given(text=section_text(), size=sizes())
# Found by this test: a chunk ending where the previous one ended (a repeat, no new words).
@example(text=": : : : : : a ::::::::a : ", size=(8, 4))
def test_chunks_cover_the_text_in_order_within_the_token_bound(
    text: str, size: tuple[int, int]
) -> None:
    max_tokens, overlap = size
    for count in (one_per_word, four_chars_per_token):
        spans = chunk_spans(text, count, max_tokens=max_tokens, overlap=overlap)
        assert_chunks_cover_in_order(text, spans)
        for start, end, tokens in spans:
            assert 0 < tokens <= max_tokens
            # Counted per word; a word cut in pieces costs no more as a whole (subadditive).
            assert sum(count(re.findall(r"\S+", text[start:end]))) <= max_tokens
        assert chunk_spans(text, count, max_tokens=max_tokens, overlap=overlap) == spans


@PROPERTY
@given(text=section_text(), size=sizes())
def test_word_chunks_are_at_least_half_full_and_overlap_at_most_the_overlap(
    text: str, size: tuple[int, int]
) -> None:
    max_tokens, overlap = size
    spans = chunk_spans(text, one_per_word, max_tokens=max_tokens, overlap=overlap)
    for _, _, tokens in spans[:-1]:
        assert tokens >= max_tokens // 2
    for (_, end, _), (start, _, _) in itertools.pairwise(spans):
        shared = text[start:end] if start < end else ""
        assert len(shared.split()) <= overlap


@PROPERTY
@given(texts=st.lists(section_text(), min_size=1, max_size=4), size=sizes())
def test_chunks_never_span_sections_and_are_numbered_in_order(
    texts: list[str], size: tuple[int, int]
) -> None:
    max_tokens, overlap = size
    sections = [Section(text, f"s{i}", page=i) for i, text in enumerate(texts)]
    chunks = chunk_sections(sections, one_per_word, max_tokens=max_tokens, overlap=overlap)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    pages = [c.page for c in chunks if c.page is not None]
    assert len(pages) == len(chunks) and pages == sorted(pages)
    for chunk in chunks:
        assert chunk.page is not None
        assert sections[chunk.page].text[chunk.start : chunk.end] == chunk.text
    assert chunk_sections(sections, one_per_word, max_tokens=max_tokens, overlap=overlap) == chunks


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return Embedder.load().tokenizer


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=section_text())
def test_real_tokenizer_chunks_fit_the_bound(tokenizer: object, text: str) -> None:
    """What the embedding model sees of a chunk is never more tokens than the bound."""
    spans = chunk_spans(text, token_counter(tokenizer), max_tokens=32, overlap=8)
    assert_chunks_cover_in_order(text, spans)
    for start, end, tokens in spans:
        exact = len(tokenizer(text[start:end], add_special_tokens=False)["input_ids"])  # type: ignore[operator]
        assert exact <= tokens <= 32


# -------------------------------------------------------------------------------- SSE

# Anything a data line may hold: every character but CR and LF (U+2028, NEL, form feed...).
_line_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]))


def _split(raw: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(raw) + 1) for c in cuts}), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


@PROPERTY
@given(
    texts=st.lists(st.text(min_size=1), min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
    crlf=st.booleans(),
)
# Found by an earlier SSE property: httpx's line iterator split these, losing the chunk.
@example(texts=["a\u2028b", "\x85", "c\u2029", "\x0c"], cuts=[], crlf=False)
def test_engine_text_survives_the_relay_whatever_the_characters_and_splits(
    texts: list[str], cuts: list[int], crlf: bool
) -> None:
    """vLLM writes JSON with U+2028 or NEL unescaped; the relay splits only at blank lines,
    so the text arrives intact however the bytes were cut, with LF or CRLF framing."""
    base = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": MODEL_NAME}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]  # fmt: skip
    chunks += [
        {**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
        for t in texts
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    end = "\r\n\r\n" if crlf else "\n\n"
    raw = "".join(f"data: {json.dumps(c, ensure_ascii=False, separators=(',', ':'))}{end}"
                  for c in chunks)  # fmt: skip
    raw += f"data: [DONE]{end}"

    async def relayed() -> bytes:
        stream = ReplayStream(Script(_split(raw.encode(), cuts)))
        prepared = Prepared(EngineCall("/v1/chat/completions", b"{}"), True, MODEL_NAME,
                            MODEL_NAME, Timings())  # fmt: skip
        edits = ChunkEdits(prepared, Observer(Metrics(), prepared.timings),
                           pattern=CHAT_TEXT, texts_of=chat_texts)  # fmt: skip
        return b"".join([part async for part in relay(stream, edits, Lifecycle(30))])

    events = [e for e in anyio.run(relayed).decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    bodies = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(b["choices"][0]["delta"].get("content") or "" for b in bodies) == "".join(texts)
