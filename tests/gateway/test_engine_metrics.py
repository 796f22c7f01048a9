"""The engines' prefix-cache counters on the gateway's /metrics: read from each replica's
page, summed over vLLM's labels, a replica that is down or silent skipped (in-process
servers standing in for vLLM's /metrics; no engine)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.engine_metrics import EngineMetrics, install_engine_metrics, parse_prefix_cache
from llm.router import Router
from llm.vllm_client import VLLMClient
from tests.support.processes import free_port

pytestmark = pytest.mark.anyio

# Recorded from vLLM 0.32's /metrics (CPU build), trimmed to the prefix-cache families and
# their neighbours (long help texts cut, the model name shortened); a second engine core's
# series added, as a data-parallel engine reports them.
RECORDED = b"""\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smollm2"} 0.0
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="smollm2"} 1323.0
vllm:prefix_cache_queries_total{engine="1",model_name="smollm2"} 677.0
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="smollm2"} 1.796291938293035e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="smollm2"} 256.0
vllm:prefix_cache_hits_total{engine="1",model_name="smollm2"} 128.0
# HELP vllm:prefix_cache_hits_created Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_created gauge
vllm:prefix_cache_hits_created{engine="0",model_name="smollm2"} 1.796291938293048e+09
# HELP vllm:external_prefix_cache_hits_total External prefix cache hits from KV connector ...
# TYPE vllm:external_prefix_cache_hits_total counter
vllm:external_prefix_cache_hits_total{engine="0",model_name="smollm2"} 99.0
# HELP vllm:prompt_tokens_cached_by_source_total Prefix-cache hit tokens by the cache tier ...
# TYPE vllm:prompt_tokens_cached_by_source_total counter
vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="smollm2",source="device"} 256.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="smollm2"} 0.0
"""


def test_each_counter_is_summed_over_vllm_labels_and_nothing_else_is_counted() -> None:
    assert parse_prefix_cache(RECORDED) == {"queries": 2000.0, "hits": 384.0}


def test_label_values_with_braces_and_spaces_do_not_hide_a_sample() -> None:
    page = b'vllm:prefix_cache_hits_total{model_name="odd} name {x",engine="0"} 42.0\n'
    assert parse_prefix_cache(page) == {"hits": 42.0}


def test_a_page_without_the_counters_reads_as_none_of_them() -> None:
    assert parse_prefix_cache(b"# HELP up\nup 1\n") == {}


@asynccontextmanager
async def metrics_page(body: bytes, requests: list[str]) -> AsyncIterator[str]:
    """A server answering ``/metrics`` with ``body`` (counting its requests), like vLLM."""

    async def handler(request: web.Request) -> web.Response:
        requests.append(request.headers.get("Accept-Encoding", ""))
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers (a wedged engine)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def router_over(*urls: str) -> AsyncIterator[Router]:
    router = Router([VLLMClient(url) for url in urls])
    try:
        yield router
    finally:
        await router.aclose()


def exported(registry: CollectorRegistry) -> dict[str, float]:
    lines = generate_latest(registry).decode().splitlines()
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in lines if not line.startswith("#"))
        if name.startswith("ragserve_engine_")
    }


async def test_a_dead_and_a_silent_replica_are_skipped_and_the_live_one_exported() -> None:
    requests: list[str] = []
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with (
        metrics_page(RECORDED, requests) as live,
        silent_server() as silent,
        router_over(live, dead, silent) as router,
    ):
        engine_metrics = EngineMetrics(lambda: router.replicas, timeout_s=0.5)
        registry = CollectorRegistry()
        registry.register(engine_metrics)
        await engine_metrics.refresh()
        figures = exported(registry)
    assert requests == ["identity"]  # the relay's session does not decompress
    assert figures == {
        f'ragserve_engine_prefix_cache_queries_total{{upstream="{live}"}}': 2000.0,
        f'ragserve_engine_prefix_cache_hits_total{{upstream="{live}"}}': 384.0,
        f'ragserve_engine_metrics_up{{upstream="{live}"}}': 1.0,
        f'ragserve_engine_metrics_up{{upstream="{dead}"}}': 0.0,
        f'ragserve_engine_metrics_up{{upstream="{silent}"}}': 0.0,
    }


async def test_scrapes_close_together_share_one_read_and_a_later_one_reads_again() -> None:
    requests: list[str] = []
    async with metrics_page(RECORDED, requests) as live, router_over(live) as router:
        cached = EngineMetrics(lambda: router.replicas, max_age_s=3600)
        await asyncio.gather(cached.refresh(), cached.refresh())
        await cached.refresh()
        assert len(requests) == 1
        uncached = EngineMetrics(lambda: router.replicas, max_age_s=0)
        await uncached.refresh()
        await uncached.refresh()
        assert len(requests) == 3


def metrics_app(engine: object) -> FastAPI:
    """A bare app with a /metrics route like the gateway's, engine metrics installed."""
    app = FastAPI()
    registry = CollectorRegistry()
    install_engine_metrics(app, registry)
    app.state.engine = engine  # as the gateway's lifespan sets it

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def test_the_metrics_route_reads_the_engines_before_it_renders() -> None:
    requests: list[str] = []
    async with metrics_page(RECORDED, requests) as live, router_over(live) as router:
        app = metrics_app(router)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            other = await client.get("/not-metrics")
            assert requests == []  # other paths pass straight through
            page = (await client.get("/metrics")).text
    assert other.status_code == 404
    assert f'ragserve_engine_prefix_cache_hits_total{{upstream="{live}"}} 384.0' in page


async def test_an_app_whose_engine_has_no_replicas_exports_no_engine_series() -> None:
    app = metrics_app(object())  # e.g. a replay engine in a test
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "ragserve_engine_prefix_cache_hits_total{" not in response.text
