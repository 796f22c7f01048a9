"""Split sections into chunks measured in the embedding model's tokens.

Structure first: a chunk never spans two sections; inside a section, text is cut into
sentences (paragraph ends are sentence ends), and a sentence longer than a chunk into runs
of whole words. Chunks are packed greedily from these pieces, so a chunk never ends
mid-word, and the last pieces of a chunk (up to ``overlap`` tokens) start the next one.
Each chunk is an exact slice of its section's text: ``start``/``end`` are its offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingest.documents import Section

DEFAULT_MAX_TOKENS = 250  # all-MiniLM-L6-v2 reads 256 tokens, two of them special
DEFAULT_OVERLAP = 32

# Counts tokens of many texts at once (one tokenizer call per section, not per piece).
TokenCounter = Callable[[Sequence[str]], list[int]]

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n\s*\n")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    index: int  # position in the document
    section: str | None
    page: int | None
    start: int  # offsets into the section's text
    end: int
    tokens: int


def hf_token_counter(tokenizer: object) -> TokenCounter:
    """A counter over a Hugging Face tokenizer, without special tokens."""

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(list(texts), add_special_tokens=False)  # type: ignore[operator]
        return [len(ids) for ids in encoded["input_ids"]]

    return count


def _spans(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-blank spans of ``text`` between matches of ``pattern`` (separators dropped)."""
    spans, start = [], 0
    for match in pattern.finditer(text):
        if text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return [_trim(text, a, b) for a, b in spans]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(text: str, count: TokenCounter, max_tokens: int) -> list[tuple[int, int, int]]:
    """(start, end, tokens) of sentences, long ones cut into word runs that fit."""
    sentences = _spans(text, _SENTENCE_END)
    counts = count([text[a:b] for a, b in sentences])
    pieces: list[tuple[int, int, int]] = []
    for (start, end), tokens in zip(sentences, counts, strict=True):
        if tokens <= max_tokens:
            pieces.append((start, end, tokens))
            continue
        words = [(start + m.start(), start + m.end()) for m in _WORD.finditer(text[start:end])]
        word_tokens = count([text[a:b] for a, b in words])
        run_start, run_tokens = words[0][0], 0
        run_end = run_start
        for (a, b), t in zip(words, word_tokens, strict=True):
            if run_tokens and run_tokens + t > max_tokens:
                pieces.append((run_start, run_end, run_tokens))
                run_start, run_tokens = a, 0
            run_end, run_tokens = b, run_tokens + t
        pieces.append((run_start, run_end, run_tokens))
    return pieces


def chunk_sections(
    sections: Sequence[Section],
    count: TokenCounter,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
    if max_tokens < 8 or not 0 <= overlap < max_tokens // 2:
        raise ValueError("need max_tokens >= 8 and 0 <= overlap < max_tokens / 2")
    chunks: list[Chunk] = []
    for section in sections:
        text = section.text
        pieces = _pieces(text, count, max_tokens)
        i = 0
        while i < len(pieces):
            j, tokens = i, 0
            while j < len(pieces) and (tokens + pieces[j][2] <= max_tokens or j == i):
                tokens += pieces[j][2]
                j += 1
            start, end = pieces[i][0], pieces[j - 1][1]
            chunks.append(
                Chunk(
                    text[start:end], len(chunks), section.title, section.page, start, end, tokens
                )  # fmt: skip
            )
            if j >= len(pieces):
                break
            # Overlap: step back over trailing pieces worth at most ``overlap`` tokens.
            back, carried = j, 0
            while back - 1 > i and carried + pieces[back - 1][2] <= overlap:
                back -= 1
                carried += pieces[back][2]
            i = back
    return chunks
