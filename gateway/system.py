"""Liveness, readiness and the model list."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from gateway.deps import ServicesDep, api_key
from gateway.errors import ERROR_RESPONSES, as_api_error, error_body

router = APIRouter()


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "ragserve"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    gauges = services.proxy.metrics
    gauges.event_loop_tasks.set(len(asyncio.all_tasks()))
    for replica in getattr(services.proxy.engine, "replicas", []):
        healthy = 0.0 if replica.state.open_until else 1.0
        gauges.upstream_healthy.labels(replica.url).set(healthy)
    return Response(generate_latest(gauges.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    if services.proxy.lifecycle.draining:
        return JSONResponse({"status": "draining", "engine": None}, status_code=503)
    ready = await services.proxy.engine.is_ready()
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "engine": ready},
        status_code=200 if ready else 503,
    )


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(api_key)],
)
async def list_models(services: ServicesDep) -> JSONResponse:
    try:
        names = [*await services.models.public_names(), services.embeddings.model_name]
    except Exception as exc:
        error = as_api_error(exc)
        return JSONResponse(error_body(error.info()), status_code=error.status)
    return JSONResponse(ModelList(data=[ModelCard(id=name) for name in names]).model_dump())
