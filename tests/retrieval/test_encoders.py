"""Keyword encoder versions: a collection answers with the encoder it was built with, writes of
another encoder are refused with a hint to re-index, and nothing mixes silently."""

from __future__ import annotations

import dataclasses

import anyio
import anyio.lowlevel
import pytest

from retrieval.batching import QueryBatcher
from retrieval.embedder import Embedder
from retrieval.encoders import EncoderMismatch, collection_encoder
from retrieval.retriever import Retriever
from retrieval.sparse import ENCODER_FIELD, LEGACY_VERSION, SparseEncoder
from retrieval.types import PointRecord, SearchMode, StoreError, VectorStore

STEMMED = SparseEncoder(stemmer="english")
PLAIN = SparseEncoder(stemmer=None)
# stemming is what makes this match: the passage says "inhibition", the query "inhibits"
PASSAGE = "Aspirin causes inhibition of platelet aggregation in most patients."
QUERY = "what inhibits platelets"


def point(embedder: Embedder, text: str, encoder: SparseEncoder | None, key: str) -> PointRecord:
    """A point keyword-encoded by ``encoder``; None: a legacy point (no version stamped)."""
    sparse = (encoder or PLAIN).encode_document(text)
    if encoder is None:  # what collections written before versions existed hold
        sparse = dataclasses.replace(sparse, encoder=None)
    (dense,) = embedder.embed_documents([text])
    return PointRecord(id=key, dense=dense, sparse=sparse, payload={"text": text})


def ids(n: int) -> list[str]:
    return [f"00000000-0000-0000-0000-{i:012d}" for i in range(n)]


def test_points_carry_their_encoder_version(
    store: VectorStore, name: str, embedder: Embedder
) -> None:
    store.ensure_collection(name, embedder.dimension)
    assert collection_encoder(store, name, STEMMED) is STEMMED  # empty: the preferred one
    store.upsert(name, [point(embedder, PASSAGE, STEMMED, ids(1)[0])])
    (hit,) = store.search(name, dense=None, sparse=STEMMED.encode_query(QUERY),
                          mode=SearchMode.SPARSE, top_k=3)  # fmt: skip
    assert hit.payload[ENCODER_FIELD] == STEMMED.version
    assert collection_encoder(store, name, PLAIN).version == STEMMED.version


def test_a_legacy_collection_keeps_its_encoder_and_refuses_another(
    store: VectorStore, name: str, embedder: Embedder
) -> None:
    store.ensure_collection(name, embedder.dimension)
    store.upsert(name, [point(embedder, PASSAGE, None, ids(1)[0])])
    assert collection_encoder(store, name, STEMMED).version == LEGACY_VERSION
    with pytest.raises(StoreError, match="--reindex"):
        store.upsert(name, [point(embedder, "Another passage.", STEMMED, ids(2)[1])])
    store.upsert(name, [point(embedder, "Another passage.", PLAIN, ids(2)[1])])  # same encoder
    assert store.count(name) == 2


def test_mixed_collections_are_reported(store: VectorStore, name: str, embedder: Embedder) -> None:
    store.ensure_collection(name, embedder.dimension)
    first, second = ids(2)
    store.upsert(name, [point(embedder, PASSAGE, None, first)])
    # a store opened by older code would not have refused this write: simulate it
    stamped = point(embedder, "Another passage.", STEMMED, second)
    payload = {**stamped.payload, ENCODER_FIELD: STEMMED.version}
    bare = dataclasses.replace(stamped.sparse, encoder=None)
    unchecked = dataclasses.replace(stamped, sparse=bare, payload=payload)
    store.upsert(name, [unchecked])
    with pytest.raises(EncoderMismatch, match="--reindex"):
        collection_encoder(store, name, STEMMED)


@pytest.mark.anyio
async def test_the_retriever_queries_each_collection_with_its_own_encoder(
    store: VectorStore, embedder: Embedder
) -> None:
    first, second = ids(2)
    store.ensure_collection("t_old", embedder.dimension)
    store.upsert("t_old", [point(embedder, PASSAGE, None, first)])
    store.ensure_collection("t_new", embedder.dimension)
    store.upsert("t_new", [point(embedder, PASSAGE, STEMMED, second)])
    retriever = Retriever(QueryBatcher(embedder), STEMMED, store)
    # stemmed query terms ("inhibit") find the stemmed collection
    new = await retriever.retrieve(QUERY, collection="t_new", top_k=3, mode=SearchMode.SPARSE)
    assert [h.id for h in new.hits] == [second]
    # the legacy one is asked with unstemmed terms: "inhibits" is not in it, so nothing matches,
    # which is what that collection answered before (no stemmed term leaks into it)
    old = await retriever.retrieve(QUERY, collection="t_old", top_k=3, mode=SearchMode.SPARSE)
    assert old.hits == []
    exact = await retriever.retrieve("inhibition", collection="t_old", top_k=3,
                                     mode=SearchMode.SPARSE)  # fmt: skip
    assert [h.id for h in exact.hits] == [first]


@pytest.mark.anyio
async def test_an_alias_switched_to_another_encoder_is_noticed_at_once(
    store: VectorStore, embedder: Embedder
) -> None:
    first, second = ids(2)
    store.ensure_collection("t_docs", embedder.dimension)
    store.upsert("t_docs", [point(embedder, PASSAGE, None, first)])
    retriever = Retriever(QueryBatcher(embedder), STEMMED, store)
    found = await retriever.retrieve("inhibition", collection="t_docs", top_k=3,
                                     mode=SearchMode.HYBRID)  # fmt: skip
    assert found.hits[0].id == first
    # re-index with the stemmed encoder behind the same alias; the retriever's cache is stale
    fresh = store.create_versioned("t_docs", embedder.dimension)
    store.upsert(fresh, [point(embedder, PASSAGE, STEMMED, second)])
    store.switch_alias("t_docs", fresh)
    result = await retriever.retrieve(QUERY, collection="t_docs", top_k=3, mode=SearchMode.HYBRID)
    assert result.hits[0].id == second
    sparse = await retriever.retrieve(QUERY, collection="t_docs", top_k=3, mode=SearchMode.SPARSE)
    assert [h.id for h in sparse.hits] == [second]
    await anyio.lowlevel.checkpoint()
