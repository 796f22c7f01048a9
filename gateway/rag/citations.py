"""Find the [n] markers an answer used, check them against its sources, and strip the
invented ones (``rag.citations: "strip"``), also while the answer streams."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# [1], [1, 3], [1][2], [1-2] are all common ways models cite.
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,–-]\s*\d{1,3})*)\]")
# What a streamed text holds back at its end: trailing spaces and what may be or become a
# marker ("[", "[1,", "[7]"), since whether the spaces go depends on the marker, and
# whether a marker's spaces go depends on the character after it.
_UNDECIDED = re.compile(r"[ \t]*(?:\[[\d\s,–-]{0,40}\]?){0,8}$")


def cited_numbers(text: str, available: int) -> list[int]:
    """Source numbers cited in ``text``, in first-cited order, within 1..available."""
    return _numbers(text, available)[0]


def _numbers(text: str, available: int) -> tuple[list[int], list[int]]:
    valid: list[int] = []
    invalid: list[int] = []
    for match in _MARKER.finditer(text):
        for number in _expand(match.group(1)):
            seen = valid if 1 <= number <= available else invalid
            if number not in seen:
                seen.append(number)
    return valid, invalid


def citation_report(text: str, sources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The finish extras: valid numbers (``citations``, as before), the sources they name,
    and the numbers no passage carries (``invalid_citations``: the model made them up)."""
    valid, invalid = _numbers(text, len(sources))
    cited = [
        {
            "id": n,
            "doc_id": sources[n - 1].get("doc_id"),
            "chunk_id": sources[n - 1].get("chunk_id"),
        }
        for n in valid
    ]
    return {"citations": valid, "invalid_citations": invalid, "cited_sources": cited}


def strip_invalid(text: str, available: int) -> str:
    """``text`` with every number that names no source removed from its marker, and a
    marker left empty removed whole (with the space before it)."""
    out: list[str] = []
    last = 0
    for match in _MARKER.finditer(text):
        numbers = _expand(match.group(1))
        if all(1 <= n <= available for n in numbers):
            continue
        start = match.start()
        kept = [n for n in numbers if 1 <= n <= available]
        if kept:
            replacement = "[" + ", ".join(str(n) for n in dict.fromkeys(kept)) + "]"
        else:
            replacement = ""
            # "See [7]." reads "See." but "or [7][2]" keeps its space: "or [2]".
            if not text.startswith("[", match.end()):
                while start > last and text[start - 1] in " \t":
                    start -= 1
        out.append(text[last:start])
        out.append(replacement)
        last = match.end()
    out.append(text[last:])
    return "".join(out)


class StreamingStripper:
    """``strip_invalid`` over a streamed text, one choice: the text's undecided end (a
    partial marker, a marker, the spaces before them) is held back until the next delta
    decides it, so no invented marker ever leaves; the rest goes at once."""

    __slots__ = ("_available", "_held")

    def __init__(self, available: int) -> None:
        self._available = available
        self._held = ""

    def feed(self, delta: str) -> str:
        """What of the text so far can be sent now."""
        text = self._held + delta
        undecided = _UNDECIDED.search(text)
        cut = undecided.start() if undecided is not None else len(text)
        self._held = text[cut:]
        return strip_invalid(text[:cut], self._available)

    def flush(self) -> str:
        """The end of the text: whatever was held, decided now."""
        text, self._held = self._held, ""
        return strip_invalid(text, self._available)


def _expand(group: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*,\s*", group):
        bounds = re.split(r"\s*[–-]\s*", part)
        if len(bounds) == 2:
            low, high = int(bounds[0]), int(bounds[1])
            if 0 < high - low <= 20:
                numbers.extend(range(low, high + 1))
                continue
        numbers.extend(int(b) for b in bounds)
    return numbers
