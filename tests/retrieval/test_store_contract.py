"""The VectorStore contract, on every backend, with the real embedder and real stores."""

from __future__ import annotations

import dataclasses

import pytest

from retrieval.embedder import Embedder
from retrieval.sparse import SparseEncoder
from retrieval.types import (
    CollectionNotFound,
    PayloadFilter,
    PointRecord,
    SearchHit,
    SearchMode,
    VectorStore,
)

DIM = 384


def keys(hits: list[SearchHit]) -> list[str]:
    return [hit.payload["key"] for hit in hits]


def search(
    store: VectorStore,
    name: str,
    query: str,
    embedder: Embedder,
    sparse: SparseEncoder,
    mode: SearchMode = SearchMode.HYBRID,
    top_k: int = 8,
    flt: PayloadFilter | None = None,
    score_threshold: float | None = None,
) -> list[SearchHit]:
    return store.search(
        name,
        dense=embedder.embed_queries([query])[0],
        sparse=sparse.encode_query(query),
        mode=mode,
        top_k=top_k,
        flt=flt,
        score_threshold=score_threshold,
    )


def test_create_list_delete(store: VectorStore, name: str) -> None:
    assert not store.collection_exists(name)
    store.ensure_collection(name, DIM)
    store.ensure_collection(name, DIM)  # idempotent
    assert store.collection_exists(name)
    assert name in store.list_collections()
    assert store.count(name) == 0
    store.delete_collection(name)
    assert not store.collection_exists(name)
    assert name not in store.list_collections()
    store.delete_collection(name)  # deleting what is gone is a no-op


def test_upsert_count_and_delete_by_filter(
    filled: VectorStore, name: str, corpus: dict[str, PointRecord]
) -> None:
    assert filled.count(name) == len(corpus)
    filled.upsert(name, list(corpus.values()))  # same ids: replaced, not duplicated
    assert filled.count(name) == len(corpus)
    assert filled.count(name, {"source": "billing.md"}) == 2
    filled.delete(name, {"source": "billing.md"})
    assert filled.count(name, {"source": "billing.md"}) == 0
    assert filled.count(name) == len(corpus) - 2


def test_dense_finds_the_semantically_closest_passage(
    filled: VectorStore, name: str, embedder: Embedder, sparse_encoder: SparseEncoder
) -> None:
    hits = search(
        filled,
        name,
        "How can I change my login secret?",
        embedder,
        sparse_encoder,
        mode=SearchMode.DENSE,
    )
    assert keys(hits)[0] == "password"
    assert hits[0].text.startswith("To reset your password")
    assert hits == sorted(hits, key=lambda h: -h.score)
    assert 0.0 < hits[0].score <= 1.0


@pytest.mark.parametrize("mode", [SearchMode.HYBRID, SearchMode.SPARSE])
def test_keyword_query_is_found_by_keywords_not_by_meaning(
    filled: VectorStore,
    name: str,
    embedder: Embedder,
    sparse_encoder: SparseEncoder,
    mode: SearchMode,
) -> None:
    dense = search(filled, name, "ZX-4471", embedder, sparse_encoder, mode=SearchMode.DENSE)
    assert keys(dense)[0] != "kennel"  # the dense model prefers the passage that looks like codes
    hits = search(filled, name, "ZX-4471", embedder, sparse_encoder, mode=mode)
    assert keys(hits)[0] == "kennel"
    if mode is SearchMode.SPARSE:
        assert keys(hits) == ["kennel"]  # no other passage has any of its terms


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"source": "billing.md"}, {"invoice", "card"}),
        ({"tags": ["mobile", "misc"]}, {"offline", "sync", "kennel"}),
        ({"page": {"gte": 2, "lt": 5}}, {"2fa", "card", "fault-codes"}),
        ({"source": "troubleshooting.md", "page": {"gt": 4}}, {"offline", "sync"}),
        ({"page": 9}, {"kennel"}),
    ],
)
@pytest.mark.parametrize("mode", list(SearchMode))
def test_filters_restrict_results(
    filled: VectorStore,
    name: str,
    embedder: Embedder,
    sparse_encoder: SparseEncoder,
    flt: PayloadFilter,
    expected: set[str],
    mode: SearchMode,
) -> None:
    # a query sharing a keyword with every passage, so sparse mode can reach all of them
    query = "every passage: password code invoice card kennel fault banner sync"
    hits = search(filled, name, query, embedder, sparse_encoder, mode=mode, flt=flt)
    assert set(keys(hits)) == expected
    assert filled.count(name, flt) == len(expected)


