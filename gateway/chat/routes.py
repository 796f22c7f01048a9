"""HTTP edge of chat completions: JSON in, JSON or SSE out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.chat.protocol import ChatCompletionRequest
from gateway.deps import KeyDep, ServicesDep
from gateway.errors import ERROR_RESPONSES
from gateway.flow import STREAM_OR_JSON, serve
from gateway.timing import Timings

router = APIRouter()


@router.post("/v1/chat/completions", responses={**ERROR_RESPONSES, **STREAM_OR_JSON})
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, key: KeyDep, services: ServicesDep
) -> Response:
    timings = Timings()
    raw = await request.json()  # parsed once by FastAPI; Starlette keeps it
    chat = services.chat
    return await serve(
        request,
        services.proxy,
        key,
        lambda: chat.prepare(body, raw, timings, key),
        chat,
    )
