"""Chat completions: prepare a request, run it on the engine, shape OpenAI responses.

The stream is an async generator of typed chunks; SSE framing happens in the routes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import anyio

from gateway.auth import ApiKey
from gateway.chat.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    DeltaMessage,
    UsageInfo,
    completion_id,
    now,
)
from gateway.errors import ErrorInfo, InvalidRequest, as_api_error
from gateway.metrics import Metrics
from gateway.models import ModelRegistry
from gateway.rag.citations import cited_numbers
from gateway.rag.pipeline import RagContext, RagPipeline, plan_retrieval
from gateway.timing import Timings
from llm.types import Engine, Generation, GenerationParams, Usage


@dataclass
class PreparedChat:
    """Everything needed to run one chat on the engine, decided before it starts."""

    id: str
    created: int
    public_model: str
    engine_model: str
    messages: list[dict[str, Any]]
    params: GenerationParams
    include_usage: bool
    timings: Timings
    rag: RagContext | None = None

    def first_chunk_extras(self) -> dict[str, Any]:
        """Sources go out before any token, so a client can show them while text streams."""
        if self.rag is None:
            return {}
        return {"sources": self.rag.sources, "rag": self.rag.info()}

    def final_extras(self, text: str) -> dict[str, Any]:
        extras: dict[str, Any] = {"timings": self.timings.as_dict()}
        if self.rag is not None:
            extras["citations"] = cited_numbers(text, len(self.rag.sources))
        return extras


@dataclass
class Outcome:
    """What a finished generation produced, for postprocessing."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    last_text_ms: float | None = None


