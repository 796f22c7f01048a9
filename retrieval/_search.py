"""Search settings shared by the stores, so every backend ranks the same way."""

from __future__ import annotations

from retrieval.types import SearchMode, SparseVector

# Reciprocal Rank Fusion constant: score = sum over lists of 1 / (RRF_K + rank).
RRF_K = 60

# Payload fields the ingest pipeline filters and looks up on; indexed where the backend can.
KEYWORD_INDEXES = ("source", "doc_id", "tags", "doc_hash")

# How many names a collection may have: Qdrant's own limit on collection names.
MAX_NAME_LENGTH = 200


def prefetch_limit(top_k: int) -> int:
    """Candidates each hybrid branch contributes to the fusion (over-fetch for recall)."""
    return max(4 * top_k, 40)


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
