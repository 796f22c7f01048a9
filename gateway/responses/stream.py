"""Stream edits for the Responses API's typed events.

Text deltas (``response.output_text.delta``) and the other item events cross as bytes:
they carry no model name. Only the events that describe the whole response are parsed:
``response.created`` (sources, and which replica holds the response), ``completed`` /
``incomplete`` / ``failed`` (citations, timings, usage) and errors.

With ``rag.citations: "strip"`` every event takes the slow path: each text's deltas are
rewritten by its own ``StreamingStripper`` (invented [n] markers removed, a trailing "["
held until decided), and every event that repeats the whole text (``output_text.done``,
``content_part.done``, ``output_item.done``, the final response) carries it stripped.
Only those streams pay.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import ErrorInfo
from gateway.proxy import Observer, Prepared
from gateway.rag.citations import StreamingStripper, strip_invalid
from gateway.relay import data_event, event_json, upstream_error
from gateway.responses.ownership import show_ids
from llm.types import EventStream

_TEXT_DELTA = b"event: response.output_text.delta\n"
_WHOLE = {b"response.created", b"response.in_progress", b"response.completed",
          b"response.incomplete", b"response.failed", b"error"}  # fmt: skip
_LAST = {"response.completed", "response.incomplete", "response.failed"}
# Item events whose text a strip must rewrite; other item events only get renumbered.
_DELTA = b"response.output_text.delta"
_TEXT_DONE = b"response.output_text.done"
_PART = {b"response.content_part.added", b"response.content_part.done"}
_ITEM = {b"response.output_item.added", b"response.output_item.done"}

TextKey = tuple[object, object]


def output_text(response: dict[str, Any]) -> str:
    """The text of a response's message items."""
    return "".join(
        str(part.get("text") or "")
        for item in response.get("output") or []
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict)
    )


def _stripping(prepared: Prepared) -> int | None:
    """How many sources a strip checks markers against; None when the text is kept."""
    rag = prepared.rag
    if rag is None or rag.plan.citations != "strip":
        return None
    return len(rag.sources)


def _strip_part(part: Any, available: int) -> None:
    if isinstance(part, dict) and part.get("type") == "output_text":
        if isinstance(part.get("text"), str):
            part["text"] = strip_invalid(part["text"], available)


def _strip_item(item: Any, available: int) -> None:
    if isinstance(item, dict) and item.get("type") == "message":
        for part in item.get("content") or []:
            _strip_part(part, available)


def _strip_output(response: dict[str, Any], available: int) -> None:
    for item in response.get("output") or []:
        _strip_item(item, available)


def finish_response(prepared: Prepared, response: dict[str, Any], observer: Observer) -> None:
    """A whole response (streamed last event or JSON answer): name, ids, extras, usage."""
    response["model"] = prepared.public_model
    show_ids(prepared.key, response)
    usage = response.get("usage")
    if isinstance(usage, dict):
        observer.usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))
    response.update(prepared.first_extras())
    # The report is about what the model wrote (an invented number is still listed in
    # ``invalid_citations``), so it is read before the text is stripped, as chat does.
    response.update(prepared.final_extras(output_text(response)))
    available = _stripping(prepared)
    if available is not None:
        _strip_output(response, available)


