"""The engines' prefix-cache counters, exported beside the gateway's own metrics.

vLLM counts the prompt tokens it looked up in its prefix cache and those it found there
(``vllm:prefix_cache_queries_total``, ``vllm:prefix_cache_hits_total``; one series per
engine core and model). When ``/metrics`` is scraped, the gateway first reads each engine
replica's ``/metrics`` (concurrently, each bounded by a short timeout, at most once every
few seconds), sums those series per replica and exports them as
``ragserve_engine_prefix_cache_{queries,hits}_total{upstream}``: the hit rate is
``rate(hits) / rate(queries)``. A replica that does not answer is left out of that scrape
and shows ``ragserve_engine_metrics_up{upstream} 0``; the scrape itself never fails.

prometheus_client collects synchronously, inside ``generate_latest`` on the event loop,
so nothing may wait for the network there: the engines are read before, by a pure ASGI
middleware on the ``/metrics`` path, and ``collect()`` only reports what it left.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import aiohttp
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from llm.router import Replica

READ_TIMEOUT_S = 1.0  # per replica; a Prometheus scrape times out after 10 s by default
MAX_AGE_S = 5.0  # scrapes closer together than this share one read of the engines

# One sample line of vLLM's text exposition, e.g.
#   vllm:prefix_cache_hits_total{engine="0",model_name="m"} 256.0
# Label values are quoted and may hold any character, braces included.
_SERIES = re.compile(
    rb'^vllm:prefix_cache_(queries|hits)_total(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?[ \t]+(\S+)',
    re.MULTILINE,
)

Counters = dict[str, float]  # "queries" / "hits" -> tokens


def parse_prefix_cache(page: bytes) -> Counters:
    """The prefix-cache counters of one vLLM ``/metrics`` page, each summed over vLLM's own
    labels (engine core, model). A scan for two series, not a full parse: the page is ~60 KB
    of histograms and this runs on the event loop."""
    totals: Counters = {}
    for kind, value in _SERIES.findall(page):
        name = kind.decode()
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


class EngineMetrics(Collector):
    """A prometheus_client collector of the replicas' prefix-cache counters; ``refresh()``
    reads the engines, ``collect()`` reports the last read."""

    def __init__(
        self,
        replicas: Callable[[], Iterable[Replica]],
        *,
        timeout_s: float = READ_TIMEOUT_S,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self._replicas = replicas
        self._timeout_s = timeout_s
        self._max_age_s = max_age_s
        self._counters: dict[str, Counters | None] = {}  # upstream -> None: did not answer
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._read_at is not None and time.monotonic() - self._read_at < self._max_age_s

    async def refresh(self) -> None:
        """Read every replica's counters, unless a read less than ``max_age_s`` old exists."""
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():  # a concurrent scrape read them while this one waited
                return
            replicas = list(self._replicas())
            counters = await asyncio.gather(*(self._read(replica) for replica in replicas))
            self._counters = {r.url: c for r, c in zip(replicas, counters, strict=True)}
            self._read_at = time.monotonic()

    async def _read(self, replica: Replica) -> Counters | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                async with replica.client.session.get(
                    # The session does not decompress (it relays bytes): ask for plain text.
                    "/metrics",
                    headers={"Accept-Encoding": "identity"},
                ) as response:
                    if response.status != 200:
                        return None
                    return parse_prefix_cache(await response.read())
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    def describe(self) -> Iterator[Metric]:
        return self._families(with_samples=False)

    def collect(self) -> Iterator[Metric]:
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> Iterator[Metric]:
        queries = CounterMetricFamily(
            "ragserve_engine_prefix_cache_queries",
            "Prompt tokens the engine replica looked up in its prefix cache (vLLM's counter)",
            labels=["upstream"],
        )
        hits = CounterMetricFamily(
            "ragserve_engine_prefix_cache_hits",
            "Prompt tokens the engine replica found in its prefix cache (vLLM's counter)",
            labels=["upstream"],
        )
        up = GaugeMetricFamily(
            "ragserve_engine_metrics_up",
            "1 when the replica's /metrics answered at the last read, else 0",
            labels=["upstream"],
        )
        for upstream, counters in self._counters.items() if with_samples else ():
            up.add_metric([upstream], 0.0 if counters is None else 1.0)
            if counters:
                queries.add_metric([upstream], counters.get("queries", 0.0))
                hits.add_metric([upstream], counters.get("hits", 0.0))
        yield from (queries, hits, up)


class RefreshBeforeScrape:
    """Reads the engines' counters before ``path`` renders; other requests pass straight
    through (pure ASGI, nothing wrapped)."""

    def __init__(self, app: ASGIApp, *, engine_metrics: EngineMetrics, path: str = "/metrics"):
        self.app = app
        self._engine_metrics = engine_metrics
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self._path:
            await self._engine_metrics.refresh()
        await self.app(scope, receive, send)


def _replicas_of(engine: Any) -> list[Replica]:
    # A Router has replicas; an engine without them (a test's replay engine) exports none.
    return list(getattr(engine, "replicas", ()))


def install_engine_metrics(app: FastAPI, registry: CollectorRegistry) -> EngineMetrics:
    """Export the replicas of ``app.state.engine`` (set in the lifespan; replicas may come
    and go) on ``registry``, read when ``/metrics`` is scraped."""
    engine_metrics = EngineMetrics(lambda: _replicas_of(getattr(app.state, "engine", None)))
    registry.register(engine_metrics)
    app.add_middleware(RefreshBeforeScrape, engine_metrics=engine_metrics)
    return engine_metrics
