"""Stream edits for OpenAI chunk streams: chat completions and (legacy) completions.

Fast path: a chunk whose choice has ``"finish_reason":null`` and that carries no usage
crosses as bytes, its model name swapped for the public one when they differ. The model
name, finish reason and usage are top-level or choice keys, never inside a JSON string
(quotes are escaped there), so a byte search cannot be fooled by generated text.

Slow path: the first chunk (sources), finish chunks (citations, timings), the usage chunk
(metrics; dropped unless the client asked for it), errors and ``[DONE]``. With
``rag.citations: "strip"``, text chunks take it too: their text is rewritten (invented [n]
markers removed, a trailing partial "[" held back until decided). Only those streams pay.

Each fast-path event adds one to the observer's ``relayed`` count (a token, on vLLM), so a
stream cut before the engine's usage chunk is still billed; the error event carries it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from gateway.errors import ErrorInfo, error_body
from gateway.proxy import Observer, Prepared
from gateway.rag.citations import StreamingStripper, strip_invalid
from gateway.relay import DONE, data_event, event_json, upstream_error

_NOT_FINISHED = b'"finish_reason":null'
_USAGE = b'"usage":{'

TextsOf = Callable[[dict[str, Any]], list[tuple[int, str]]]


def chat_texts(chunk: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (int(c.get("index", 0)), (c.get("delta") or {}).get("content") or "")
        for c in chunk.get("choices") or []
    ]


def completion_texts(chunk: dict[str, Any]) -> list[tuple[int, str]]:
    return [(int(c.get("index", 0)), c.get("text") or "") for c in chunk.get("choices") or []]


# vLLM's own layout of a text chunk, read without a JSON parse; anything else falls back
# to ``texts_of`` on the parsed chunk.
CHAT_TEXT = re.compile(rb'"index":(\d+),"delta":\{"content":"((?:[^"\\]|\\.)*)"')
COMPLETION_TEXT = re.compile(rb'"index":(\d+),"text":"((?:[^"\\]|\\.)*)"')


class TextGatherer:
    """The text of each choice, for citations: fast-path chunks are kept as bytes and read
    once, when a choice finishes."""

    def __init__(self, pattern: re.Pattern[bytes], texts_of: TextsOf) -> None:
        self._pattern = pattern
        self._texts_of = texts_of
        self._raw: list[bytes] = []
        self._texts: dict[int, list[str]] = {}

    def keep(self, event: bytes) -> None:
        self._raw.append(event)

    def add(self, chunk: dict[str, Any]) -> None:
        self._absorb()
        for index, text in self._texts_of(chunk):
            self._texts.setdefault(index, []).append(text)

    def text(self, index: int) -> str:
        self._absorb()
        return "".join(self._texts.get(index, ()))

    def _absorb(self) -> None:
        if not self._raw:
            return
        matches = [self._pattern.search(event) for event in self._raw]
        if all(match is not None for match in matches):
            # One JSON parse for every kept chunk's text, not one a token: each group is a
            # whole JSON string body, so joining them makes a valid JSON array.
            found = [match for match in matches if match is not None]
            texts = json.loads(b'["' + b'","'.join(match.group(2) for match in found) + b'"]')
            for match, text in zip(found, texts, strict=True):
                self._texts.setdefault(int(match.group(1)), []).append(text)
        else:
            for event, maybe in zip(self._raw, matches, strict=True):
                if maybe is not None:
                    text = json.loads(b'"' + maybe.group(2) + b'"')
                    self._texts.setdefault(int(maybe.group(1)), []).append(text)
                else:
                    self.add_parsed(event_json(event))
        self._raw.clear()

    def add_parsed(self, chunk: dict[str, Any]) -> None:
        for index, text in self._texts_of(chunk):
            self._texts.setdefault(index, []).append(text)


class ChunkEdits:
    """``StreamEdits`` for ``chat.completion.chunk`` and ``text_completion`` streams."""

    def __init__(
        self,
        prepared: Prepared,
        observer: Observer,
        *,
        pattern: re.Pattern[bytes],
        texts_of: TextsOf,
    ) -> None:
        self.finished = False
        self._prepared = prepared
        self._observer = observer
        self._first = True
        engine = json.dumps(prepared.engine_model).encode()
        public = json.dumps(prepared.public_model).encode()
        self._swap = (b'"model":' + engine, b'"model":' + public) if engine != public else None
        self._gatherer = TextGatherer(pattern, texts_of) if prepared.rag is not None else None
        self._texts_of = texts_of
        rag = prepared.rag
        self._strip = rag is not None and rag.plan.citations == "strip"
        self._available = len(rag.sources) if rag is not None else 0
        self._strippers: dict[int, StreamingStripper] = {}
        self._slow = True  # every event takes ``edit``: until the first, or when stripping

    def plain(self, event: bytes) -> bytes | None:
        if self._slow or _NOT_FINISHED not in event or _USAGE in event:
            return None
        if not event.startswith(b"data:"):
            return None
        if self._swap is not None:
            event = event.replace(self._swap[0], self._swap[1], 1)
        if self._gatherer is not None:
            self._gatherer.keep(event)
        self._observer.relayed += 1
        return event + b"\n\n"

    def edit(self, event: bytes) -> bytes:
        if event.startswith(b":"):
            return b""  # the upstream's comments (keep-alives): we send our own
        if event.strip() == b"data: [DONE]":
            self.finished = True
            return DONE
        chunk = event_json(event)
        error = upstream_error(chunk)
        if error is not None:
            raise error
        if "model" in chunk:
            chunk["model"] = self._prepared.public_model
        out = b""
        if self._first and chunk.get("choices"):
            self._first = False
            self._slow = self._strip
            self._observer.first_output()
            chunk.update(self._prepared.first_extras())
        texts = self._texts_of(chunk)
        self._observer.relayed += sum(1 for _, text in texts if text)
        if self._gatherer is not None:
            self._gatherer.add(chunk)  # the text as the model wrote it: citations count it
        if self._strip:
            self._strip_choices(chunk)
        finished = [c for c in chunk.get("choices") or [] if c.get("finish_reason") is not None]
        if finished:
            index = int(finished[0].get("index", 0))
            text = self._gatherer.text(index) if self._gatherer is not None else ""
            chunk.update(self._prepared.final_extras(text))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._observer.usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
            if not self._prepared.include_usage:
                if not chunk.get("choices"):
                    return out  # the usage-only chunk the client did not ask for
                chunk["usage"] = None
        return out + data_event(chunk)

    def _strip_choices(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            stripper = self._strippers.get(index)
            if stripper is None:
                stripper = self._strippers[index] = StreamingStripper(self._available)
            text = _text_of(choice)
            out = stripper.feed(text) if text else ""
            if choice.get("finish_reason") is not None:
                out += stripper.flush()
            if out != text:
                _set_text(choice, out)

    async def settle(self) -> None:
        await self._observer.settle()

    def failure(self, error: ErrorInfo) -> bytes:
        # What was spent before the end travels with the error: a billing client loses none.
        return failure_event(error, self._observer.so_far())


def failure_event(error: ErrorInfo, usage: dict[str, int] | None = None) -> bytes:
    """The error event that ends a chat or completion stream (then ``[DONE]``)."""
    body = error_body(error) if usage is None else {**error_body(error), "usage": usage}
    return data_event(body) + DONE


def _text_of(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return delta.get("content") or ""
    return choice.get("text") or ""


def _set_text(choice: dict[str, Any], text: str) -> None:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        delta["content"] = text
    elif isinstance(choice.get("message"), dict):
        choice["message"]["content"] = text
    else:
        choice["text"] = text


def finish_whole(
    prepared: Prepared, body: dict[str, Any], observer: Observer, texts: TextsOf
) -> dict[str, Any]:
    """A whole (non-streamed) answer: public model name, RAG extras, usage metrics."""
    body["model"] = prepared.public_model
    usage = body.get("usage")
    if isinstance(usage, dict):
        observer.usage(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )
    first_text = next((text for index, text in texts(body) if index == 0), "")
    body.update(prepared.first_extras())
    body.update(prepared.final_extras(first_text))
    rag = prepared.rag
    if rag is not None and rag.plan.citations == "strip":
        for choice in body.get("choices") or []:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            if isinstance(text, str):
                _set_text(choice, strip_invalid(text, len(rag.sources)))
    return body
