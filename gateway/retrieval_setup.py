"""Open the retrieval stack (embedder, micro-batcher, sparse encoder, store) once per process.

The gateway opens it at start-up; ``ragserve search`` builds the same stack around the
store it opened itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from gateway.settings import Settings
from gateway.store_access import GATEWAY_FILE
from retrieval._search import Fusion
from retrieval.batching import QueryBatcher
from retrieval.embedder import Embedder
from retrieval.factory import open_store
from retrieval.rerank import Reranker
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


def store_exists(settings: Settings) -> bool:
    """Whether the embedded store's folder holds a store (the address file alone is none)."""
    path = settings.qdrant_path
    return path.is_dir() and any(p.name != GATEWAY_FILE for p in path.iterdir())


def describe_store(settings: Settings) -> str:
    """How messages name the store: its folder, or the Qdrant server's URL."""
    if settings.store_backend == "server":
        return f"the Qdrant server at {settings.qdrant_url}"
    return f"the store at {settings.qdrant_path}"


def _open_store(settings: Settings) -> VectorStore:
    if settings.store_backend != "server" and not store_exists(settings):
        log.warning("no store at %s yet: creating an empty one", settings.qdrant_path)
    return open_store(
        settings.store_backend,
        path=str(settings.qdrant_path),
        url=settings.qdrant_url,
        api_key=settings.qdrant_api_key,
    )


async def open_retrieval(
    settings: Settings,
    on_batch: Callable[[int], None] | None = None,
    *,
    store: VectorStore | None = None,
) -> RetrievalStack:
    """The stack for ``settings``; around ``store`` when the caller opened one already."""
    embedder = await anyio.to_thread.run_sync(load_embedder, settings)
    sparse = sparse_encoder(settings)
    batcher = QueryBatcher(
        embedder,
        window_ms=settings.embed_batch_window_ms,
        max_batch=settings.embed_max_batch,
        on_batch=on_batch,
    )
    if store is None:
        try:
            store = await anyio.to_thread.run_sync(_open_store, settings)
        except Exception as exc:  # serve chats without RAG rather than not at all
            log.error("%s could not be opened: %s", describe_store(settings), exc)
            return RetrievalStack(embedder, sparse, None, batcher, None, error=str(exc))
    retriever = Retriever(
        batcher, sparse, store, fusion=fusion(settings), reranker=reranker(settings)
    )
    return RetrievalStack(embedder, sparse, store, batcher, retriever)


def load_embedder(settings: Settings) -> Embedder:
    """The configured embedding model on the configured backend (blocking: a worker thread)."""
    return Embedder.load(settings.embedding_model, backend=settings.embedding_backend,
                         cache_dir=settings.embedding_cache_dir)  # fmt: skip


def sparse_encoder(settings: Settings) -> SparseEncoder:
    """The keyword encoder for new collections (existing ones keep theirs)."""
    stemmer = settings.sparse_stemmer
    return SparseEncoder(stemmer=None if stemmer in ("", "none") else stemmer)


def fusion(settings: Settings) -> Fusion:
    return Fusion(settings.fusion, settings.rrf_k, settings.hybrid_sparse_weight)


def reranker(settings: Settings) -> Reranker | None:
    """The rerank stage when ``RAGSERVE_RERANK_URL`` is set."""
    if not settings.rerank_url:
        return None
    return Reranker(
        settings.rerank_url,
        settings.rerank_model or "",
        api_key=settings.rerank_api_key,
        candidates=settings.rerank_candidates,
        timeout_s=settings.rerank_timeout_s,
    )
