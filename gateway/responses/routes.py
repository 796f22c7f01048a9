"""HTTP edge of the Responses API: create (JSON or SSE), retrieve and cancel."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.auth import ApiKey
from gateway.deps import KeyDep, ServicesDep
from gateway.errors import ERROR_RESPONSES, InvalidRequest, NotFound, as_api_error
from gateway.flow import STREAM_OR_JSON, serve
from gateway.responses.protocol import ResponsesRequest
from gateway.timing import Timings
from llm.vllm_client import status_error

router = APIRouter()


@router.post("/v1/responses", responses={**ERROR_RESPONSES, **STREAM_OR_JSON})
async def create_response(
    body: ResponsesRequest, request: Request, key: KeyDep, services: ServicesDep
) -> Response:
    timings = Timings()
    raw = await request.json()
    responses = services.responses
    return await serve(
        request,
        services.proxy,
        key,
        lambda: responses.prepare(body, raw, timings, key),
        responses,
    )


_RESPONSE_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")


async def _forward(
    services: ServicesDep,
    key: ApiKey | None,
    method: str,
    path: str,
    response_id: str,
    query: str = "",
) -> Response:
    if not _RESPONSE_ID.fullmatch(response_id):
        raise InvalidRequest("not a response id", param="response_id")
    try:
        status, content = await services.responses.forward(method, path, response_id, key, query)
        if status == 404:
            raise NotFound(
                f"no stored response '{response_id}' (the engine keeps them in memory only)",
                param="response_id",
                code="response_not_found",
            )
        if status != 200:
            raise status_error(status, content)
    except Exception as exc:
        raise as_api_error(exc) from exc
    return Response(content, media_type="application/json")


@router.get("/v1/responses/{response_id}", responses=ERROR_RESPONSES)
async def retrieve_response(
    response_id: str, request: Request, key: KeyDep, services: ServicesDep
) -> Response:
    return await _forward(
        services, key, "GET", "/v1/responses/{id}", response_id, request.url.query
    )


@router.post("/v1/responses/{response_id}/cancel", responses=ERROR_RESPONSES)
async def cancel_response(response_id: str, key: KeyDep, services: ServicesDep) -> Response:
    return await _forward(services, key, "POST", "/v1/responses/{id}/cancel", response_id)
