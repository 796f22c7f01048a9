"""The query path: real embedder through the batcher, real Edge store, timings, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from retrieval.batching import QueryBatcher
from retrieval.edge_store import EdgeStore
from retrieval.embedder import Embedder
from retrieval.retriever import Retriever
from retrieval.sparse import SparseEncoder
from retrieval.types import CollectionNotFound, PointRecord, SearchMode, StoreError

pytestmark = pytest.mark.anyio


@pytest.fixture
def retriever(
    tmp_path: Path,
    embedder: Embedder,
    sparse_encoder: SparseEncoder,
    corpus: dict[str, PointRecord],
) -> Retriever:
    store = EdgeStore(tmp_path)
    store.ensure_collection("docs", embedder.dimension)
    store.upsert("docs", list(corpus.values()))
    return Retriever(QueryBatcher(embedder), sparse_encoder, store)


@pytest.mark.parametrize("mode", list(SearchMode))
async def test_retrieve_ranks_filters_and_times(retriever: Retriever, mode: SearchMode) -> None:
    result = await retriever.retrieve(
        "How do I reset my password?",
        collection="docs",
        top_k=3,
        mode=mode,
        flt={"source": "account.md"},
        min_score=None,
    )
    assert result.hits[0].payload["key"] == "password"
    assert all(hit.payload["source"] == "account.md" for hit in result.hits)
    assert result.search_ms > 0
    assert result.embed_ms >= 0
    retriever.store.close()


async def test_concurrent_retrievals_each_get_their_answer(retriever: Retriever) -> None:
    questions = {
        "password": "How do I reset my password?",
        "card": "When are credit card payments processed?",
        "kennel": "ZX-4471",
        "offline": "my phone shows a red banner without network",
    }
    answers: dict[str, str] = {}

    async def ask(key: str) -> None:
        result = await retriever.retrieve(
            questions[key],
            collection="docs",
            top_k=1,
            mode=SearchMode.HYBRID,
            flt=None,
            min_score=None,
        )
        answers[key] = result.hits[0].payload["key"]

    async with anyio.create_task_group() as tg:
        for key in questions:
            tg.start_soon(ask, key)
    assert answers == {key: key for key in questions}
    retriever.store.close()


async def test_unknown_collection_and_closed_store(retriever: Retriever) -> None:
    with pytest.raises(CollectionNotFound):
        await retriever.retrieve(
            "x", collection="nope", top_k=3, mode=SearchMode.HYBRID, flt=None, min_score=None
        )
    retriever.store.close()
    with pytest.raises(StoreError):
        await retriever.retrieve(
            "x", collection="docs", top_k=3, mode=SearchMode.DENSE, flt=None, min_score=None
        )


async def test_a_failing_reranker_leaves_the_fused_order(
    tmp_path: Path,
    embedder: Embedder,
    sparse_encoder: SparseEncoder,
    corpus: dict[str, PointRecord],
) -> None:
    from retrieval.rerank import ERROR, Reranker

    store = EdgeStore(tmp_path)
    store.ensure_collection("docs", embedder.dimension)
    store.upsert("docs", list(corpus.values()))
    plain = Retriever(QueryBatcher(embedder), sparse_encoder, store)
    # nothing listens on port 9: the endpoint refuses at once
    reranker = Reranker("http://127.0.0.1:9/v1/rerank", "m", candidates=6, timeout_s=5)
    reranked = Retriever(QueryBatcher(embedder), sparse_encoder, store, reranker=reranker)
    args: dict[str, Any] = {"collection": "docs", "top_k": 3, "mode": SearchMode.HYBRID}
    expected = await plain.retrieve("How do I reset my password?", **args)
    result = await reranked.retrieve("How do I reset my password?", **args)
    assert [h.id for h in result.hits] == [h.id for h in expected.hits]
    assert result.rerank == ERROR and reranker.counts[ERROR] == 1 and expected.rerank is None
    store.close()
