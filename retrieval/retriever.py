"""Query-time retrieval: embed the query (micro-batched), encode its keywords, search the store.

Keywords are encoded with the encoder the collection was built with (``retrieval/encoders.py``):
a collection written before stemming keeps answering unstemmed, and one holding two encoders'
vectors raises ``EncoderMismatch`` (a ``StoreError``) that asks for ``ingest --reindex``. When a
``Reranker`` is configured, its endpoint re-orders the best fused candidates, and any failure
of it leaves the fused order.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from retrieval._filters import parse_filter
from retrieval._search import DEFAULT_FUSION, Fusion
from retrieval.encoders import EncoderMismatch, SparseEncoders, hit_version
from retrieval.rerank import Reranker
from retrieval.sparse import SparseEncoder
from retrieval.types import (
    CollectionNotFound,
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
    rerank_ms: float = 0.0
    rerank: str | None = None  # the rerank outcome (ok, timeout, error, skipped); None: off


class Retriever:
    """Dense, sparse or hybrid retrieval over one ``VectorStore``."""

    def __init__(
        self,
        embedder: QueryVectors,
        sparse: SparseEncoder,
        store: VectorStore,
        *,
        fusion: Fusion = DEFAULT_FUSION,
        reranker: Reranker | None = None,
    ) -> None:
        """``embedder`` is usually a ``QueryBatcher`` (anything with ``async embed(text)``);
        ``sparse`` is the encoder for new collections (existing ones keep their own)."""
        self._embedder = embedder
        self._sparse = sparse
        self._encoders = SparseEncoders(sparse, store)
        self.fusion = fusion
        self.reranker = reranker
        self.store = store

    async def check(self, collection: str, flt: PayloadFilter | None = None) -> None:
        """Refuse at once what ``retrieve`` would refuse later: a malformed filter
        (``ValueError``), a missing collection (``CollectionNotFound``)."""
        parse_filter(flt)
        exists = await self._guard(anyio.to_thread.run_sync, self.store.collection_exists,
                                   collection)  # fmt: skip
        if not exists:
            raise CollectionNotFound(collection)

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
        encoder: SparseEncoder | None = None
        if mode in (SearchMode.DENSE, SearchMode.HYBRID):
            dense = await self._embedder.embed(query)
        if mode in (SearchMode.SPARSE, SearchMode.HYBRID):
            encoder = self._encoders.cached(collection)
            if encoder is None:
                encoder = await self._guard(anyio.to_thread.run_sync, self._encoders.resolve,
                                            collection)  # fmt: skip
        embedded = time.perf_counter()
        depth = max(top_k, self.reranker.candidates) if self.reranker else top_k
        args = (query, collection, dense, encoder, mode, depth, flt, min_score)
        hits = await self._search(*args)
        if encoder is not None and hits:
            versions = {hit_version(hit) for hit in hits}
            if versions != {encoder.version}:
                # the alias now points at a collection built with another encoder: ask again
                self._encoders.forget(collection)
                if len(versions) > 1:
                    raise EncoderMismatch(collection, versions)
                encoder = encoder.with_version(versions.pop())
                hits = await self._search(query, collection, dense, encoder, mode, depth, flt,
                                          min_score)  # fmt: skip
        done = time.perf_counter()
        result = Retrieval(hits=hits[:top_k], embed_ms=(embedded - started) * 1000,
                           search_ms=(done - embedded) * 1000)  # fmt: skip
        if self.reranker is not None:
            reranked = await self.reranker.rerank(query, hits, top_k)
            result.hits, result.rerank, result.rerank_ms = (
                reranked.hits,
                reranked.outcome,
                reranked.ms,
            )
        return result

    async def _search(
        self,
        query: str,
        collection: str,
        dense: list[float] | None,
        encoder: SparseEncoder | None,
        mode: SearchMode,
        top_k: int,
        flt: PayloadFilter | None,
        min_score: float | None,
    ) -> list[SearchHit]:
        sparse: SparseVector | None = encoder.encode_query(query) if encoder else None
        search = functools.partial(
            self.store.search,
            collection,
            dense=dense,
            sparse=sparse,
            mode=mode,
            top_k=top_k,
            flt=flt,
            score_threshold=min_score,
            fusion=self.fusion,
        )
        hits: list[SearchHit] = await self._guard(anyio.to_thread.run_sync, search)
        return hits

    @staticmethod
    async def _guard(call: Any, *args: Any) -> Any:
        """Run a store call; anything but the contract's errors becomes a ``StoreError``."""
        try:
            return await call(*args)
        except (StoreError, ValueError):
            raise  # CollectionNotFound is a StoreError; ValueError is a bad filter or top_k
        except Exception as exc:
            raise StoreError(f"search failed: {type(exc).__name__}: {exc}") from exc
