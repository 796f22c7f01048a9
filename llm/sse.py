"""Incremental parser for Server-Sent Events (the WHATWG event-stream format)."""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    """Feed lines (without their terminator); get an event at each blank line."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):  # comment, e.g. keep-alive pings
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        return None  # "retry" and unknown fields are ignored

    def _dispatch(self) -> ServerSentEvent | None:
        # An event without data lines is not dispatched; its event type is dropped.
        data, event = self._data, self._event
        self._data, self._event = [], None
        if not data:
            return None
        return ServerSentEvent(data="\n".join(data), event=event, id=self._id)

    def flush(self) -> ServerSentEvent | None:
        """The last event of a stream that ended without a blank line, if any."""
        return self._dispatch()


_LINE_END = re.compile(r"\r\n|\r|\n")


class LineSplitter:
    """Split text that arrives in arbitrary pieces at CRLF, LF or CR: the SSE line ends.

    Not ``str.splitlines`` (nor httpx's ``aiter_lines``, built on it): those also split at
    U+2028, U+2029, NEL and form feeds, which JSON carries unescaped inside a data line.
    """

    def __init__(self) -> None:
        self._partial: list[str] = []
        self._skip_lf = False  # the last piece ended in CR: a leading LF completes a CRLF

    def feed(self, text: str) -> list[str]:
        if self._skip_lf and text:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        lines: list[str] = []
        pos = 0
        for match in _LINE_END.finditer(text):
            lines.append("".join(self._partial) + text[pos : match.start()])
            self._partial = []
            pos = match.end()
        if pos < len(text):
            self._partial.append(text[pos:])
        elif lines and text.endswith("\r"):
            self._skip_lf = True
        return lines

    def flush(self) -> list[str]:
        """The last line if the text did not end with a line end."""
        rest, self._partial = "".join(self._partial), []
        return [rest] if rest else []


async def iter_sse(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """Events from an async iterable of lines already split at CR, LF or CRLF only."""
    decoder = SSEDecoder()
    async for line in lines:
        event = decoder.feed(line.rstrip("\r"))
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last


async def iter_sse_bytes(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Events from the raw body of an event stream (``httpx.Response.aiter_bytes()``).

    Chunks may split anywhere: inside a line, a CRLF or a UTF-8 sequence.
    """
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    splitter = LineSplitter()
    decoder = SSEDecoder()
    first = True
    async for chunk in chunks:
        piece = text.decode(chunk)
        if first and piece:
            first = False
            piece = piece.removeprefix("\ufeff")  # a byte-order mark may open the stream
        for line in splitter.feed(piece):
            event = decoder.feed(line)
            if event is not None:
                yield event
    for line in [*splitter.feed(text.decode(b"", final=True)), *splitter.flush()]:
        event = decoder.feed(line)
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last
