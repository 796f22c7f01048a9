"""The app factory: clients are created once, in the lifespan, and shared by requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import system
from gateway.chat import routes as chat_routes
from gateway.chat.service import ChatService
from gateway.errors import install_error_handlers
from gateway.models import ModelRegistry
from gateway.settings import Settings, get_settings
from llm.types import Engine
from llm.vllm_client import VLLMClient


def build_engine(settings: Settings) -> Engine:
    if not settings.engine_urls:
        raise RuntimeError(
            "no engine configured: set RAGSERVE_ENGINE_URLS or start with `ragserve serve`, "
            "which launches a local engine"
        )
    return VLLMClient(
        settings.engine_urls[0],
        api_key=settings.engine_api_key,
        connect_timeout=settings.engine_connect_timeout_s,
        first_token_timeout=settings.engine_first_token_timeout_s,
        token_gap_timeout=settings.engine_token_gap_timeout_s,
    )


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or build_engine(settings)
        app.state.models = ModelRegistry(app.state.engine, settings.model_aliases)
        app.state.chat = ChatService(app.state.engine, app.state.models)
        try:
            yield
        finally:
            await app.state.engine.aclose()

    app = FastAPI(title="ragserve", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(chat_routes.router)
    return app
