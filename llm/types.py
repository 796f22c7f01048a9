"""The engine interface: what the gateway sees of any LLM engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Delta:
    """One step of a generation: new text, and/or the finish reason, and/or usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class GenerationParams:
    """Sampling parameters, engine-neutral; ``None`` means the engine's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EngineError(Exception):
    """The engine refused or failed a request. ``status`` is the HTTP status to report."""

    def __init__(self, message: str, *, status: int = 502, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


class EngineUnavailable(EngineError):
    """No engine could be reached (connection refused, DNS, busy, not ready)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=503)
        self.retry_after = retry_after


class EngineLost(EngineError):
    """The engine's connection broke, or its stream ended, before the generation finished."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=502)


class EngineTimeout(EngineError):
    """The engine took too long to connect, to produce its first token, or the next one."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=504)


class Generation(Protocol):
    """An accepted, running generation: iterate its deltas; ``aclose`` aborts it."""

    def __aiter__(self) -> AsyncIterator[Delta]: ...

    async def aclose(self) -> None: ...


class Engine(Protocol):
    async def start_chat(
        self, model: str, messages: list[dict[str, Any]], params: GenerationParams
    ) -> Generation:
        """Submit a chat; return once the engine accepted it (errors raise here)."""

    async def list_models(self) -> list[str]: ...

    async def is_ready(self) -> bool: ...

    async def count_chat_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens of ``messages`` once the engine's chat template is applied."""

    async def max_model_len(self, model: str) -> int | None: ...

    async def aclose(self) -> None: ...
