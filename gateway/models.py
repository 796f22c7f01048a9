"""Public model names: the engine's own models plus the aliases from settings."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.errors import NotFound
from gateway.settings import ModelAlias
from llm.types import Engine

_REFRESH_AFTER_S = 5.0


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    public_name: str
    engine_model: str
    alias: ModelAlias | None


class ModelRegistry:
    def __init__(self, engine: Engine, aliases: dict[str, ModelAlias]) -> None:
        self._engine = engine
        self._aliases = aliases
        self._engine_models: list[str] = []
        self._fetched_at = 0.0

    async def engine_models(self, *, refresh: bool = False) -> list[str]:
        stale = time.monotonic() - self._fetched_at > _REFRESH_AFTER_S
        if not self._engine_models or (refresh and stale):
            self._engine_models = await self._engine.list_models()
            self._fetched_at = time.monotonic()
        return self._engine_models

    async def public_names(self) -> list[str]:
        return [*await self.engine_models(), *self._aliases]

    async def resolve(self, name: str) -> ResolvedModel:
        """The engine model behind ``name``; ``NotFound`` (404, param ``model``) if none."""
        models = await self.engine_models()
        if name not in models and name not in self._aliases:
            models = await self.engine_models(refresh=True)
        if name in models:
            return ResolvedModel(name, name, None)
        alias = self._aliases.get(name)
        if alias is None:
            raise NotFound(
                f"the model '{name}' does not exist; GET /v1/models lists the models served",
                param="model",
                code="model_not_found",
            )
        engine_model = alias.engine_model or (models[0] if models else name)
        return ResolvedModel(name, engine_model, alias)
