"""Split documents into chunks measured in the embedding model's tokens.

Structure first: a chunk never spans two sections. Inside a section the text is a run of
words, and every gap between two words has a strength: paragraph break > sentence end >
line break > clause (``,;:``) > plain space. A chunk takes as many words as fit in
``max_tokens`` and ends at the strongest gap it can, as late as possible, provided that
leaves it at least half full; so paragraphs stay whole when they fit, long ones are cut
between sentences, then lines, then words. A chunk never ends mid-word, except inside a
single "word" longer than a whole chunk (a base64 blob, unbroken CJK text), which is cut
between characters.

The next chunk starts up to ``overlap`` tokens before the previous one ended, at the
strongest gap in that window (a sentence start if there is one).

Tokens are counted once per word (one batched tokenizer call per section) and summed; for
WordPiece tokenizers (all-MiniLM-L6-v2) this is exact, as they split on whitespace first.
Chunk text is an exact slice of its section: ``start``/``end`` are offsets into it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.loaders import Document, Section

DEFAULT_MAX_TOKENS = 256
DEFAULT_OVERLAP = 32

# Counts the tokens of many texts in one call.
TokenCounter = Callable[[Sequence[str]], list[int]]

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]»]*$")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_CLAUSE_END = re.compile(r"[,;:—–][\"'”’)\]»]*$")
# Gap strengths between consecutive words; -1 is a cut inside an over-long word.
MID_WORD, SPACE, CLAUSE, LINE, SENTENCE, PARAGRAPH = -1, 0, 1, 2, 3, 4
_COUNT_BATCH = 4096


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage to embed, and where it came from."""

    text: str
    index: int  # position in the document, from 0
    section: str | None
    page: int | None
    start: int  # character offsets into the section's text
    end: int
    tokens: int
    doc_id: str = ""
    source: str = ""
    title: str = ""


def token_counter(tokenizer: Any) -> TokenCounter:
    """A ``TokenCounter`` from a Hugging Face tokenizer or a ``str -> int`` callable."""
    if hasattr(tokenizer, "encode") and callable(tokenizer):

        def count_hf(texts: Sequence[str]) -> list[int]:
            counts: list[int] = []
            for i in range(0, len(texts), _COUNT_BATCH):
                batch = list(texts[i : i + _COUNT_BATCH])
                encoded = tokenizer(batch, add_special_tokens=False)["input_ids"]
                counts.extend(len(ids) for ids in encoded)
            return counts

        return count_hf
    if callable(tokenizer):
        return lambda texts: [int(tokenizer(t)) for t in texts]
    raise TypeError(f"not a tokenizer or token-counting callable: {tokenizer!r}")


def _gap_strength(prev_word: str, gap: str) -> int:
    if "\n" in gap:
        if _BLANK_LINE.search(gap):
            return PARAGRAPH
        if _SENTENCE_END.search(prev_word):
            return SENTENCE
        return LINE
    if _SENTENCE_END.search(prev_word):
        return SENTENCE
    if _CLAUSE_END.search(prev_word):
        return CLAUSE
    return SPACE


