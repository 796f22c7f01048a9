"""Ranking metrics as BEIR computes them (pytrec_eval, i.e. trec_eval, plus BEIR's MRR).

- A document is relevant when its judgement is above 0; judgements of 0 (or below) are
  ignored: they add no gain and do not count as relevant.
- nDCG@k: gain = the graded relevance, discount = log2(rank + 1); the ideal ranking sorts the
  query's judgements by relevance. trec_eval's ``ndcg_cut``.
- recall@k: relevant documents in the top k / all relevant documents of the query.
- MRR@k: 1 / the rank of the first relevant document in the top k, else 0 (BEIR's ``mrr``).
- A run is ordered by score, best first, ties broken by document id in *descending* string
  order, as trec_eval sorts (so figures match BEIR's for the same scores).
- Averages are over the queries that have judgements; a judged query the run lacks counts as
  an empty ranking (0 on every metric), and run queries without judgements are skipped. A
  judged query without any relevant document scores 0, as in trec_eval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from retrieval.evaluation.beir import Qrels

# query id -> document id -> score (any scale; higher is better)
Run = Mapping[str, Mapping[str, float]]


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Document ids best first, trec_eval's order (score descending, then id descending)."""
    return sorted(scores, key=lambda doc_id: (scores[doc_id], doc_id), reverse=True)


def ndcg_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain of the top ``k`` of ``ranking``."""
    _check_k(k)
    dcg = sum(
        _gain(judgements, doc_id) / math.log2(rank + 1)
        for rank, doc_id in enumerate(ranking[:k], start=1)
    )
    ideal = sorted((rel for rel in judgements.values() if rel > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int) -> float:
    """Share of the query's relevant documents found in the top ``k``."""
    _check_k(k)
    relevant = {doc_id for doc_id, rel in judgements.items() if rel > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top ``k`` (0 if none)."""
    _check_k(k)
    for rank, doc_id in enumerate(ranking[:k], start=1):
        if _gain(judgements, doc_id) > 0:
            return 1.0 / rank
    return 0.0


Metric = Callable[[Sequence[str], Mapping[str, int], int], float]

# The metrics an evaluation reports, in display order: name -> (function, cut-off).
METRICS: dict[str, tuple[Metric, int]] = {
    "ndcg@10": (ndcg_at_k, 10),
    "recall@10": (recall_at_k, 10),
    "recall@100": (recall_at_k, 100),
    "mrr@10": (mrr_at_k, 10),
}
METRIC_NAMES = tuple(METRICS)
DEPTH = max(k for _, k in METRICS.values())  # how many documents each query must retrieve


def query_metrics(ranking: Sequence[str], judgements: Mapping[str, int]) -> dict[str, float]:
    """Every metric of ``METRICS`` for one query."""
    return {name: metric(ranking, judgements, k) for name, (metric, k) in METRICS.items()}


def evaluate(run: Run, qrels: Qrels) -> dict[str, float]:
    """Each metric of ``METRIC_NAMES`` averaged over the judged queries."""
    if not qrels:
        raise ValueError("no judged queries to evaluate")
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    for query_id, judgements in qrels.items():
        scores = query_metrics(ranked(run.get(query_id, {})), judgements)
        for name, value in scores.items():
            totals[name] += value
    return {name: total / len(qrels) for name, total in totals.items()}


def _gain(judgements: Mapping[str, int], doc_id: str) -> int:
    return max(judgements.get(doc_id, 0), 0)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError("k must be at least 1")
