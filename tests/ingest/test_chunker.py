"""Chunker: token-bounded, structure-first, word-aligned, overlapping, exact slices."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import pytest

from ingest.chunker import Chunker, chunk_sections, chunk_spans, token_counter
from ingest.loaders import Document, Section
from retrieval.embedder import Embedder


def words(texts: Sequence[str]) -> list[int]:
    """A stand-in tokenizer: one token per word."""
    return [len(t.split()) for t in texts]


def paragraph(tag: str, sentences: int, words_each: int = 8) -> str:
    return " ".join(
        " ".join(f"{tag}{s}w{w}" for w in range(words_each)) + "." for s in range(sentences)
    )


def assert_well_formed(text: str, spans: list[tuple[int, int, int]], max_tokens: int) -> None:
    """In order, covering every word, within the bound, never cut inside a word."""
    assert spans
    for start, end, tokens in spans:
        assert tokens <= max_tokens
        assert start == 0 or text[start - 1].isspace()
        assert end == len(text) or text[end].isspace()
        assert not text[start].isspace() and not text[end - 1].isspace()
    starts = [s for s, _, _ in spans]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    covered = set()
    for start, end, _ in spans:
        covered |= {m.start() + start for m in re.finditer(r"\S+", text[start:end])}
    assert covered == {m.start() for m in re.finditer(r"\S+", text)}  # no word left out


def test_a_short_section_is_one_chunk() -> None:
    assert chunk_spans("Just a few words here.", words, max_tokens=50) == [(0, 22, 5)]


def test_long_text_is_split_within_bounds_in_order_and_covers_everything() -> None:
    text = "\n\n".join(paragraph(f"p{i}", sentences=3 + i % 4) for i in range(12))
    spans = chunk_spans(text, words, max_tokens=40, overlap=8)
    assert len(spans) > 5
    assert_well_formed(text, spans, 40)


def test_paragraphs_that_fit_are_kept_whole() -> None:
    first, second = paragraph("a", 3), paragraph("b", 3)  # 24 words each
    text = f"{first}\n\n{second}"
    spans = chunk_spans(text, words, max_tokens=40, overlap=0)
    assert [text[s:e] for s, e, _ in spans] == [first, second]


def test_long_paragraphs_are_cut_between_sentences() -> None:
    text = paragraph("s", sentences=10)  # 80 words, sentences of 8
    spans = chunk_spans(text, words, max_tokens=30, overlap=0)
    assert_well_formed(text, spans, 30)
    assert all(text[e - 1] == "." for _, e, _ in spans)


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    text = paragraph("o", sentences=12, words_each=5)
    spans = chunk_spans(text, words, max_tokens=30, overlap=10)
    assert_well_formed(text, spans, 30)
    for (s1, e1, _), (s2, _, _) in itertools.pairwise(spans):
        shared = text[s2:e1]
        assert 0 < len(shared.split()) <= 10
        assert text[s1:e1].endswith(shared)
        assert shared.split()[0].endswith("w0")  # the overlap starts at a sentence start


def test_no_overlap_means_consecutive_chunks_touch_nothing() -> None:
    text = paragraph("n", sentences=12)
    spans = chunk_spans(text, words, max_tokens=30, overlap=0)
    for (_, e1, _), (s2, _, _) in itertools.pairwise(spans):
        assert s2 > e1


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    text = " ".join(f"w{i}" for i in range(100)) + "."
    spans = chunk_spans(text, words, max_tokens=16, overlap=4)
    assert_well_formed(text, spans, 16)


def test_a_single_word_longer_than_a_chunk_is_cut_inside_it() -> None:
    blob = "x" * 400
    text = f"before {blob} after"
    spans = chunk_spans(text, lambda ts: [len(t) // 10 + 1 for t in ts], max_tokens=10)
    assert "".join(text[s:e] for s, e, _ in spans if "x" in text[s:e]).count("x") >= 400
    assert all(t <= 10 for _, _, t in spans)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_spans("text", words, max_tokens=4)
    with pytest.raises(ValueError):
        chunk_spans("text", words, max_tokens=64, overlap=40)


def test_chunks_carry_section_metadata_and_exact_offsets() -> None:
    sections = [
        Section("Intro words here.", None, page=1),
        Section(paragraph("b", 6), "Body", page=2),
    ]
    chunks = chunk_sections(sections, words, max_tokens=20, overlap=4)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].section is None and chunks[0].page == 1
    assert {c.section for c in chunks[1:]} == {"Body"} and {c.page for c in chunks[1:]} == {2}
    for chunk in chunks:
        owner = sections[0] if chunk.section is None else sections[1]
        assert owner.text[chunk.start : chunk.end] == chunk.text


def test_chunker_stamps_document_identity() -> None:
    doc = Document("d1", "docs/d1.md", "Title", "h", [Section("One two three.", "S")])
    (chunk,) = Chunker(lambda s: len(s.split()), max_tokens=16, overlap=2).chunk(doc)
    assert (chunk.doc_id, chunk.source, chunk.title, chunk.section) == (
        "d1", "docs/d1.md", "Title", "S",
    )  # fmt: skip


def test_real_tokenizer_counts_are_exact_and_within_the_model_window(embedder: Embedder) -> None:
    tokenizer = embedder.tokenizer
    text = "\n\n".join(
        f"Section {i}: the collector (node #{i}) ingests 48,000 events/s; see RS-55{i:02d}, "
        "e.g. https://example.org/a_b?c=d. " * 6
        for i in range(8)
    )
    spans = chunk_spans(text, token_counter(tokenizer), max_tokens=64, overlap=16)
    assert_well_formed(text, spans, 64)
    for start, end, tokens in spans:
        exact = len(tokenizer(text[start:end], add_special_tokens=False)["input_ids"])
        assert exact == tokens
