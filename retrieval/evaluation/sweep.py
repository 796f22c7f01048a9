"""A grid of retrieval settings scored on one split: ``ragserve eval --sweep rrf_k=10,20,60``.

Parameters (each ``name=v1,v2,...``; the grid is every combination):

- ``rrf_k``: the RRF constant; ``sparse_weight``: the keyword list's RRF weight (dense: 1);
  ``fusion``: ``rrf`` or ``dbsf``; ``candidates``: per branch (``auto``: the serving default);
- ``stemmer``: ``english`` (any Snowball language) or ``none``; ``title``: which side reads
  the title (``both``, ``dense``, ``sparse``, ``none``).

Settings that change what is stored (stemmer, title) get one index each, built from cached
dense vectors (one encoding per title policy); fusion settings only re-run the hybrid searches.
Dense and sparse runs are scored once per index, since fusion cannot change them. Choose on a
training split, then report the chosen setting once on the test split.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from retrieval._search import DEFAULT_FUSION, Fusion
from retrieval.evaluation.beir import BeirDataset
from retrieval.evaluation.cache import EmbeddingCache
from retrieval.evaluation.runner import (
    TITLES,
    Encoder,
    ProgressCallback,
    QuerySet,
    Title,
    average_length,
    build_index,
    score_mode,
)
from retrieval.sparse import DEFAULT_STEMMER, SparseEncoder
from retrieval.types import SearchMode, VectorStore

PARAMETERS = ("rrf_k", "sparse_weight", "fusion", "candidates", "stemmer", "title")
_INDEX_PARAMETERS = ("stemmer", "title")


class SweepError(ValueError):
    """A ``--sweep`` value that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One point of the grid."""

    stemmer: str | None = DEFAULT_STEMMER
    title: Title = "both"
    fusion: Fusion = DEFAULT_FUSION

    def label(self) -> dict[str, Any]:
        return {
            "stemmer": self.stemmer or "none",
            "title": self.title,
            "fusion": self.fusion.method,
            "rrf_k": self.fusion.k,
            "sparse_weight": self.fusion.sparse_weight,
            "candidates": self.fusion.candidates or "auto",
        }


@dataclass(frozen=True, slots=True)
class SweepRow:
    setting: dict[str, Any]
    mode: str
    metrics: dict[str, float]


@dataclass
class SweepReport:
    dataset: str
    split: str
    queries: int
    embedding_model: str
    embedding_backend: str
    rows: list[SweepRow] = field(default_factory=list)
    index_s: float = 0.0
    search_s: float = 0.0

    def best(self, metric: str = "ndcg@10", mode: str = "hybrid") -> SweepRow | None:
        rows = [r for r in self.rows if r.mode == mode]
        return max(rows, key=lambda r: r.metrics[metric]) if rows else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_sweep(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["rrf_k=10,60", "stemmer=english,none"]`` -> ``{"rrf_k": ["10", "60"], ...}``."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or name not in PARAMETERS:
            raise SweepError(f"{spec!r}: expected NAME=V1,V2 with NAME one of {PARAMETERS}")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise SweepError(f"{spec!r}: no values")
        grid[name] = items
    return grid


def settings_of(grid: dict[str, list[str]]) -> list[Setting]:
    """Every combination of ``grid`` (missing parameters keep the defaults)."""
    names = list(grid)
    out = []
    for values in itertools.product(*(grid[n] for n in names)):
        out.append(_setting(dict(zip(names, values, strict=True))))
    return out


def _setting(values: dict[str, str]) -> Setting:
    try:
        stemmer = values.get("stemmer", DEFAULT_STEMMER or "none")
        title = values.get("title", "both")
        if title not in TITLES:
            raise SweepError(f"title={title}: one of {TITLES}")
        candidates = values.get("candidates", "auto")
        fusion = Fusion(
            method=cast(Any, values.get("fusion", DEFAULT_FUSION.method)),
            k=int(values.get("rrf_k", DEFAULT_FUSION.k)),
            sparse_weight=float(values.get("sparse_weight", DEFAULT_FUSION.sparse_weight)),
            candidates=None if candidates == "auto" else int(candidates),
        )
    except ValueError as exc:
        raise SweepError(str(exc)) from exc
    return Setting(None if stemmer == "none" else stemmer, cast(Title, title), fusion)


def run_sweep(
    dataset: BeirDataset,
    store: VectorStore,
    embedder: Encoder,
    grid: dict[str, list[str]],
    *,
    split: str = "test",
    cache: EmbeddingCache | None = None,
    on_progress: ProgressCallback | None = None,
) -> SweepReport:
    """Score every setting of ``grid`` on ``dataset``; temporary collections are deleted."""
    settings = settings_of(grid)
    report = SweepReport(dataset.name, split, len(dataset.queries), embedder.name,
                         str(getattr(embedder, "backend", "torch")))  # fmt: skip
    queries: QuerySet | None = None
    groups: dict[tuple[str | None, str], list[Setting]] = {}
    for setting in settings:
        groups.setdefault((setting.stemmer, setting.title), []).append(setting)
    for (stemmer, title), members in groups.items():
        avgdl = max(average_length(dataset.corpus, cast(Title, title)), 1.0)
        try:
            sparse = SparseEncoder(avgdl=avgdl, stemmer=stemmer)
        except KeyError as exc:  # PyStemmer: an unknown language
            raise SweepError(f"stemmer={stemmer}: not a Snowball language") from exc
        if queries is None:
            queries = QuerySet.encode(dataset, embedder, sparse, need_dense=True)
        queries = queries.with_keywords(dataset, sparse)
        collection = f"sweep_{uuid.uuid4().hex[:12]}"
        store.ensure_collection(collection, embedder.dimension)
        try:
            started = time.perf_counter()
            build_index(store, collection, dataset.corpus, embedder, sparse,
                        cast(Title, title), cache, on_progress)  # fmt: skip
            report.index_s += time.perf_counter() - started
            started = time.perf_counter()
            label = members[0].label()
            for mode in (SearchMode.DENSE, SearchMode.SPARSE):
                result = score_mode(store, collection, dataset, queries, mode)
                report.rows.append(SweepRow(label, mode.value, result.metrics))
            for setting in members:
                result = score_mode(store, collection, dataset, queries, SearchMode.HYBRID,
                                    setting.fusion, on_progress)  # fmt: skip
                report.rows.append(SweepRow(setting.label(), "hybrid", result.metrics))
            report.search_s += time.perf_counter() - started
        finally:
            store.delete_collection(collection)
    return report
