"""Search settings shared by the stores, so every backend ranks the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from retrieval.types import SearchMode, SparseVector

# Reciprocal Rank Fusion constant: score = sum over lists of weight / (RRF_K + rank). On
# SciFact's train split k=1..5 scored alike (nDCG@10 0.727) and above k=60 (0.715).
RRF_K = 5

# Payload fields the ingest pipeline filters and looks up on; indexed where the backend can.
KEYWORD_INDEXES = ("source", "doc_id", "tags", "doc_hash")

# How many names a collection may have: Qdrant's own limit on collection names.
MAX_NAME_LENGTH = 200


def prefetch_limit(top_k: int) -> int:
    """Candidates each hybrid branch contributes to the fusion (over-fetch for recall)."""
    return max(4 * top_k, 40)


@dataclass(frozen=True, slots=True)
class Fusion:
    """How a hybrid search merges its dense and keyword candidates.

    ``rrf``: Reciprocal Rank Fusion, each list adding ``weight / (k + rank)``; the dense list
    weighs 1 and the keyword list ``sparse_weight`` (1: plain RRF). ``dbsf``: Qdrant's
    distribution-based score fusion (scores normalised by their spread; no weights, no k).
    ``candidates``: per branch; None keeps ``prefetch_limit(top_k)``.
    """

    # DBSF: 0.734 nDCG@10 on SciFact's train split against RRF's best 0.727 (docs/EVALUATION.md)
    method: Literal["rrf", "dbsf"] = "dbsf"
    k: int = RRF_K
    sparse_weight: float = 1.0
    candidates: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "dbsf"):
            raise ValueError(f"unknown fusion {self.method!r}: rrf or dbsf")
        if self.k < 1 or self.sparse_weight <= 0 or (self.candidates or 1) < 1:
            raise ValueError("need k >= 1, sparse_weight > 0 and candidates >= 1")

    def limit(self, top_k: int) -> int:
        return self.candidates or prefetch_limit(top_k)

    def weights(self, dense: bool, sparse: bool) -> list[float] | None:
        """RRF weights in prefetch order (dense first), or None when all are 1."""
        if self.sparse_weight == 1.0 or not (dense and sparse):
            return None
        return [1.0, self.sparse_weight]


DEFAULT_FUSION = Fusion()


def check_query(
    mode: SearchMode, dense: object | None, sparse: SparseVector | None, top_k: int
) -> None:
    """Reject a search that lacks the vector its mode needs (a caller bug, not a store fault)."""
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    if mode is SearchMode.DENSE and dense is None:
        raise ValueError("a dense search needs a dense query vector")
    if mode is SearchMode.SPARSE and sparse is None:
        raise ValueError("a sparse search needs a sparse query vector")
    if mode is SearchMode.HYBRID and dense is None and sparse is None:
        raise ValueError("a hybrid search needs a dense or a sparse query vector")


def check_name(name: str) -> None:
    """Collection names end up as folder names: keep them plain."""
    if not name or len(name) > MAX_NAME_LENGTH or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(
            f"collection name {name!r} must be 1-{MAX_NAME_LENGTH} letters, digits, '-' or '_'"
        )
