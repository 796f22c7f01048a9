"""HTTP edge of chat completions: JSON in, JSON or SSE out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from gateway._disconnect import ClientDisconnected, until_disconnect
from gateway.admission import Slot
from gateway.auth import ApiKey
from gateway.chat.protocol import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gateway.chat.service import ChatService, PreparedChat
from gateway.deps import api_key
from gateway.errors import ERROR_RESPONSES, ErrorInfo, error_body
from gateway.lifecycle import Lifecycle
from gateway.timing import Timings
from llm.types import Generation

router = APIRouter()


def chunk_wire(chunk: ChatCompletionChunk) -> dict[str, Any]:
    """OpenAI's chunk JSON: absent optional deltas dropped, ``finish_reason`` always present."""
    body = chunk.model_dump(mode="json", exclude_none=True)
    for choice in body["choices"]:
        choice.setdefault("finish_reason", None)
        choice.setdefault("logprobs", None)
    return body


SHUTTING_DOWN = ErrorInfo(
    message="the server is shutting down and ended this stream; retry the request",
    type="server_error",
    code="server_shutting_down",
)


async def sse_events(
    service: ChatService, chat: PreparedChat, generation: Generation, lifecycle: Lifecycle
) -> AsyncIterator[dict[str, str]]:
    stream = service.stream(chat, generation)
    try:
        while True:
            # The drain deadline may cut a wait for the next chunk (the engine is aborted).
            scope = lifecycle.stream_scope()
            try:
                with scope:
                    item = await stream.__anext__()
            except StopAsyncIteration:
                break
            finally:
                lifecycle.release(scope)
            if scope.cancelled_caught:
                yield {"data": json.dumps(error_body(SHUTTING_DOWN))}
                break
            if isinstance(item, ErrorInfo):
                yield {"data": json.dumps(error_body(item))}
                break
            yield {"data": json.dumps(chunk_wire(item), separators=(",", ":"))}
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
    yield {"data": "[DONE]"}


async def _finish(generation: Generation, slot: Slot) -> None:
    try:
        await generation.aclose()
    finally:
        slot.release()


async def _admit_and_start(
    request: Request,
    service: ChatService,
    body: ChatCompletionRequest,
    timings: Timings,
    key: ApiKey | None,
) -> tuple[Slot, PreparedChat, Generation]:
    slot = await request.app.state.admission.admit(key)
    try:
        chat = await service.prepare(body, timings, key)
        return slot, chat, await service.start(chat)
    except BaseException:
        slot.release()
        raise


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={**ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    key: Annotated[ApiKey | None, Depends(api_key)],
) -> Response:
    service: ChatService = request.app.state.chat
    # A request that still got in while draining is served: uvicorn has stopped accepting
    # connections, so refusing it would only lose the request in that short window.
    lifecycle: Lifecycle = request.app.state.lifecycle
    timings = Timings()
    try:
        # A client that leaves while queued, retrieving or waiting for the engine's answer
        # must not leave work behind: the start is cancelled, which aborts it in the engine.
        slot, chat, generation = await until_disconnect(
            request, _admit_and_start(request, service, body, timings, key)
        )
    except ClientDisconnected:
        return Response(status_code=499)
    if body.stream:
        # sse-starlette cancels the generator when the client disconnects; the service
        # then closes the engine stream, which aborts the request in vLLM.
        # The background close covers a client gone before the first event was pulled.
        return EventSourceResponse(
            sse_events(service, chat, generation, lifecycle),
            ping=15,
            # Our drain deadline ends streams with an error event; sse-starlette's own
            # exit handling would cut them at once, so it waits a little longer.
            shutdown_grace_period=lifecycle.drain_timeout_s + 5,
            background=BackgroundTask(_finish, generation, slot),
            # What is known before the first byte; the rest travels in the final chunk.
            headers={"Server-Timing": timings.header(total=False)},
        )
    try:
        completion = await until_disconnect(request, service.complete(chat, generation))
    except ClientDisconnected:
        return Response(status_code=499)
    finally:
        slot.release()
    return JSONResponse(
        completion.model_dump(mode="json"), headers={"Server-Timing": timings.header()}
    )
