"""The value every format loader returns: a title (if the file has one) and sections."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading (or one PDF page); chunks never span two."""

    text: str
    title: str | None = None
    page: int | None = None


Loaded = tuple[str | None, list[Section]]