def _words(
    text: str, count: TokenCounter, max_tokens: int
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Word spans, their token counts, and the strength of the gap before each word."""
    spans = [m.span() for m in _WORD.finditer(text)]
    counts = count([text[a:b] for a, b in spans])
    strengths = [PARAGRAPH] + [
        _gap_strength(text[spans[i - 1][0] : spans[i - 1][1]], text[spans[i - 1][1] : a])
        for i, (a, _) in enumerate(spans[1:], start=1)
    ]
    if max(counts, default=0) <= max_tokens:
        return spans, counts, strengths
    # Rare: a "word" longer than a chunk. Cut it between characters, pieces that fit.
    out_spans: list[tuple[int, int]] = []
    out_counts: list[int] = []
    out_strengths: list[int] = []
    for (a, b), n, strength in zip(spans, counts, strengths, strict=True):
        pieces = [(a, b)] if n <= max_tokens else _cut_word(text, a, b, n, count, max_tokens)
        piece_counts = [n] if len(pieces) == 1 else count([text[x:y] for x, y in pieces])
        out_spans += pieces
        out_counts += piece_counts
        out_strengths += [strength] + [MID_WORD] * (len(pieces) - 1)
    return out_spans, out_counts, out_strengths


def _cut_word(
    text: str, a: int, b: int, n: int, count: TokenCounter, max_tokens: int
) -> list[tuple[int, int]]:
    width = max(1, int((b - a) * max_tokens / n * 0.8))
    while True:
        pieces = [(i, min(i + width, b)) for i in range(a, b, width)]
        if width == 1 or max(count([text[x:y] for x, y in pieces])) <= max_tokens:
            return pieces
        width = max(1, width // 2)


def chunk_spans(
    text: str,
    count: TokenCounter,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int | None = None,
) -> list[tuple[int, int, int]]:
    """``(start, end, tokens)`` of the chunks of one section's ``text``."""
    overlap = _check(max_tokens, overlap)
    spans, counts, strengths = _words(text, count, max_tokens)
    n = len(spans)
    prefix = [0, *accumulate(counts)]  # tokens of words[i:j] == prefix[j] - prefix[i]
    min_fill = max_tokens // 2
    chunks: list[tuple[int, int, int]] = []
    s = 0
    done = 0  # words already in a chunk: each chunk must end past them, or it repeats one
    while s < n:
        e_max = s + 1
        while e_max < n and prefix[e_max + 1] - prefix[s] <= max_tokens:
            e_max += 1
        if e_max == n:
            e = n
        else:
            # Strongest gap, latest among equals, among cuts leaving the chunk half full.
            e, best = e_max, strengths[e_max]
            for g in range(e_max - 1, max(s, done), -1):
                if prefix[g] - prefix[s] < min_fill:
                    break
                if strengths[g] > best:
                    e, best = g, strengths[g]
        chunks.append((spans[s][0], spans[e - 1][1], prefix[e] - prefix[s]))
        if e == n:
            break
        done = e
        s = _next_start(s, e, prefix, strengths, overlap, max_tokens)
    return chunks


def _next_start(
    s: int, e: int, prefix: list[int], strengths: list[int], overlap: int, max_tokens: int
) -> int:
    """Where the chunk after ``words[s:e]`` starts: back from ``e`` by ≤ ``overlap`` tokens."""
    start, best = e, -2
    g = e - 1
    while g > s and prefix[e] - prefix[g] <= overlap:
        # Ties go to the earlier gap: the longest overlap among the strongest starts.
        if strengths[g] >= best:
            start, best = g, strengths[g]
        g -= 1
    if best < LINE and start < e:
        # No sentence or line start in the window: take the whole window, word-aligned.
        start = g + 1
    # The overlap must leave room for at least one new word, or the chunker would stall.
    if start < e and prefix[e + 1] - prefix[start] > max_tokens:
        start = e
    return start


def _check(max_tokens: int, overlap: int | None) -> int:
    """The overlap to use (default: ``DEFAULT_OVERLAP``, at most half a chunk), or raise."""
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, max_tokens // 2)
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    if not 0 <= overlap <= max_tokens // 2:
        raise ValueError(f"overlap must be within 0..max_tokens/2, got {overlap}")
    return overlap


def chunk_sections(
    sections: Sequence[Section],
    count: TokenCounter,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int | None = None,
) -> list[Chunk]:
    """Chunks of every section, in order, numbered across the document."""
    overlap = _check(max_tokens, overlap)
    chunks: list[Chunk] = []
    for section in sections:
        for start, end, tokens in chunk_spans(
            section.text, count, max_tokens=max_tokens, overlap=overlap
        ):
            chunks.append(
                Chunk(
                    section.text[start:end],
                    len(chunks),
                    section.title,
                    section.page,
                    start,
                    end,
                    tokens,
                )  # fmt: skip
            )
    return chunks


class Chunker:
    """Chunks documents with one tokenizer and one size policy."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        overlap: int | None = None,
    ) -> None:
        self.overlap = _check(max_tokens, overlap)
        self.count = token_counter(tokenizer)
        self.max_tokens = max_tokens

    def chunk(self, document: Document) -> list[Chunk]:
        chunks = chunk_sections(
            document.sections, self.count, max_tokens=self.max_tokens, overlap=self.overlap
        )
        return [
            Chunk(
                c.text,
                c.index,
                c.section,
                c.page,
                c.start,
                c.end,
                c.tokens,
                document.doc_id,
                document.source,
                document.title,
            )  # fmt: skip
            for c in chunks
        ]