class ResponseEdits:
    def __init__(self, prepared: Prepared, stream: EventStream, observer: Observer) -> None:
        self.finished = False
        self._prepared = prepared
        self._stream = stream
        self._observer = observer
        self._sequence = 0
        self._available = _stripping(prepared)
        # Stripping parses every delta: no prefix (an empty tuple) matches on the fast path.
        self._fast: bytes | tuple[bytes, ...] = _TEXT_DELTA if self._available is None else ()
        self._strippers: dict[TextKey, StreamingStripper] = {}
        self._shift = 0  # events the gateway added: later sequence numbers move up by it

    def plain(self, event: bytes) -> bytes | None:
        if event.startswith(self._fast):
            self._observer.relayed += 1  # one delta, one token: a cut stream's bill
            return event + b"\n\n"
        return None

    async def settle(self) -> None:
        await self._observer.settle()

    def edit(self, event: bytes) -> bytes:
        if event.startswith(b":"):
            return b""
        kind = event[7 : event.find(b"\n")] if event.startswith(b"event: ") else b""
        if kind not in _WHOLE:
            self._observer.first_output()  # the first output item arrives with the first token
            if self._available is None:
                return event + b"\n\n"
            return self._stripped(kind, event, self._available)
        body = event_json(event)
        error = upstream_error(body)
        if error is not None:
            raise error
        self._renumber(body)
        response = body.get("response")
        if isinstance(response, dict):
            response["model"] = self._prepared.public_model
            if kind == b"response.created":
                self._stream.holds(str(response.get("id")))  # the engine's own id
                response.update(self._prepared.first_extras())
            if kind.decode() not in _LAST:
                show_ids(self._prepared.key, response)
                if self._available is not None:
                    _strip_output(response, self._available)
            else:
                self.finished = True
                finish_response(self._prepared, response, self._observer)
        return _framed(kind, body)

    def _stripped(self, kind: bytes, event: bytes, available: int) -> bytes:
        """An item event of a stripping stream: its text stripped, its number shifted."""
        if kind == _DELTA:
            self._observer.relayed += 1
        elif kind not in _PART and kind not in _ITEM and kind != _TEXT_DONE and not self._shift:
            return event + b"\n\n"  # no text, and no number to move
        body = event_json(event)
        out = b""
        if kind == _DELTA:
            delta = str(body.get("delta") or "")
            body["delta"] = self._stripper(body, available).feed(delta) if delta else ""
        elif kind == _TEXT_DONE:
            stripper = self._strippers.pop(_text_key(body), None)
            held = stripper.flush() if stripper is not None else ""
            if held:
                # The held end of the text goes as one more delta before the done event. It
                # takes the done event's number and every later event moves up by one: the
                # numbers stay unique and increasing, as the SDK's ``starting_after`` resume
                # cursor expects (a repeated number could be skipped or replayed there).
                out = _framed(_DELTA, self._renumber(_held_delta(body, held)))
                self._shift += 1
            if isinstance(body.get("text"), str):
                body["text"] = strip_invalid(body["text"], available)
        elif kind in _PART:
            _strip_part(body.get("part"), available)
        elif kind in _ITEM:
            _strip_item(body.get("item"), available)
        return out + _framed(kind, self._renumber(body))

    def _stripper(self, body: dict[str, Any], available: int) -> StreamingStripper:
        key = _text_key(body)
        stripper = self._strippers.get(key)
        if stripper is None:
            stripper = self._strippers[key] = StreamingStripper(available)
        return stripper

    def _renumber(self, body: dict[str, Any]) -> dict[str, Any]:
        number = body.get("sequence_number")
        if isinstance(number, int):
            self._sequence = body["sequence_number"] = number + self._shift
        return body

    def failure(self, error: ErrorInfo) -> bytes:
        return failure_event(error, self._sequence + 1, _response_usage(self._observer.so_far()))


def _text_key(body: dict[str, Any]) -> TextKey:
    """One text of the stream: its item (by id, else by position) and content part."""
    item = body.get("item_id")
    return (item if item is not None else body.get("output_index")), body.get("content_index")


def _held_delta(done: dict[str, Any], text: str) -> dict[str, Any]:
    """A ``response.output_text.delta`` in vLLM's layout, for the text of ``done``."""
    return {
        "content_index": done.get("content_index"),
        "delta": text,
        "item_id": done.get("item_id"),
        "logprobs": [],
        "output_index": done.get("output_index"),
        "sequence_number": done.get("sequence_number"),
        "type": "response.output_text.delta",
    }


def _framed(kind: bytes, body: Any) -> bytes:
    return (b"event: " + kind + b"\n" if kind else b"") + data_event(body)


def failure_event(
    error: ErrorInfo, sequence: int = 0, usage: dict[str, int] | None = None
) -> bytes:
    """The ``error`` event that ends a Responses stream."""
    body: dict[str, Any] = {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "param": error.param,
        "sequence_number": sequence,
        # OpenAI's SDKs raise on an event whose data has an "error" key.
        "error": error.model_dump(),
    }
    if usage is not None:
        body["usage"] = usage
    return b"event: error\n" + data_event(body)


def _response_usage(usage: dict[str, int]) -> dict[str, int]:
    """Chat usage in the Responses API's names."""
    return {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
    }
