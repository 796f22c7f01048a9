"""The flow every proxied endpoint shares, from admission to a streamed or whole answer.

An endpoint (chat, completions, responses) only decides how RAG changes its request body
(``stage``) and how its answer's events are edited (``Endpoint``); this module does the rest.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from gateway._disconnect import ClientDisconnected, until_disconnect
from gateway.admission import Admission, Slot
from gateway.answer_cache.answers import Answers, CacheUse
from gateway.answer_cache.streams import CachedStream, with_fresh_id
from gateway.auth import ApiKey
from gateway.errors import ErrorInfo, as_api_error
from gateway.lifecycle import Lifecycle
from gateway.metrics import Metrics
from gateway.proxy import Observer, Prepared, count_prompt_tokens, engine_body
from gateway.relay import StreamEdits, relay
from gateway.sse import RelayResponse
from gateway.timing import Timings
from llm.types import Engine, EngineError, EventStream

# Every proxied route answers JSON, or SSE when the request streams.
STREAM_OR_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the engine's answer (JSON, or SSE when streamed), with RAG extras",
        "content": {"application/json": {}, "text/event-stream": {}},
    }
}


@dataclass(frozen=True)
class Services:
    """What the proxied routes need, built once at start-up."""

    engine: Engine
    admission: Admission
    lifecycle: Lifecycle
    metrics: Metrics
    answers: Answers
    keepalive_s: float = 15.0  # SSE comments while a stream waits (retrieval, prefill)


@dataclass(frozen=True)
class Staged:
    """A request past its cheap checks (model, limits, collection, filter). ``complete``
    does the slow rest, retrieval and the prompt; a stream that retrieves opens before."""

    stream: bool
    retrieves: bool
    timings: Timings
    complete: Callable[[], Awaitable[Prepared]]


class Endpoint(Protocol):
    """How one endpoint (chat, completions, responses) edits the engine's answers."""

    def stream_edits(
        self, prepared: Prepared, stream: EventStream, observer: Observer
    ) -> StreamEdits: ...

    def finish(
        self, prepared: Prepared, body: dict[str, Any], observer: Observer
    ) -> dict[str, Any]: ...

    def failure_event(self, error: ErrorInfo) -> bytes:
        """A stream's error event when it fails before the engine's first byte."""


Stage = Callable[[], Awaitable[Staged]]
# Opens a stream before the engine's first byte: proxies and clients see life at once.
OPENED = b": ok\n\n"


async def serve(
    request: Request, services: Services, key: ApiKey | None, stage: Stage, endpoint: Endpoint
) -> Response:
    """Admit and check; then relay the stream or finish the whole answer.

    A stream that retrieves opens as soon as its request is checked, and retrieval, the
    prompt and the engine's acceptance happen inside it (keep-alive comments meanwhile; a
    failure is an error event). Any other request reaches the engine before answering, so
    the engine's refusals keep their HTTP status.
    """
    use = CacheUse.from_header(request.headers.get("cache-control"))
    try:
        # A client that leaves while queued, retrieving or waiting for the engine's answer
        # must not leave work behind: the start is cancelled, which aborts it in the engine.
        slot, checked = await until_disconnect(request, _admit_and_stage(services, key, stage))
    except ClientDisconnected:
        return Response(status_code=499)
    if checked.stream and checked.retrieves:
        opening = _Opening()
        events = _open_then_relay(services, key, checked, endpoint, opening, use)
        return _stream_response(services, slot, checked.timings, opening, events)
    try:
        prepared, stream, kept = await until_disconnect(request, _start(services, checked, use))
        if stream is None and kept is None:
            kept = await until_disconnect(request, services.engine.request(prepared.call))
            background = BackgroundTask(services.answers.keep, prepared.cache_key, kept, use)
        else:
            background = None
    except ClientDisconnected:
        slot.release()
        return Response(status_code=499)
    except Exception as exc:
        slot.release()
        error = as_api_error(exc)
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        slot.release()
        raise
    observer = _observer(services, key, prepared)
    if stream is not None:
        edits = endpoint.stream_edits(prepared, stream, observer)
        opening = _Opening(stream, observer)
        return _stream_response(services, slot, prepared.timings, opening,
                                relay(stream, edits, services.lifecycle))  # fmt: skip
    slot.release()
    assert kept is not None  # a whole answer, from the cache or the engine
    body = endpoint.finish(prepared, _whole_answer(kept), observer)
    return Response(
        engine_body(body),
        media_type="application/json",
        headers={"Server-Timing": prepared.timings.header()},
        background=background,  # kept once the client has it
    )


