"""Sweeps over retrieval settings, and the corpus-vector cache that makes them cheap."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval._search import Fusion
from retrieval.embedder import Embedder
from retrieval.evaluation.beir import load_beir
from retrieval.evaluation.cache import EmbeddingCache
from retrieval.evaluation.runner import passages
from retrieval.evaluation.sweep import SweepError, parse_sweep, run_sweep, settings_of
from retrieval.factory import open_store

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "beir-tiny"


def test_a_grid_is_every_combination_with_defaults_elsewhere() -> None:
    grid = parse_sweep(["rrf_k=10,60", "sparse_weight=0.5, 2", "title=none"])
    settings = settings_of(grid)
    assert [(s.fusion.k, s.fusion.sparse_weight) for s in settings] == [
        (10, 0.5), (10, 2.0), (60, 0.5), (60, 2.0)]  # fmt: skip
    assert {s.title for s in settings} == {"none"}
    assert settings_of(parse_sweep(["fusion=dbsf", "stemmer=none"]))[0].fusion.method == "dbsf"


@pytest.mark.parametrize(
    "spec", ["rrf_k", "rrf_k=", "speed=1", "rrf_k=ten", "rrf_k=0", "fusion=max", "title=top"]
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(SweepError):
        settings_of(parse_sweep([spec]))


def test_fusion_weights_only_when_both_branches_and_not_one() -> None:
    assert Fusion(sparse_weight=2).weights(dense=True, sparse=True) == [1.0, 2.0]
    assert Fusion(sparse_weight=2).weights(dense=True, sparse=False) is None
    assert Fusion().weights(dense=True, sparse=True) is None
    assert Fusion(candidates=7).limit(100) == 7 and Fusion().limit(5) == 40


class CountingEncoder:
    """The real embedder, counting the passages it is asked to encode."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.name = embedder.name
        self.backend = embedder.backend
        self.max_seq_length = embedder.max_seq_length
        self.dimension = embedder.dimension
        self.encoded = 0

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        self.encoded += len(texts)
        return self.inner.embed_documents(texts, batch_size)

    def embed_queries(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        return self.inner.embed_queries(texts, batch_size)


def test_the_cache_encodes_a_corpus_once_per_text(tmp_path: Path, embedder: Embedder) -> None:
    data = load_beir(TINY)
    counting = CountingEncoder(embedder)
    cache = EmbeddingCache(tmp_path / "vectors")
    texts = passages(data.corpus, "both", "dense")
    first = cache.documents(counting, texts)
    again = EmbeddingCache(tmp_path / "vectors").documents(counting, texts)
    assert counting.encoded == len(texts) and np.array_equal(first, again)
    assert np.allclose(first[3], embedder.embed_documents([texts[3]])[0], atol=1e-5)
    cache.documents(counting, passages(data.corpus, "none", "dense"))  # other text: encoded
    assert counting.encoded == 2 * len(texts)
    assert len(list((tmp_path / "vectors").glob("*.npy"))) == 2


def test_a_sweep_indexes_once_per_stored_setting(tmp_path: Path, embedder: Embedder) -> None:
    data = load_beir(TINY)
    counting = CountingEncoder(embedder)
    store = open_store("edge", path=str(tmp_path / "store"))
    try:
        grid = parse_sweep(["rrf_k=5,60", "sparse_weight=1,2", "title=both,dense"])
        report = run_sweep(data, store, counting, grid, cache=EmbeddingCache(tmp_path / "v"))
        assert store.list_collections() == []
    finally:
        store.close()
    # title=both and title=dense give the dense side the same text: encoded once
    assert counting.encoded == len(data.corpus)
    assert [r.mode for r in report.rows].count("hybrid") == 8
    assert [r.mode for r in report.rows].count("sparse") == 2
    best = report.best()
    assert best is not None and 0 < best.metrics["ndcg@10"] <= 1
