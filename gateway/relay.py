"""The hot path: relay an engine's event stream to the client as bytes.

Events are found by their blank-line boundary in the raw bytes. Each endpoint says, through
its ``StreamEdits``, which events cross on the fast path (bytes, with at most one
precomputed replacement) and which it must parse and change (the first, the finish, usage,
errors). Events that arrive together leave together, in one write.

Line ends: vLLM frames with LF. Any CR is framing too (JSON escapes CR inside strings), so
CRLF framing is folded to LF once per read; a lone-CR framing is not supported. Nothing
splits at U+2028 or NEL: those are not SSE line ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import anyio

from gateway.errors import ErrorInfo, as_api_error
from llm.types import EngineError, EngineLost, EventStream

log = logging.getLogger("ragserve.relay")

DONE = b"data: [DONE]\n\n"
SHUTTING_DOWN = ErrorInfo(
    message="the server is shutting down and ended this stream; retry the request",
    type="server_error",
    code="server_shutting_down",
)


def data_event(body: Any) -> bytes:
    """One ``data:`` event; ASCII-only JSON, so no client can split it at U+2028."""
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def event_json(event: bytes) -> Any:
    """The JSON of an event's ``data:`` line(s) (vLLM sends one line per event)."""
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return json.loads(b"\n".join(lines))


def upstream_error(body: Any) -> EngineError | None:
    """An error the engine sent inside its stream, if ``body`` is one."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if error is None and body.get("object") != "error" and body.get("type") != "error":
        return None
    detail = error if isinstance(error, dict) else body
    return EngineError(str(detail.get("message") or detail))


class StreamEdits(Protocol):
    """What one endpoint changes in its stream."""

    finished: bool  # the stream's last event was seen

    def plain(self, event: bytes) -> bytes | None:
        """The framed event for the fast path, or None if it needs ``edit``."""

    def edit(self, event: bytes) -> bytes:
        """Slow path: the framed event(s) to send instead (b"" drops it).

        Raises ``EngineError`` for an error the engine reported in the stream.
        """

    def failure(self, error: ErrorInfo) -> bytes:
        """The framed error event and whatever ends the stream after it."""

    async def settle(self) -> None:
        """A stream cut short: account for its usage before ``failure`` reports it."""


class DrainWatch(Protocol):
    def watch(self, on_deadline: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_deadline`` when the drain deadline passes; returns an unwatch."""


class _Drained:
    __slots__ = ("hit", "stream")

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.hit = False

    def __call__(self) -> None:
        self.hit = True
        self.stream.abort()  # the pending read ends; vLLM sees the disconnect and aborts


async def _failed(edits: StreamEdits, error: ErrorInfo) -> bytes:
    await edits.settle()
    return edits.failure(error)


async def relay(
    stream: EventStream, edits: StreamEdits, lifecycle: DrainWatch
) -> AsyncIterator[bytes]:
    """The client's body: the engine's events, edited where the endpoint says."""
    drained = _Drained(stream)
    unwatch = lifecycle.watch(drained)
    pending = b""
    try:
        async for data in stream:
            if pending:
                data = pending + data
            if b"\r" in data:
                data = data.replace(b"\r\n", b"\n")
                if data.endswith(b"\r"):  # half a CRLF: wait for its LF
                    pending = data
                    continue
            *events, pending = data.split(b"\n\n")
            out = []
            for event in events:
                framed = edits.plain(event)
                if framed is None:
                    framed = edits.edit(event) if event else b""
                out.append(framed)
                if edits.finished:
                    break
            if out:
                yield b"".join(out)
            if edits.finished:
                return
        if pending.strip() and not drained.hit:  # a last event without its blank line
            framed = edits.plain(pending) or edits.edit(pending)
            yield framed
            if edits.finished:
                return
        if drained.hit:
            yield await _failed(edits, SHUTTING_DOWN)
        else:
            raise EngineLost("the engine stream ended before the generation finished")
    except EngineError as exc:
        yield await _failed(edits, SHUTTING_DOWN if drained.hit else as_api_error(exc).info())
    except Exception as exc:  # every failure becomes an error event
        yield await _failed(edits, as_api_error(exc).info())
    finally:
        unwatch()
        if edits.finished:
            stream.completed()
        else:
            # Closed early (the client left, or a failure): drop the engine's connection now,
            # so vLLM stops generating at once, not when the response's cleanup runs.
            with anyio.CancelScope(shield=True):
                await stream.aclose()