def _whole_answer(raw: bytes) -> dict[str, Any]:
    """The engine's JSON answer; anything else is the engine failing (502, detail logged)."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        failure = EngineError(f"the engine sent an unreadable answer: {raw[:200]!r}")
        raise as_api_error(failure)
    return body


async def _admit_and_stage(
    services: Services, key: ApiKey | None, stage: Stage
) -> tuple[Slot, Staged]:
    slot = await services.admission.admit(key)
    try:
        return slot, await stage()
    except BaseException:
        slot.release()
        raise


async def _start(
    services: Services, checked: Staged, use: CacheUse
) -> tuple[Prepared, EventStream | None, bytes | None]:
    """Retrieve (if planned), then answer from the cache or submit to the engine: a stream
    returns once the engine accepted it; a whole answer found in the cache comes back."""
    prepared = await checked.complete()
    kept = await services.answers.lookup(prepared.cache_key, use)
    if kept is not None:
        prepared.cached = True
        if prepared.stream:
            return prepared, CachedStream(kept), None
        return prepared, None, with_fresh_id(kept)
    if not prepared.stream:
        return prepared, None, None
    try:
        stream = await services.engine.open_stream(prepared.call)
    except Exception as exc:
        raise as_api_error(exc) from exc
    return prepared, services.answers.recording(stream, prepared.cache_key, use), None


def _observer(services: Services, key: ApiKey | None, prepared: Prepared) -> Observer:
    observer = Observer(
        services.metrics,
        prepared.timings,
        key=key,
        count_prompt=lambda: count_prompt_tokens(services.engine, prepared),
    )
    if prepared.rag is not None:
        observer.prompt_tokens = prepared.rag.prompt_tokens
    return observer


@dataclass
class _Opening:
    """What a stream's cleanup finds: its engine stream and observer, once they exist."""

    stream: EventStream | None = None
    observer: Observer | None = None


async def _open_then_relay(
    services: Services, key: ApiKey | None, checked: Staged, endpoint: Endpoint,
    opening: _Opening, use: CacheUse,
) -> AsyncIterator[bytes]:  # fmt: skip
    yield OPENED
    try:
        prepared, stream, _ = await _start(services, checked, use)
    except Exception as exc:
        yield endpoint.failure_event(as_api_error(exc).info())
        return
    assert stream is not None  # a staged stream prepares a stream
    opening.stream, opening.observer = stream, _observer(services, key, prepared)
    edits = endpoint.stream_edits(prepared, stream, opening.observer)
    async for part in relay(stream, edits, services.lifecycle):
        yield part


def _stream_response(
    services: Services, slot: Slot, timings: Timings, opening: _Opening,
    body: AsyncIterator[bytes],
) -> RelayResponse:  # fmt: skip
    services.metrics.active_streams.inc()
    return RelayResponse(
        body,
        ping=services.keepalive_s,
        sep="\n",
        # Our drain deadline ends streams with an error event; sse-starlette's own
        # exit handling would cut them at once, so it waits a little longer.
        shutdown_grace_period=services.lifecycle.drain_timeout_s + 5,
        background=BackgroundTask(_end_stream, opening, slot, services),
        # What is known before the first byte; the rest travels in the final event.
        headers={"Server-Timing": timings.header(total=False)},
    )


async def _end_stream(opening: _Opening, slot: Slot, services: Services) -> None:
    try:
        if opening.stream is not None:
            await opening.stream.aclose()  # a client gone mid-stream: this aborts the engine
    finally:
        services.metrics.active_streams.dec()
        slot.release()
        if opening.observer is not None:
            await opening.observer.settle()  # after the slot: a cut stream's bill holds none
        await services.answers.keep_stream(opening.stream)  # a finished answer, if recorded
