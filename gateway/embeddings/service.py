"""Embed texts for OpenAI clients with the server's sentence-transformers model."""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
import numpy as np

from gateway.embeddings.protocol import (
    MAX_INPUTS,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from gateway.errors import InvalidRequest, NotFound
from retrieval.embedder import Embedder

DEFAULT_EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"


def embedding_model_name(configured: str | None) -> str:
    return Path(configured).name if configured else DEFAULT_EMBEDDING_MODEL_NAME


def _texts(request: EmbeddingRequest) -> list[str]:
    raw = request.input
    if isinstance(raw, str):
        raw = [raw]
    if not raw:
        raise InvalidRequest("'input' must not be empty", param="input")
    if not all(isinstance(item, str) for item in raw):
        raise InvalidRequest(
            "token-id input is not supported: send text (LangChain: "
            "OpenAIEmbeddings(check_embedding_ctx_length=False))",
            param="input",
        )
    texts = [str(item) for item in raw]
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
    if any(not text.strip() for text in texts):
        raise InvalidRequest("'input' must not contain empty strings", param="input")
    return texts


class EmbeddingService:
    def __init__(self, embedder: Embedder, model_name: str) -> None:
        self._embedder = embedder
        self.model_name = model_name

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        if request.model != self.model_name:
            raise NotFound(
                f"the embedding model '{request.model}' does not exist; "
                f"this server embeds with '{self.model_name}'",
                param="model",
                code="model_not_found",
            )
        if request.dimensions is not None and request.dimensions != self._embedder.dimension:
            raise InvalidRequest(
                f"'{self.model_name}' produces {self._embedder.dimension} dimensions",
                param="dimensions",
            )
        texts = _texts(request)
        vectors = await anyio.to_thread.run_sync(self._embedder.embed_queries, texts)
        tokens = await anyio.to_thread.run_sync(self._count_tokens, texts)
        data = [
            Embedding(index=i, embedding=_encode(vector, request.encoding_format))
            for i, vector in enumerate(vectors)
        ]
        return EmbeddingResponse(
            data=data,
            model=self.model_name,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    def _count_tokens(self, texts: list[str]) -> int:
        encoded = self._embedder.tokenizer(texts, add_special_tokens=True, truncation=True)
        return sum(len(ids) for ids in encoded["input_ids"])


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector
