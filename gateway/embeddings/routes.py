"""HTTP edge of embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gateway.deps import ServicesDep, api_key
from gateway.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from gateway.errors import ERROR_RESPONSES

router = APIRouter()


@router.post(
    "/v1/embeddings",
    response_model=EmbeddingResponse,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(api_key)],
)
async def create_embeddings(body: EmbeddingRequest, services: ServicesDep) -> EmbeddingResponse:
    return await services.embeddings.embed(body)
