"""Translate the retrieval contract's types into qdrant-edge's (filters, points, requests)."""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from retrieval._filters import AnyOf, Equals, Range, parse_filter
from retrieval.encoders import stamped_payload
from retrieval.types import DENSE_VECTOR, SPARSE_VECTOR, PayloadFilter, PointRecord


def to_edge_filter(flt: PayloadFilter | None) -> qe.Filter | None:
    """Translate a ``PayloadFilter`` into an Edge filter (None for no filter)."""
    conditions: list[Any] = []
    for cond in parse_filter(flt):
        if isinstance(cond, Equals):
            conditions.append(qe.FieldCondition(cond.key, match=qe.MatchValue(cond.value)))
        elif isinstance(cond, AnyOf):
            conditions.append(qe.FieldCondition(cond.key, match=qe.MatchAny(cond.values)))
        elif isinstance(cond, Range):
            bounds: dict[str, Any] = dict(cond.bounds)
            rng = qe.RangeDateTime(**bounds) if cond.is_datetime else qe.RangeFloat(**bounds)
            conditions.append(qe.FieldCondition(cond.key, range=rng))
    return qe.Filter(must=conditions) if conditions else None


def query_request(
    top_k: int, query: Any, edge_filter: qe.Filter | None, threshold: float | None
) -> qe.QueryRequest:
    return qe.QueryRequest(
        limit=top_k, query=query, filter=edge_filter, score_threshold=threshold, with_payload=True
    )


def edge_point(point: PointRecord) -> qe.Point:
    vector: dict[str, Any] = {DENSE_VECTOR: list(point.dense)}
    if point.sparse.indices:
        vector[SPARSE_VECTOR] = qe.SparseVector(
            list(point.sparse.indices), list(point.sparse.values)
        )
    return qe.Point(point.id, vector, stamped_payload(point))