def test_score_threshold_bounds_cosine_similarity(
    filled: VectorStore, name: str, embedder: Embedder, sparse_encoder: SparseEncoder
) -> None:
    query = "How can I change my login secret?"
    hits = search(filled, name, query, embedder, sparse_encoder, mode=SearchMode.DENSE)
    cut = (hits[0].score + hits[1].score) / 2
    above = search(
        filled, name, query, embedder, sparse_encoder, SearchMode.DENSE, score_threshold=cut
    )
    assert keys(above) == ["password"]
    # hybrid: the floor applies to the dense branch; this query has no keyword hit
    hybrid = search(filled, name, query, embedder, sparse_encoder, score_threshold=cut)
    assert keys(hybrid) == ["password"]
    none = search(
        filled, name, query, embedder, sparse_encoder, SearchMode.DENSE, score_threshold=0.99
    )
    assert none == []


@pytest.mark.parametrize("mode", list(SearchMode))
def test_top_k(
    filled: VectorStore,
    name: str,
    embedder: Embedder,
    sparse_encoder: SparseEncoder,
    mode: SearchMode,
) -> None:
    query = "every passage: password code invoice card kennel fault banner sync"
    assert len(search(filled, name, query, embedder, sparse_encoder, mode, top_k=3)) == 3
    assert len(search(filled, name, query, embedder, sparse_encoder, mode, top_k=1)) == 1


def test_document_hashes(filled: VectorStore, name: str) -> None:
    assert filled.document_hashes(name) == {
        "account.md": "hash-account.md",
        "billing.md": "hash-billing.md",
        "misc.md": "hash-misc.md",
        "troubleshooting.md": "hash-troubleshooting.md",
    }


def test_alias_switch_serves_the_new_collection(
    filled: VectorStore,
    name: str,
    corpus: dict[str, PointRecord],
    embedder: Embedder,
    sparse_encoder: SparseEncoder,
) -> None:
    new = filled.create_versioned(name, DIM)
    assert new != name
    billing = [p for p in corpus.values() if p.payload["source"] == "billing.md"]
    filled.upsert(new, [dataclasses.replace(p, payload={**p.payload, "v": 2}) for p in billing])
    assert filled.count(name) == len(corpus)  # readers of the alias still see the old data
    filled.switch_alias(name, new)
    assert filled.count(name) == 2
    hits = search(filled, name, "credit card payment", embedder, sparse_encoder)
    assert keys(hits)[0] == "card" and hits[0].payload["v"] == 2
    assert name in filled.list_collections()
    filled.ensure_collection(name, DIM)  # the alias counts as the collection
    assert filled.count(name) == 2


def test_unknown_collection_raises(
    store: VectorStore, name: str, corpus: dict[str, PointRecord]
) -> None:
    point = next(iter(corpus.values()))
    with pytest.raises(CollectionNotFound):
        store.search(name, dense=point.dense, sparse=point.sparse, mode=SearchMode.HYBRID, top_k=3)
    with pytest.raises(CollectionNotFound):
        store.count(name)
    with pytest.raises(CollectionNotFound):
        store.upsert(name, [point])
    with pytest.raises(CollectionNotFound):
        store.document_hashes(name)
    with pytest.raises(CollectionNotFound):
        store.switch_alias(name, "no_such_physical_collection")


def test_bad_filter_is_a_value_error(filled: VectorStore, name: str) -> None:
    with pytest.raises(ValueError):
        filled.count(name, {"page": {"between": [1, 2]}})
    with pytest.raises(ValueError):
        filled.delete(name, {})
