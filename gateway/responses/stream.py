"""Stream edits for the Responses API's typed events.

Text deltas (``response.output_text.delta``) and the other item events cross as bytes:
they carry no model name. Only the events that describe the whole response are parsed:
``response.created`` (sources, and which replica holds the response), ``completed`` /
``incomplete`` / ``failed`` (citations, timings, usage) and errors.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import ErrorInfo
from gateway.proxy import Observer, Prepared
from gateway.relay import data_event, event_json, upstream_error
from gateway.responses.ownership import show_ids
from llm.types import EventStream

_TEXT_DELTA = b"event: response.output_text.delta\n"
_WHOLE = {b"response.created", b"response.in_progress", b"response.completed",
          b"response.incomplete", b"response.failed", b"error"}  # fmt: skip
_LAST = {"response.completed", "response.incomplete", "response.failed"}


def output_text(response: dict[str, Any]) -> str:
    """The text of a response's message items."""
    return "".join(
        str(part.get("text") or "")
        for item in response.get("output") or []
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict)
    )


def finish_response(prepared: Prepared, response: dict[str, Any], observer: Observer) -> None:
    """A whole response (streamed last event or JSON answer): name, ids, extras, usage."""
    response["model"] = prepared.public_model
    show_ids(prepared.key, response)
    usage = response.get("usage")
    if isinstance(usage, dict):
        observer.usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))
    response.update(prepared.first_extras())
    response.update(prepared.final_extras(output_text(response)))


class ResponseEdits:
    def __init__(self, prepared: Prepared, stream: EventStream, observer: Observer) -> None:
        self.finished = False
        self._prepared = prepared
        self._stream = stream
        self._observer = observer
        self._sequence = 0

    def plain(self, event: bytes) -> bytes | None:
        if event.startswith(_TEXT_DELTA):
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
            return event + b"\n\n"
        body = event_json(event)
        error = upstream_error(body)
        if error is not None:
            raise error
        self._sequence = int(body.get("sequence_number") or self._sequence)
        response = body.get("response")
        if isinstance(response, dict):
            response["model"] = self._prepared.public_model
            if kind == b"response.created":
                self._stream.holds(str(response.get("id")))  # the engine's own id
                response.update(self._prepared.first_extras())
            if kind.decode() not in _LAST:
                show_ids(self._prepared.key, response)
            elif kind.decode() in _LAST:
                self.finished = True
                finish_response(self._prepared, response, self._observer)
        return b"event: " + kind + b"\n" + data_event(body)

    def failure(self, error: ErrorInfo) -> bytes:
        return failure_event(error, self._sequence + 1, _response_usage(self._observer.so_far()))


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
