"""Plain text and Markdown, and the decoding every text format shares."""

from __future__ import annotations

import bisect
import codecs
import re

from ingest.loaders._errors import LoadError
from ingest.loaders._types import Loaded, Section

_SAMPLE = 64 * 1024
# Share of control characters (or, with undecodable bytes, of both) above which a file with
# a text extension is treated as binary: real text has almost none.
_MAX_CONTROL_RATIO = 0.10
_MAX_JUNK_RATIO = 0.30
_REPLACEMENT = "\ufffd"


def decode_text(data: bytes, warnings: list[str]) -> str:
    """Decode text: UTF-8, UTF-8 with BOM, UTF-16 with BOM; else UTF-8 with replacement.

    Refuses binary content behind a text extension (NUL bytes, many control characters).
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoadError(f"invalid UTF-16 text: {exc.reason}") from exc
    if b"\x00" in data[:_SAMPLE]:
        raise LoadError("looks binary (contains NUL bytes), not text")
    encoding = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        # Not UTF-8: keep the readable part rather than refuse; the warning says what was lost.
        text = data.decode(encoding, errors="replace")
        warnings.append(
            f"not valid UTF-8: {text.count(_REPLACEMENT)} undecodable byte sequence(s) "
            "replaced with U+FFFD"
        )
    sample = text[:_SAMPLE]
    if sample:
        controls = sum(1 for c in sample if ord(c) < 32 and c not in "\n\r\t\f\v")
        junk = controls + sample.count(_REPLACEMENT)
        if controls / len(sample) > _MAX_CONTROL_RATIO or junk / len(sample) > _MAX_JUNK_RATIO:
            raise LoadError("looks binary (mostly control characters or undecodable bytes)")
    return text


def load_txt(data: bytes, warnings: list[str]) -> Loaded:
    return None, [Section(decode_text(data, warnings))]


# YAML (---) or TOML (+++) front matter: metadata, not prose.
_FRONT_MATTER = re.compile(
    r"\A(?:---|\+\+\+)[ \t]*\r?\n.*?\r?\n(?:---|\+\+\+|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S
)
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.M)


def load_markdown(data: bytes, warnings: list[str]) -> Loaded:
    text = _FRONT_MATTER.sub("", decode_text(data, warnings), count=1)
    return split_on_headings(text)


def split_on_headings(text: str) -> Loaded:
    """Sections between ATX headings, each titled by its heading; fenced code is respected."""
    fences = [m.start() for m in _FENCE.finditer(text)]
    sections: list[Section] = []
    title: str | None = None
    current: str | None = None
    start = 0
    for match in _HEADING.finditer(text):
        # An odd number of fences before it: the '#' line is inside a code block.
        if bisect.bisect_left(fences, match.start()) % 2:
            continue
        sections.append(Section(text[start : match.start()].strip(), current))
        current = match.group(2).strip()
        if title is None and len(match.group(1)) == 1:
            title = current
        start = match.end()
    sections.append(Section(text[start:].strip(), current))
    return title, sections
