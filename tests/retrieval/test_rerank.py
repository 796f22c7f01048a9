"""The rerank stage: the request it sends and every way it falls back to fused order.

No reranker weights ship offline here, so the endpoint below is a *scripted rerank endpoint*
(an ``httpx.MockTransport``): it exists to inject faults and to record requests, not to prove
ranking quality.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from retrieval.rerank import ERROR, OK, SKIPPED, TIMEOUT, Reranker, _apply
from retrieval.types import SearchHit

HITS = [SearchHit(f"id{i}", 1.0 / (i + 1), {"text": f"passage {i}"}) for i in range(5)]


def scripted_endpoint(
    answer: Callable[[dict[str, Any]], httpx.Response], seen: list[dict[str, Any]]
) -> httpx.AsyncClient:
    """A scripted rerank endpoint: records each request body, answers with ``answer``."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        return answer(body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_scores_reorder_the_candidates_and_unranked_ones_follow() -> None:
    answer = {
        "results": [{"index": 2, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]
    }
    ordered = _apply(HITS[:3], answer)
    assert [h.id for h in ordered] == ["id2", "id0"]
    assert ordered[0].score == 0.9


@pytest.mark.parametrize(
    "answer",
    [
        {"results": []},
        {"results": [{"index": 7, "relevance_score": 1.0}]},
        {"results": [{"index": 0, "relevance_score": "high"}]},
        {"results": [{"index": 0, "relevance_score": 1}, {"index": 0, "relevance_score": 2}]},
        {"data": []},
    ],
)
def test_answers_that_do_not_fit_the_request_are_errors(answer: dict[str, Any]) -> None:
    with pytest.raises((ValueError, KeyError)):
        _apply(HITS[:3], answer)


@pytest.mark.anyio
async def test_request_shape_and_the_rest_in_fused_order() -> None:
    seen: list[dict[str, Any]] = []
    client = scripted_endpoint(
        lambda body: httpx.Response(
            200,
            json={
                "results": [
                    {"index": 1, "relevance_score": 0.8},
                    {"index": 0, "relevance_score": 0.3},
                    {"index": 2, "relevance_score": 0.1},
                ]
            },
        ),  # fmt: skip
        seen,
    )
    outcomes: list[str] = []
    reranker = Reranker("http://rerank.test/v1/rerank", "bge", candidates=3, client=client,
                        on_outcome=outcomes.append)  # fmt: skip
    result = await reranker.rerank("what", HITS, top_k=4)
    assert seen == [{"model": "bge", "query": "what", "top_n": 3,
                     "documents": ["passage 0", "passage 1", "passage 2"]}]  # fmt: skip
    assert [h.id for h in result.hits] == ["id1", "id0", "id2", "id3"]
    assert result.outcome == OK and outcomes == [OK]


@pytest.mark.anyio
async def test_http_errors_and_bad_answers_keep_fused_order() -> None:
    seen: list[dict[str, Any]] = []
    failing = scripted_endpoint(lambda body: httpx.Response(500, text="boom"), seen)
    reranker = Reranker("http://rerank.test/v1/rerank", "m", client=failing)
    result = await reranker.rerank("q", HITS, top_k=3)
    assert [h.id for h in result.hits] == ["id0", "id1", "id2"] and result.outcome == ERROR
    garbled = scripted_endpoint(lambda body: httpx.Response(200, text="not json"), seen)
    reranker = Reranker("http://rerank.test/v1/rerank", "m", client=garbled)
    assert (await reranker.rerank("q", HITS, top_k=3)).outcome == ERROR
    assert reranker.counts[ERROR] == 1


@pytest.mark.anyio
async def test_an_unreachable_endpoint_keeps_fused_order() -> None:
    # port 9 on loopback: nothing listens, the connection is refused at once
    reranker = Reranker("http://127.0.0.1:9/v1/rerank", "m", timeout_s=5)
    result = await reranker.rerank("q", HITS, top_k=2)
    assert [h.id for h in result.hits] == ["id0", "id1"] and result.outcome == ERROR


@pytest.mark.anyio
async def test_a_slow_endpoint_is_cut_at_the_budget() -> None:
    never = anyio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        await never.wait()  # a scripted endpoint that never answers
        raise AssertionError("unreachable")

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    reranker = Reranker("http://rerank.test/v1/rerank", "m", timeout_s=0.05, client=client)
    result = await reranker.rerank("q", HITS, top_k=2)
    assert [h.id for h in result.hits] == ["id0", "id1"]
    assert result.outcome == TIMEOUT and reranker.counts == {TIMEOUT: 1}


@pytest.mark.anyio
async def test_fewer_than_two_candidates_are_not_sent() -> None:
    seen: list[dict[str, Any]] = []
    client = scripted_endpoint(lambda body: httpx.Response(500), seen)
    reranker = Reranker("http://rerank.test/v1/rerank", "m", client=client)
    result = await reranker.rerank("q", HITS[:1], top_k=5)
    assert result.outcome == SKIPPED and [h.id for h in result.hits] == ["id0"] and not seen


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Reranker("http://x/v1/rerank", "m", candidates=0)
