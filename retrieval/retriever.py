"""Query-time retrieval: embed the query (micro-batched), encode its keywords, search the store."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from retrieval.sparse import SparseEncoder
from retrieval.types import (
    PayloadFilter,
    SearchHit,
    SearchMode,
    SparseVector,
    StoreError,
    VectorStore,
)


class QueryVectors(Protocol):
    async def embed(self, text: str) -> list[float]: ...


@dataclass
class Retrieval:
    """The hits of one query and where its time went."""

    hits: list[SearchHit] = field(default_factory=list)
    embed_ms: float = 0.0
    search_ms: float = 0.0


class Retriever:
    """Dense, sparse or hybrid retrieval over one ``VectorStore``."""

    def __init__(self, embedder: QueryVectors, sparse: SparseEncoder, store: VectorStore) -> None:
        """``embedder`` is usually a ``QueryBatcher`` (anything with ``async embed(text)``)."""
        self._embedder = embedder
        self._sparse = sparse
        self.store = store

    async def retrieve(
        self,
        query: str,
        *,
        collection: str,
        top_k: int,
        mode: SearchMode,
        flt: PayloadFilter | None = None,
        min_score: float | None = None,
    ) -> Retrieval:
        """Search ``collection`` for ``query``; see the stores for what ``min_score`` bounds."""
        mode = SearchMode(mode)
        started = time.perf_counter()
        dense: list[float] | None = None
        sparse: SparseVector | None = None
        if mode in (SearchMode.DENSE, SearchMode.HYBRID):
            dense = await self._embedder.embed(query)
        if mode in (SearchMode.SPARSE, SearchMode.HYBRID):
            sparse = self._sparse.encode_query(query)
        embedded = time.perf_counter()
        search = functools.partial(
            self.store.search,
            collection,
            dense=dense,
            sparse=sparse,
            mode=mode,
            top_k=top_k,
            flt=flt,
            score_threshold=min_score,
        )
        try:
            hits = await anyio.to_thread.run_sync(search)
        except (StoreError, ValueError):
            raise  # CollectionNotFound is a StoreError; ValueError is a bad filter or top_k
        except Exception as exc:
            raise StoreError(f"search failed: {type(exc).__name__}: {exc}") from exc
        done = time.perf_counter()
        return Retrieval(
            hits=hits,
            embed_ms=(embedded - started) * 1000,
            search_ms=(done - embedded) * 1000,
        )
