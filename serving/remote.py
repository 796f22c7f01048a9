"""Gateway-side adapters over the retrieval deployment.

``RemoteEmbedder`` is the ``Embedder`` the gateway already uses (documents, ``/v1/embeddings``,
the chunker's tokenizer) plus ``async embed(text)``, the retriever's query seam, which goes to
the deployment's ``@serve.batch`` method so queries from every gateway replica share forward
passes. ``RemoteStore`` is a ``VectorStore`` over the store the retrieval replica owns. Both are
synchronous where the gateway calls them from worker threads, like the local ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ray.exceptions import RayActorError, RayTaskError
from ray.serve.handle import DeploymentHandle

from retrieval.embedder import Embedder
from retrieval.types import (
    PayloadFilter,
    PointRecord,
    SearchHit,
    SearchMode,
    SparseVector,
    StoreError,
)

CALL_TIMEOUT_S = 60.0


def _wait(response: Any) -> Any:
    """The result of a call made from a worker thread; the replica's own exception re-raised."""
    try:
        return response.result(timeout_s=CALL_TIMEOUT_S)
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, Exception):
            raise cause from None
        raise


class RemoteEmbedder(Embedder):
    """The embedder interface, served by the retrieval deployment."""

    def __init__(self, handle: DeploymentHandle[Any], info: dict[str, Any]) -> None:
        self._handle = handle
        self.name = str(info["name"])
        self._dimension = int(info["dimension"])
        self._max_seq_length = int(info["max_seq_length"])
        self._tokenizer: Any = None

    @classmethod
    async def connect(cls, handle: DeploymentHandle[Any]) -> RemoteEmbedder:
        return cls(handle, await handle.info.remote())

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @property
    def tokenizer(self) -> Any:
        # fetched on first use (ingest through the gateway); chats never need it
        if self._tokenizer is None:
            self._tokenizer = _wait(self._handle.tokenizer.remote())
        return self._tokenizer

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        vectors: list[list[float]] = _wait(
            self._handle.embed_documents.remote(list(texts), batch_size)
        )
        return vectors

    def embed_queries(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        vectors: list[list[float]] = _wait(self._handle.embed_queries.remote(list(texts)))
        return vectors

    async def embed(self, text: str) -> list[float]:
        """One query's vector, embedded in a batch shared with every gateway replica."""
        vector: list[float] = await self._handle.embed_query.remote(text)
        return vector


class RemoteStore:
    """A ``VectorStore`` kept by the retrieval replica (the embedded store admits one process)."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return _wait(self._handle.store_call.remote(method, args, kwargs))
        except (RayActorError, TimeoutError) as exc:
            raise StoreError(f"the retrieval deployment did not answer: {exc}") from exc

    def ensure_collection(self, name: str, dense_size: int) -> None:
        self._call("ensure_collection", name, dense_size)

    def collection_exists(self, name: str) -> bool:
        return bool(self._call("collection_exists", name))

    def list_collections(self) -> list[str]:
        names: list[str] = self._call("list_collections")
        return names

    def delete_collection(self, name: str) -> None:
        self._call("delete_collection", name)

    def count(self, name: str, flt: PayloadFilter | None = None) -> int:
        return int(self._call("count", name, flt))

    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        self._call("upsert", name, list(points))

    def delete(self, name: str, flt: PayloadFilter) -> None:
        self._call("delete", name, flt)

    def search(
        self,
        name: str,
        *,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        mode: SearchMode,
        top_k: int,
        flt: PayloadFilter | None = None,
        score_threshold: float | None = None,
        **options: Any,
    ) -> list[SearchHit]:
        hits: list[SearchHit] = self._call(
            "search", name, dense=None if dense is None else list(dense), sparse=sparse,
            mode=mode, top_k=top_k, flt=flt, score_threshold=score_threshold, **options,
        )  # fmt: skip
        return hits

    def document_hashes(self, name: str) -> dict[str, str]:
        hashes: dict[str, str] = self._call("document_hashes", name)
        return hashes

    def create_versioned(self, alias: str, dense_size: int) -> str:
        return str(self._call("create_versioned", alias, dense_size))

    def switch_alias(self, alias: str, collection: str) -> None:
        self._call("switch_alias", alias, collection)

    def optimize(self, name: str) -> None:
        self._call("optimize", name)

    def close(self) -> None:
        """Nothing to close here: the store belongs to the retrieval replica."""
