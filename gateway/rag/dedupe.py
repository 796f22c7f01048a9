"""Collapse retrieved passages that carry the same text (two copies of a file, a paragraph
pasted into several documents), so each takes one slot in the prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence

from retrieval.types import SearchHit

_SHINGLE = 3  # words per shingle: order matters, so a reshuffled paragraph is not a copy


def normalized(text: str) -> str:
    return " ".join(text.split())


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < _SHINGLE:
        return frozenset([tuple(words)])
    return frozenset(tuple(words[i : i + _SHINGLE]) for i in range(len(words) - _SHINGLE + 1))


def jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def collapse_duplicates(
    hits: Sequence[SearchHit], similarity: float = 1.0
) -> list[tuple[SearchHit, list[SearchHit]]]:
    """Each distinct passage once, best-ranked first, with the hits it stands for.

    ``similarity`` >= 1.0 collapses only texts equal after whitespace normalisation; below
    that, also those whose word-shingle Jaccard similarity reaches it.
    """
    groups: list[tuple[SearchHit, list[SearchHit]]] = []
    exact: dict[str, int] = {}
    near: list[frozenset[tuple[str, ...]]] = []
    for hit in hits:
        key = normalized(hit.text)
        found = exact.get(key)
        mine = shingles(key) if similarity < 1.0 else frozenset()
        if found is None and similarity < 1.0:
            found = next((i for i, s in enumerate(near) if jaccard(mine, s) >= similarity), None)
        if found is not None:
            groups[found][1].append(hit)
            continue
        exact[key] = len(groups)
        near.append(mine)
        groups.append((hit, []))
    return groups
