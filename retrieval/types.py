"""The retrieval contract: what the gateway and the ingest pipeline rely on.

Stores are synchronous and thread-safe; async callers run them in a worker thread
(``anyio.to_thread.run_sync``) so the event loop never blocks on I/O or Rust code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from retrieval._search import Fusion

DENSE_VECTOR = "dense"
SPARSE_VECTOR = "sparse"


class SearchMode(StrEnum):
    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: list[int]
    values: list[float]
    # the version of the encoder that made it; stores stamp it into the point's payload
    encoder: str | None = None


@dataclass(frozen=True, slots=True)
class PointRecord:
    """One chunk ready to store: its id (a UUID string), vectors and payload."""

    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))


# A payload filter: {"source": "a.md"} (equality), {"tags": ["x", "y"]} (any of),
# {"page": {"gte": 2, "lte": 5}} (range). Keys are payload fields; all must match.
PayloadFilter = Mapping[str, Any]


class StoreError(Exception):
    """The vector store failed or is unreachable."""


class StoreLocked(StoreError):
    """Another process holds the embedded store's folder (one process per folder)."""


class CollectionNotFound(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"collection '{name}' does not exist")
        self.name = name


class VectorStore(Protocol):
    """Collections of chunks with a named dense and a named sparse vector."""

    def ensure_collection(self, name: str, dense_size: int) -> None:
        """Create the collection (behind an alias of that name) if missing."""

    def collection_exists(self, name: str) -> bool: ...

    def list_collections(self) -> list[str]: ...

    def delete_collection(self, name: str) -> None: ...

    def count(self, name: str, flt: PayloadFilter | None = None) -> int: ...

    def upsert(self, name: str, points: Sequence[PointRecord]) -> None: ...

    def delete(self, name: str, flt: PayloadFilter) -> None:
        """Delete every point whose payload matches ``flt``."""

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
        fusion: Fusion | None = None,
    ) -> list[SearchHit]:
        """Best ``top_k`` hits, best first.

        ``fusion`` (a ``retrieval._search.Fusion``; None: the default) shapes hybrid mode only.

        ``score_threshold`` bounds, by mode: dense, the cosine similarity; sparse, the
        BM25 x IDF score; hybrid, the cosine similarity of the dense candidates (keyword
        candidates are kept whatever their score). Hybrid scores are fusion scores (DBSF's
        normalised sums or RRF's rank-based ones), so compare them only within one result list.
        """

    def document_hashes(self, name: str) -> dict[str, str]:
        """Map each stored ``doc_id`` to its ``doc_hash`` (for incremental ingest)."""

    def create_versioned(self, alias: str, dense_size: int) -> str:
        """Create a fresh physical collection for a re-index; return its name."""

    def switch_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` atomically; drop what it pointed at."""

    def optimize(self, name: str) -> None:
        """Build search indexes now (call after a bulk ingest); a no-op where that is automatic."""

    def close(self) -> None: ...
