"""Optional second stage: re-order the fused candidates with a rerank endpoint.

The endpoint speaks the rerank API that vLLM (``/v1/rerank``, ``/v2/rerank``), Cohere and Jina
share: ``POST {"model", "query", "documents": [text, ...], "top_n"}`` answers
``{"results": [{"index": i, "relevance_score": s}, ...]}``. ``url`` is the full endpoint URL.

The stage never makes retrieval worse than fused order: on a timeout (``timeout_s`` bounds the
whole call), a connection or HTTP error, or an answer that does not fit the request, the
fused order is returned, the outcome counted in ``counts`` (and passed to ``on_outcome``, which
the gateway turns into a metric) and logged. No reranker weights ship offline with ragserve:
point it at a server that has one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio
import httpx

from retrieval.types import SearchHit

log = logging.getLogger("ragserve.retrieval")

# outcomes counted in Reranker.counts
OK, TIMEOUT, ERROR, SKIPPED = "ok", "timeout", "error", "skipped"


@dataclass(frozen=True, slots=True)
class Reranked:
    """The hits to use, and what the stage did."""

    hits: list[SearchHit]
    outcome: str  # OK, TIMEOUT, ERROR or SKIPPED
    ms: float = 0.0


class Reranker:
    """Re-scores up to ``candidates`` fused hits; the rest of the list keeps fused order."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        candidates: int = 20,
        timeout_s: float = 1.0,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        if candidates < 1 or timeout_s <= 0:
            raise ValueError("need candidates >= 1 and timeout_s > 0")
        self.url = url
        self.model = model
        self.candidates = candidates
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client
        self._on_outcome = on_outcome
        self.counts: Counter[str] = Counter()

    async def rerank(self, query: str, hits: Sequence[SearchHit], top_k: int) -> Reranked:
        """The best ``top_k`` of ``hits`` by the endpoint's scores, or fused order on failure."""
        fused = list(hits[:top_k])
        pool = list(hits[: self.candidates])
        if len(pool) < 2:
            return self._done(Reranked(fused, SKIPPED))
        started = time.perf_counter()
        try:
            with anyio.fail_after(self.timeout_s):
                results = await self._call(query, [hit.text for hit in pool])
            reordered = _apply(pool, results)
        except TimeoutError:
            log.warning("rerank timed out after %.2f s: fused order kept", self.timeout_s)
            return self._done(Reranked(fused, TIMEOUT, _ms(started)))
        except httpx.TimeoutException:
            log.warning("rerank timed out: fused order kept")
            return self._done(Reranked(fused, TIMEOUT, _ms(started)))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("rerank failed (%s: %s): fused order kept", type(exc).__name__, exc)
            return self._done(Reranked(fused, ERROR, _ms(started)))
        # candidates the endpoint did not rank stay after those it did, in fused order
        rest = [hit for hit in hits if all(hit.id != r.id for r in reordered)]
        return self._done(Reranked([*reordered, *rest][:top_k], OK, _ms(started)))

    async def _call(self, query: str, documents: list[str]) -> Any:
        body = {"model": self.model, "query": query, "documents": documents,
                "top_n": len(documents)}  # fmt: skip
        timeout = httpx.Timeout(self.timeout_s)
        if self._client is not None:
            response = await self._client.post(
                self.url, json=body, headers=self._headers, timeout=timeout
            )
        else:
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    self.url, json=body, headers=self._headers, timeout=timeout
                )
        response.raise_for_status()
        return response.json()

    def _done(self, result: Reranked) -> Reranked:
        self.counts[result.outcome] += 1
        if self._on_outcome is not None:
            try:
                self._on_outcome(result.outcome)
            except Exception:  # a metrics hook must not fail retrieval
                log.exception("rerank on_outcome hook failed")
        return result


def _apply(pool: list[SearchHit], answer: Any) -> list[SearchHit]:
    """``pool`` re-ordered by the answer's scores; ValueError if it does not fit the request."""
    results = answer["results"]
    if not isinstance(results, list) or not results:
        raise ValueError("no results")
    scored: dict[int, float] = {}
    for item in results:
        index = item["index"]
        score = item.get("relevance_score", item.get("score"))
        if not isinstance(index, int) or not 0 <= index < len(pool) or index in scored:
            raise ValueError(f"result index {index!r} does not name a candidate")
        if not isinstance(score, int | float):
            raise ValueError(f"result {index} has no numeric relevance_score")
        scored[index] = float(score)
    order = sorted(scored, key=lambda i: (-scored[i], i))
    return [replace(pool[i], score=scored[i]) for i in order]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
