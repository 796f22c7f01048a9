"""HTTP edge of embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gateway.deps import api_key
from gateway.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from gateway.embeddings.service import EmbeddingService
from gateway.errors import ERROR_RESPONSES

router = APIRouter()


@router.post(
    "/v1/embeddings",
    response_model=EmbeddingResponse,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(api_key)],
)
async def create_embeddings(body: EmbeddingRequest, request: Request) -> EmbeddingResponse:
    service: EmbeddingService = request.app.state.embeddings
    return await service.embed(body)
