"""Open the configured vector store: Edge (embedded default), qdrant-client local, or server."""

from __future__ import annotations

from typing import Literal

from retrieval.types import StoreError, StoreLocked, VectorStore

Backend = Literal["edge", "local", "server"]


def open_store(
    backend: Backend,
    *,
    path: str,
    url: str | None = None,
    api_key: str | None = None,
) -> VectorStore:
    """Open a store; ``path`` serves edge/local, ``url``/``api_key`` the server backend."""
    if backend == "edge":
        from retrieval.edge_store import EdgeStore

        return EdgeStore(path)

    from qdrant_client import QdrantClient

    from retrieval.qdrant_store import QdrantStore

    if backend == "local":
        try:
            # calls arrive from worker threads; QdrantStore serialises them itself
            client = QdrantClient(path=path, force_disable_check_same_thread=True)
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreLocked(f"the store at {path} is open in another process") from exc
            raise StoreError(f"cannot open the local store at {path}: {exc}") from exc
        return QdrantStore(client)
    if backend == "server":
        if not url:
            raise StoreError("the server backend needs a Qdrant URL")
        # no request here: a server that is down at start-up may be up by the first search
        return QdrantStore(QdrantClient(url=url, api_key=api_key, timeout=10))
    raise ValueError(f"unknown store backend {backend!r}")
