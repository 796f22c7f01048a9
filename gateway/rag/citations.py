"""Find the [n] markers an answer used and map them to its sources."""

from __future__ import annotations

import re

# [1], [1, 3], [1][2], [1-2] are all common ways models cite.
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,–-]\s*\d{1,3})*)\]")


def cited_numbers(text: str, available: int) -> list[int]:
    """Source numbers cited in ``text``, in first-cited order, within 1..available."""
    seen: list[int] = []
    for match in _MARKER.finditer(text):
        for number in _expand(match.group(1)):
            if 1 <= number <= available and number not in seen:
                seen.append(number)
    return seen


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