class ChatService:
    def __init__(
        self,
        engine: Engine,
        registry: ModelRegistry,
        rag: RagPipeline,
        metrics: Metrics,
        *,
        max_messages: int = 512,
        max_input_tokens: int | None = None,
    ) -> None:
        self._max_messages = max_messages
        self._max_input_tokens = max_input_tokens
        self._engine = engine
        self._registry = registry
        self._rag = rag
        self._metrics = metrics

    async def prepare(
        self, request: ChatCompletionRequest, timings: Timings, key: ApiKey | None = None
    ) -> PreparedChat:
        unsupported = request.unsupported_param()
        if unsupported:
            raise InvalidRequest(
                f"'{unsupported}' is not supported by this server",
                param=unsupported,
                code="unsupported_parameter",
            )
        resolved = await self._registry.resolve(request.model)
        messages = [message.engine_form() for message in request.messages]
        if len(request.messages) > self._max_messages:
            raise InvalidRequest(
                f"at most {self._max_messages} messages per request", param="messages"
            )
        if self._max_input_tokens is not None:
            await self._check_input_tokens(resolved.engine_model, messages)
        plan = plan_retrieval(request.rag, resolved.alias, self._rag.defaults, key)
        timings.mark("preprocess")
        rag = None
        if plan is not None:
            messages, rag = await self._rag.augment(
                messages,
                plan,
                engine_model=resolved.engine_model,
                max_tokens=request.token_limit,
                timings=timings,
            )
            for stage in ("embed", "search", "prompt"):
                if stage in timings.stages:
                    self._metrics.retrieval_seconds.labels(stage).observe(
                        timings.stages[stage] / 1000
                    )
        return PreparedChat(
            id=completion_id(),
            created=now(),
            public_model=resolved.public_name,
            engine_model=resolved.engine_model,
            messages=messages,
            params=GenerationParams(
                max_tokens=request.token_limit,
                temperature=request.temperature,
                top_p=request.top_p,
                stop=request.stop if isinstance(request.stop, list) else None,
                seed=request.seed,
                presence_penalty=request.presence_penalty,
                frequency_penalty=request.frequency_penalty,
            ),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
            timings=timings,
            rag=rag,
        )

    async def start(self, chat: PreparedChat) -> Generation:
        """Submit to the engine; errors before generation starts surface here as HTTP errors."""
        try:
            return await self._engine.start_chat(chat.engine_model, chat.messages, chat.params)
        except Exception as exc:
            raise as_api_error(exc) from exc

    async def stream(
        self, chat: PreparedChat, generation: Generation
    ) -> AsyncGenerator[ChatCompletionChunk | ErrorInfo, None]:
        """Chunks in OpenAI's order: role (with extras), content..., finish, [usage].

        A failure after the first byte can no longer change the HTTP status, so it is
        yielded as an ``ErrorInfo`` and the stream ends; the routes frame it as an error
        event followed by ``[DONE]``.
        """
        outcome = Outcome()
        self._metrics.active_streams.inc()
        try:
            yield self._chunk(
                chat, DeltaMessage(role="assistant", content=""), **chat.first_chunk_extras()
            )
            async for delta in generation:
                if delta.text:
                    self._observe_text(chat, outcome)
                    outcome.text += delta.text
                    yield self._chunk(chat, DeltaMessage(content=delta.text))
                if delta.finish_reason is not None:
                    outcome.finish_reason = delta.finish_reason
                    yield self._chunk(
                        chat,
                        DeltaMessage(),
                        finish_reason=delta.finish_reason,
                        **chat.final_extras(outcome.text),
                    )
                if delta.usage is not None:
                    outcome.usage = delta.usage
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error event
            yield as_api_error(exc).info()
            return
        finally:
            self._metrics.active_streams.dec()
            self._observe_usage(outcome)
            with anyio.CancelScope(shield=True):  # abort the engine even when cancelled
                await generation.aclose()
        if chat.include_usage:
            chunk = ChatCompletionChunk(
                id=chat.id, created=chat.created, model=chat.public_model, choices=[]
            )
            chunk.usage = _usage(outcome.usage)
            yield chunk

    async def complete(self, chat: PreparedChat, generation: Generation) -> ChatCompletion:
        outcome = Outcome()
        try:
            async for delta in generation:
                if delta.text:
                    self._observe_text(chat, outcome)
                outcome.text += delta.text
                outcome.finish_reason = delta.finish_reason or outcome.finish_reason
                outcome.usage = delta.usage or outcome.usage
        except Exception as exc:
            raise as_api_error(exc) from exc
        finally:
            self._observe_usage(outcome)
            with anyio.CancelScope(shield=True):
                await generation.aclose()
        return ChatCompletion(
            id=chat.id,
            created=chat.created,
            model=chat.public_model,
            choices=[
                Choice(
                    message=AssistantMessage(content=outcome.text),
                    finish_reason=outcome.finish_reason,
                )
            ],
            usage=_usage(outcome.usage),
            **chat.first_chunk_extras(),
            **chat.final_extras(outcome.text),
        )

    async def _check_input_tokens(self, model: str, messages: list[dict[str, Any]]) -> None:
        assert self._max_input_tokens is not None
        try:
            tokens = await self._engine.count_chat_tokens(model, messages)
        except Exception as exc:
            raise as_api_error(exc) from exc
        if tokens > self._max_input_tokens:
            raise InvalidRequest(
                f"the messages are {tokens} tokens; this server accepts at most "
                f"{self._max_input_tokens}",
                param="messages",
                code="context_length_exceeded",
            )

    def _observe_text(self, chat: PreparedChat, outcome: Outcome) -> None:
        now = chat.timings.elapsed_ms()
        if outcome.last_text_ms is None:
            chat.timings.mark("engine_first_token")
            self._metrics.first_token_seconds.observe(now / 1000)
        else:
            self._metrics.inter_token_seconds.observe((now - outcome.last_text_ms) / 1000)
        outcome.last_text_ms = now

    def _observe_usage(self, outcome: Outcome) -> None:
        if outcome.usage is not None:
            self._metrics.tokens.labels("in").inc(outcome.usage.prompt_tokens)
            self._metrics.tokens.labels("out").inc(outcome.usage.completion_tokens)

    @staticmethod
    def _chunk(
        chat: PreparedChat,
        delta: DeltaMessage,
        finish_reason: str | None = None,
        **extras: Any,
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=chat.id,
            created=chat.created,
            model=chat.public_model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
            **extras,
        )


def _usage(usage: Usage | None) -> UsageInfo:
    if usage is None:
        return UsageInfo(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    return UsageInfo(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )
