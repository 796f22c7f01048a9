"""HTTP edge of (legacy) completions: JSON in, JSON or SSE out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.completions.protocol import CompletionRequest
from gateway.deps import KeyDep, ServicesDep
from gateway.errors import ERROR_RESPONSES
from gateway.flow import STREAM_OR_JSON, serve
from gateway.timing import Timings

router = APIRouter()


@router.post("/v1/completions", responses={**ERROR_RESPONSES, **STREAM_OR_JSON})
async def create_completion(
    body: CompletionRequest, request: Request, key: KeyDep, services: ServicesDep
) -> Response:
    timings = Timings()
    raw = await request.json()
    completions = services.completions
    return await serve(
        request,
        services.proxy,
        key,
        lambda: completions.prepare(body, raw, timings, key),
        completions,
    )
