"""Open the retrieval stack (embedder, micro-batcher, sparse encoder, store) once per process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from gateway.settings import Settings
from retrieval.batching import QueryBatcher
from retrieval.embedder import Embedder
from retrieval.factory import open_store
from retrieval.retriever import Retriever
from retrieval.sparse import SparseEncoder
from retrieval.types import VectorStore

log = logging.getLogger("ragserve.retrieval")


@dataclass
class RetrievalStack:
    """Everything retrieval needs; ``retriever`` is None when the store could not open."""

    embedder: Embedder
    sparse: SparseEncoder
    store: VectorStore | None
    batcher: QueryBatcher
    retriever: Retriever | None
    error: str | None = None

    async def aclose(self) -> None:
        if self.store is not None:
            await anyio.to_thread.run_sync(self.store.close)


def _open_store(settings: Settings) -> VectorStore:
    return open_store(
        settings.store_backend,
        path=str(settings.qdrant_path),
        url=settings.qdrant_url,
        api_key=settings.qdrant_api_key,
    )


async def open_retrieval(
    settings: Settings, on_batch: Callable[[int], None] | None = None
) -> RetrievalStack:
    embedder = await anyio.to_thread.run_sync(Embedder.load, settings.embedding_model)
    sparse = SparseEncoder()
    batcher = QueryBatcher(
        embedder,
        window_ms=settings.embed_batch_window_ms,
        max_batch=settings.embed_max_batch,
        on_batch=on_batch,
    )
    try:
        store: VectorStore | None = await anyio.to_thread.run_sync(_open_store, settings)
    except Exception as exc:  # noqa: BLE001 - serve chats without RAG rather than not at all
        log.error("the vector store could not be opened: %s", exc)
        return RetrievalStack(embedder, sparse, None, batcher, None, error=str(exc))
    assert store is not None
    retriever = Retriever(batcher, sparse, store)
    return RetrievalStack(embedder, sparse, store, batcher, retriever)
