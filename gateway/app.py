"""The app factory: clients are created once, in the lifespan, and shared by requests."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.datastructures import State

from gateway import playground, system
from gateway.admission import Admission, Limits, LocalAdmission
from gateway.answer_cache import open_answer_cache
from gateway.answer_cache.answers import Answers
from gateway.auth import KeyRing, load_keys
from gateway.chat import routes as chat_routes
from gateway.chat.service import ChatService
from gateway.completions import routes as completion_routes
from gateway.completions.service import CompletionsService
from gateway.deps import AppServices
from gateway.documents import routes as document_routes
from gateway.documents.service import DocumentService
from gateway.embeddings import routes as embedding_routes
from gateway.embeddings.service import EmbeddingService, embedding_model_name
from gateway.engine_metrics import install_engine_metrics
from gateway.errors import install_error_handlers, publish_openai_errors
from gateway.exposure import check_exposure
from gateway.flow import Services
from gateway.lifecycle import Lifecycle
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.middleware import BodyLimitMiddleware, RequestContextMiddleware
from gateway.models import ModelRegistry
from gateway.rag.pipeline import RagDefaults, RagPipeline
from gateway.responses import routes as response_routes
from gateway.responses.service import ResponsesService
from gateway.retrieval_setup import RetrievalStack, open_retrieval
from gateway.search import routes as search_routes
from gateway.settings import Settings, get_settings
from gateway.store_access import advertise, withdraw
from gateway.tracing import configure_tracing, shutdown_tracing
from ingest.targets import StoreTarget
from llm.router import Router
from llm.types import Engine
from llm.vllm_client import VLLMClient


def build_engine(settings: Settings) -> Engine:
    if not settings.engine_urls:
        raise RuntimeError(
            "no engine configured: set RAGSERVE_ENGINE_URLS or start with `ragserve serve`, "
            "which launches a local engine"
        )
    clients = [
        VLLMClient(
            url,
            api_key=settings.engine_api_key,
            connect_timeout=settings.engine_connect_timeout_s,
            first_token_timeout=settings.engine_first_token_timeout_s,
            token_gap_timeout=settings.engine_token_gap_timeout_s,
            response_timeout=settings.engine_response_timeout_s,
        )
        for url in settings.engine_urls
    ]
    return Router(
        clients,
        failure_threshold=settings.engine_failure_threshold,
        cooldown_s=settings.engine_cooldown_s,
    )


def rag_defaults(settings: Settings) -> RagDefaults:
    return RagDefaults(
        collection=settings.collection,
        top_k=settings.top_k,
        mode=settings.search_mode,
        min_score=settings.min_score,
        on_store_error=settings.on_store_error,
        dedupe_similarity=settings.dedupe_similarity,
    )


def build_admission(settings: Settings, metrics: Metrics) -> Admission:
    limits = Limits(settings.max_concurrent_requests, settings.queue_size, settings.queue_timeout_s)
    if settings.redis_url is None:
        return LocalAdmission(limits)
    from gateway.admission_redis import RedisAdmission

    return RedisAdmission.from_url(
        settings.redis_url,
        limits,
        prefix=settings.redis_prefix,
        lease_s=settings.admission_lease_s,
        on_backend_error=metrics.admission_backend_errors.inc,
    )


def build_services(
    settings: Settings,
    engine: Engine,
    retrieval: RetrievalStack,
    state: State,
) -> AppServices:
    """The routes' services, each built once, wired to each other here and nowhere else."""
    models = ModelRegistry(engine, settings.model_aliases)
    pipeline = RagPipeline(retrieval.retriever, engine, rag_defaults(settings))
    store = retrieval.store
    documents = (
        # The composition root wires ingest in; gateway modules know only the seam.
        DocumentService(
            StoreTarget(store, retrieval.embedder, retrieval.sparse,
                        max_bytes=settings.max_upload_bytes),
            store,
            settings.max_upload_bytes,
        )
        if store is not None
        else None
    )  # fmt: skip
    return AppServices(
        settings=settings,
        keys=state.keys,
        proxy=Services(
            engine,
            state.admission,
            state.lifecycle,
            state.metrics,
            state.answers,
            keepalive_s=settings.stream_keepalive_s,
        ),
        models=models,
        retrieval=retrieval,
        embeddings=EmbeddingService(
            retrieval.embedder, embedding_model_name(settings.embedding_model)
        ),
        documents_service=documents,
        chat=ChatService(
            engine,
            models,
            pipeline,
            state.metrics,
            max_messages=settings.max_messages,
            max_input_tokens=settings.max_input_tokens,
        ),
        completions=CompletionsService(models, pipeline, state.metrics),
        responses=ResponsesService(engine, models, pipeline, state.metrics),
    )


def build_answers(settings: Settings, metrics: Metrics) -> Answers:
    """The answer cache: Redis when the gateway shares one, else this process's memory."""
    if not settings.answer_cache:
        return Answers(None, metrics)
    cache = open_answer_cache(
        settings.redis_url,
        settings.answer_cache_max_mb * 2**20,
        settings.answer_cache_ttl_s,
        prefix=f"{settings.redis_prefix}:answer:",
        on_error=metrics.answer_cache_errors.inc,
    )
    return Answers(cache, metrics)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    retrieval: RetrievalStack | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    check_exposure(settings)  # no keys on a non-loopback address: refuse to start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or build_engine(settings)
        app.state.retrieval = retrieval or await open_retrieval(
            settings, on_batch=app.state.metrics.embed_batch_size.observe
        )
        app.state.lifecycle.install()
        app.state.keys = KeyRing(load_keys(settings.api_keys, settings.api_keys_file))
        app.state.admission = build_admission(settings, app.state.metrics)
        app.state.answers = build_answers(settings, app.state.metrics)
        app.state.services = build_services(
            settings, app.state.engine, app.state.retrieval, app.state
        )
        checks = None
        if isinstance(app.state.engine, Router) and settings.engine_health_interval_s > 0:
            checks = asyncio.create_task(
                app.state.engine.run_health_checks(settings.engine_health_interval_s)
            )
        advertised = advertise(settings) if app.state.retrieval.store is not None else None
        # Start-up leaves ~500k long-lived objects (torch, the embedder); without this every
        # full collection walks them all, stalling streams (measured: ~44 % of the relay's
        # CPU under load went to the collector). Frozen objects are never scanned again.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if checks is not None:
                checks.cancel()
            withdraw(advertised)
            await app.state.admission.aclose()
            await app.state.answers.aclose()
            if settings.otlp_endpoint:
                shutdown_tracing()
            await app.state.engine.aclose()
            if retrieval is None:
                await app.state.retrieval.aclose()

    app = FastAPI(title="ragserve", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = Metrics()
    install_engine_metrics(app, app.state.metrics.registry)  # replicas' prefix-cache counters
    app.state.lifecycle = Lifecycle(settings.drain_timeout_s)
    configure_logging(settings.log_level)
    configure_tracing(settings.otlp_endpoint, settings.otel_service_name)
    app.add_middleware(
        BodyLimitMiddleware,
        max_json_bytes=settings.max_json_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(chat_routes.router)
    app.include_router(completion_routes.router)
    app.include_router(response_routes.router)
    app.include_router(embedding_routes.router)
    app.include_router(search_routes.router)
    app.include_router(document_routes.router)
    app.include_router(playground.router)
    publish_openai_errors(app)
    return app
