"""The gateway deployment: ragserve's FastAPI app as Ray Serve's HTTP ingress.

Each replica builds the same app as ``ragserve serve`` (``gateway.app.create_app``) with two
things swapped in: retrieval goes to the retrieval deployment (embedder adapter, and its store
when there is no Qdrant server), and the engine router follows the engine replicas Ray runs.
Tokens stream from vLLM to this replica over HTTP, as without Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from gateway.app import build_engine, create_app
from gateway.retrieval_setup import RetrievalStack, fusion, reranker, sparse_encoder
from gateway.settings import Settings
from llm.router import Replica, Router
from llm.vllm_client import VLLMClient
from retrieval.batching import QueryBatcher
from retrieval.factory import open_store
from retrieval.retriever import Retriever
from retrieval.types import VectorStore
from serving.remote import RemoteEmbedder, RemoteStore

log = logging.getLogger("ray.serve")


def engine_router(settings: Settings, urls: list[str]) -> Router:
    """The router ``ragserve serve`` builds (same clients, timeouts, breakers) over ``urls``."""
    router = build_engine(settings.model_copy(update={"engine_urls": urls}))
    assert isinstance(router, Router)
    return router


def client_factory(settings: Settings) -> Callable[[str], VLLMClient]:
    """A ``VLLMClient`` for an engine replica that appears, configured as the first ones."""

    def make(url: str) -> VLLMClient:
        return engine_router(settings, [url]).replicas[0].client

    return make


async def remote_retrieval(
    handle: DeploymentHandle[Any], settings: Settings, *, serve_store: bool
) -> RetrievalStack:
    """The retrieval stack of a gateway replica, its embedder (and store) remote."""
    embedder = await RemoteEmbedder.connect(handle)
    sparse = sparse_encoder(settings)
    error: str | None = None
    store: VectorStore | None
    if serve_store:
        info = await handle.info.remote()
        error = info["store_error"]
        store = None if error else RemoteStore(handle)
    else:
        # a Qdrant server: every replica talks to it directly, one hop fewer
        store = await asyncio.to_thread(
            open_store, "server", path="", url=settings.qdrant_url, api_key=settings.qdrant_api_key
        )
    retriever = (
        Retriever(embedder, sparse, store, fusion=fusion(settings), reranker=reranker(settings))
        if store is not None
        else None
    )
    return RetrievalStack(embedder, sparse, store, QueryBatcher(embedder), retriever, error)


@serve.deployment(name="gateway", max_ongoing_requests=1024)
@serve.ingress()
class Gateway:
    """ragserve's HTTP API; engines: ``RAGSERVE_ENGINE_URLS`` plus the Ray engine replicas."""

    async def __init__(  # type: ignore[misc]
        self,
        retrieval: DeploymentHandle[Any],
        registry: DeploymentHandle[Any] | None = None,
        engines: DeploymentHandle[Any] | None = None,
        *,
        serve_store: bool = True,
        http_host: str = "127.0.0.1",
        http_port: int = 8000,
        engine_poll_s: float = 1.0,
    ) -> None:
        # Ray Serve's address: create_app refuses a public one without API keys, and the CLI
        # finds the gateway that holds the embedded store there
        self._settings = Settings().model_copy(update={"host": http_host, "port": http_port})
        self._registry = registry
        self._engines = engines  # bound so Serve deploys them; found through the registry
        self._external = list(self._settings.engine_urls)
        self._make_client = client_factory(self._settings)
        self._stack = await remote_retrieval(retrieval, self._settings, serve_store=serve_store)
        self._retired: list[Replica] = []
        urls = await self._wait_for_engines(engine_poll_s)
        self.router = engine_router(self._settings, urls)
        self._follow: asyncio.Task[None] | None = None
        if registry is not None:
            self._follow = asyncio.create_task(self._follow_engines(engine_poll_s))

    async def _engine_urls(self) -> list[str]:
        ray_urls: list[str] = []
        if self._registry is not None:
            ray_urls = await self._registry.urls.remote()
        return [*self._external, *ray_urls]

    async def _wait_for_engines(self, poll_s: float) -> list[str]:
        """The first engine URLs (the router needs one); the replica is not ready before."""
        while True:
            with contextlib.suppress(Exception):
                urls = await self._engine_urls()
                if urls:
                    return urls
            await asyncio.sleep(poll_s)

    async def _follow_engines(self, poll_s: float) -> None:
        """Keep the router's replicas equal to the live engine replicas, as Ray reports them."""
        while True:
            await asyncio.sleep(poll_s)
            try:
                urls = await self._engine_urls()
            except Exception as exc:  # the registry restarts; keep what we have
                log.warning("engine registry unreachable: %s", exc)
                continue
            removed = self.router.set_urls(urls, self._make_client)
            if removed:
                log.info("engine replicas gone: %s", [r.url for r in removed])
            self._retired.extend(removed)
            await self._close_idle_retired()

    async def _close_idle_retired(self) -> None:
        # a stream may still be reading from a replica that was dropped: close it once idle
        for replica in [r for r in self._retired if r.state.outstanding <= 0]:
            self._retired.remove(replica)
            await replica.client.aclose()

    def replica_pid(self) -> int:
        """This replica's process (tests kill it; Ray starts another)."""
        return os.getpid()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self._settings, engine=self.router, retrieval=self._stack)

    async def __del__(self) -> None:
        follow = getattr(self, "_follow", None)
        if follow is not None:
            follow.cancel()
        for replica in getattr(self, "_retired", []):
            with contextlib.suppress(Exception):
                await replica.client.aclose()
