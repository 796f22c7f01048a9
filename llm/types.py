"""The engine interface: what the gateway sees of any LLM engine.

Requests go to the engine as OpenAI-shaped JSON bodies (whatever fields the client sent,
plus what RAG changed); streamed answers come back as the upstream's raw event-stream
bytes. The gateway parses only the few events it acts on, never each token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class EngineCall:
    """One request to an engine's OpenAI-compatible API."""

    path: str  # "/v1/chat/completions", "/v1/completions", "/v1/responses", ...
    body: bytes  # the JSON body, serialised once
    headers: dict[str, str] = field(default_factory=dict)
    model: str = ""  # the engine model, for traces (the body is not parsed again)
    # A stored response id (Responses API) whose replica must serve this call.
    affinity: str | None = None


class EngineError(Exception):
    """The engine refused or failed a request. ``status`` is the HTTP status to report."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code


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


class EventStream(Protocol):
    """An accepted, running streamed request: its raw body in arbitrary pieces.

    Iteration raises ``EngineTimeout`` when the engine is silent too long and ``EngineLost``
    when the connection breaks; ``aclose`` aborts the request in the engine.
    """

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def abort(self) -> None:
        """Stop at once from a callback (drain deadline): the iteration ends early."""

    def holds(self, response_id: str) -> None:
        """This stream's engine stored ``response_id``: later calls about it go there."""

    def completed(self) -> None:
        """The reader saw the last event: the generation finished, whether or not the
        transport's end has arrived yet."""

    async def aclose(self) -> None: ...


class Engine(Protocol):
    async def open_stream(self, call: EngineCall) -> EventStream:
        """Submit a streamed request; return once the engine accepted it (errors raise here)."""

    async def request(self, call: EngineCall) -> bytes:
        """A non-streamed request: the engine's 200 body (errors raise)."""

    async def forward(self, method: str, call: EngineCall) -> tuple[int, bytes]:
        """Any other call (``GET /v1/responses/{id}``...): the engine's status and body."""

    async def list_models(self) -> list[str]: ...

    async def is_ready(self) -> bool: ...

    async def count_chat_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens of ``messages`` once the engine's chat template is applied."""

    async def count_prompt_tokens(self, model: str, prompt: str) -> int:
        """Tokens of a completion prompt."""

    async def max_model_len(self, model: str) -> int | None: ...

    async def aclose(self) -> None: ...
