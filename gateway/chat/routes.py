"""HTTP edge of chat completions: JSON in, JSON or SSE out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

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


async def sse_events(
    service: ChatService, chat: PreparedChat, generation: Generation
) -> AsyncIterator[dict[str, str]]:
    async for item in service.stream(chat, generation):
        if isinstance(item, ErrorInfo):
            yield {"data": json.dumps(error_body(item))}
            break
        yield {"data": json.dumps(chunk_wire(item), separators=(",", ":"))}
    yield {"data": "[DONE]"}


async def _finish(generation: Generation, slot: Slot) -> None:
    try:
        await generation.aclose()
    finally:
        slot.release()


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
    timings = Timings()
    slot = await request.app.state.admission.admit(key)
    try:
        chat = await service.prepare(body, timings, key)
        generation = await service.start(chat)
    except BaseException:
        slot.release()
        raise
    if body.stream:
        # sse-starlette cancels the generator when the client disconnects; the service
        # then closes the engine stream, which aborts the request in vLLM.
        # The background close covers a client gone before the first event was pulled.
        return EventSourceResponse(
            sse_events(service, chat, generation),
            ping=15,
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
