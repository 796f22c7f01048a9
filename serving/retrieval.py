"""The retrieval deployment: one embedding model behind Ray Serve's dynamic batching.

Every gateway replica sends its queries here one at a time (``embed_query``); ``@serve.batch``
gathers the queries of all of them into shared forward passes, at most ``max_batch_size`` per
pass, waiting at most ``batch_wait_timeout_s`` for a batch to fill (both set from the YAML's
``user_config``, changeable without a restart). The replica also owns the embedded vector
store when there is no Qdrant server (the embedded store admits one process), and serves it to
the gateways through ``store_call``; with ``RAGSERVE_QDRANT_URL`` the gateways talk to Qdrant
themselves and this deployment may run several replicas.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter as Tally
from typing import Any

from ray import serve
from ray.serve import metrics

from gateway.retrieval_setup import RetrievalStack, open_retrieval
from gateway.settings import Settings
from retrieval.types import StoreError

# The VectorStore methods a gateway may call through ``store_call`` (not ``close``: the store
# belongs to this replica).
STORE_METHODS = frozenset(
    {
        "ensure_collection", "collection_exists", "list_collections", "delete_collection",
        "count", "upsert", "delete", "search", "document_hashes", "create_versioned",
        "switch_alias", "optimize",
    }
)  # fmt: skip
BATCH_BUCKETS = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
DEFAULT_MAX_BATCH = 32
DEFAULT_WAIT_S = 0.005


class BatchStats:
    """How many queries each forward pass embedded (this replica, since it started)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sizes: Tally[int] = Tally()

    def record(self, size: int) -> None:
        with self._lock:
            self.sizes[size] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            sizes = dict(self.sizes)
        batches = sum(sizes.values())
        queries = sum(size * n for size, n in sizes.items())
        return {
            "batches": batches,
            "queries": queries,
            "max": max(sizes, default=0),
            "mean": queries / batches if batches else 0.0,
            "sizes": sizes,
        }


@serve.deployment(name="retrieval", max_ongoing_requests=512)
class Retrieval:
    """The embedding model (batched across gateway replicas) and, optionally, the store."""

    async def __init__(self, *, serve_store: bool) -> None:  # type: ignore[misc]
        # With a Qdrant server this opens a client (no request yet); the gateways use their own.
        self._stack: RetrievalStack = await open_retrieval(Settings())
        self._serve_store = serve_store
        self.stats = BatchStats()
        # Ray's metrics (the node's Prometheus endpoint); the same figures as batch_stats().
        self._batch_size = metrics.Histogram(
            "ragserve_embed_batch_size",
            description="Queries per embedding forward pass (Ray Serve @serve.batch)",
            boundaries=BATCH_BUCKETS,
        )
        self._queries = metrics.Counter(
            "ragserve_embed_queries", description="Queries embedded by the retrieval deployment"
        )

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply the YAML's ``user_config`` (batch size and wait) without a restart."""
        batched: Any = self.embed_query  # Serve's batch wrapper carries the setters
        batched.set_max_batch_size(int(config.get("max_batch_size", DEFAULT_MAX_BATCH)))
        batched.set_batch_wait_timeout_s(float(config.get("batch_wait_timeout_s", DEFAULT_WAIT_S)))

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH, batch_wait_timeout_s=DEFAULT_WAIT_S)
    async def embed_query(self, texts: list[str]) -> list[list[float]]:
        """One query per call; Serve hands this method the batch."""
        self.stats.record(len(texts))
        self._batch_size.observe(len(texts))
        self._queries.inc(len(texts))
        # in a thread: the next batch gathers while this one runs
        return await asyncio.to_thread(self._stack.embedder.embed_queries, texts)

    async def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """A caller's own list of queries, in one forward pass (no cross-request batching)."""
        return await asyncio.to_thread(self._stack.embedder.embed_queries, texts)

    async def embed_documents(self, texts: list[str], batch_size: int = 64) -> list[list[float]]:
        embed = functools.partial(self._stack.embedder.embed_documents, batch_size=batch_size)
        return await asyncio.to_thread(embed, texts)

    def info(self) -> dict[str, Any]:
        """What the gateway's embedder adapter needs once: name, dimension, sequence length."""
        embedder = self._stack.embedder
        return {
            "name": embedder.name,
            "dimension": embedder.dimension,
            "max_seq_length": embedder.max_seq_length,
            "store_error": self._stack.error if self._serve_store else None,
        }

    def tokenizer(self) -> Any:
        """The model's tokenizer (the gateway's ingest chunker counts tokens with it)."""
        return self._stack.embedder.tokenizer

    def batch_stats(self) -> dict[str, Any]:
        return self.stats.snapshot()

    async def store_call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run one ``VectorStore`` method on this replica's store."""
        if method not in STORE_METHODS:
            raise ValueError(f"not a store method: {method}")
        store = self._stack.store
        if store is None:
            raise StoreError(self._stack.error or "this retrieval replica serves no store")
        return await asyncio.to_thread(functools.partial(getattr(store, method), *args, **kwargs))

    async def __del__(self) -> None:
        await self._stack.aclose()
