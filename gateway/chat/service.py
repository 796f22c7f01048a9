"""Chat completions: decide what RAG changes in the request, then pass the rest through."""

from __future__ import annotations

from typing import Any

from gateway.auth import ApiKey
from gateway.chat.protocol import ChatCompletionRequest
from gateway.chunk_edits import CHAT_TEXT, ChunkEdits, chat_texts, failure_event, finish_whole
from gateway.errors import ErrorInfo, InvalidRequest, as_api_error
from gateway.flow import Staged
from gateway.metrics import Metrics
from gateway.models import ModelRegistry
from gateway.proxy import (
    Observer,
    Prepared,
    observe_retrieval,
    prepared_call,
)
from gateway.rag.pipeline import RagPipeline, plan_retrieval
from gateway.timing import Timings
from llm.types import Engine, EventStream

PATH = "/v1/chat/completions"


def _message_texts(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (int(c.get("index", 0)), (c.get("message") or {}).get("content") or "")
        for c in body.get("choices") or []
    ]


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
        self,
        request: ChatCompletionRequest,
        raw: dict[str, Any],
        timings: Timings,
        key: ApiKey | None = None,
    ) -> Staged:
        if len(request.messages) > self._max_messages:
            raise InvalidRequest(
                f"at most {self._max_messages} messages per request", param="messages"
            )
        resolved = await self._registry.resolve(request.model)
        messages: list[dict[str, Any]] = raw["messages"]
        if self._max_input_tokens is not None:
            await self._check_input_tokens(resolved.engine_model, messages)
        plan = plan_retrieval(request.rag, resolved.alias, self._rag.defaults, key)
        if plan is not None:
            await self._rag.check(plan)
        timings.mark("preprocess")

        async def complete() -> Prepared:
            augmented, rag = messages, None
            if plan is not None:
                augmented, rag = await self._rag.augment(
                    messages,
                    plan,
                    engine_model=resolved.engine_model,
                    max_tokens=request.token_limit,
                    timings=timings,
                )
                observe_retrieval(self._metrics, timings)
            return prepared_call(
                PATH, raw, request=request, resolved=resolved, timings=timings, key=key,
                rag=rag, messages=augmented,
            )  # fmt: skip

        return Staged(request.stream, plan is not None, timings, complete)

    @staticmethod
    def stream_edits(prepared: Prepared, stream: EventStream, observer: Observer) -> ChunkEdits:
        return ChunkEdits(prepared, observer, pattern=CHAT_TEXT, texts_of=chat_texts)

    @staticmethod
    def failure_event(error: ErrorInfo) -> bytes:
        return failure_event(error)

    @staticmethod
    def finish(prepared: Prepared, body: dict[str, Any], observer: Observer) -> dict[str, Any]:
        return finish_whole(prepared, body, observer, _message_texts)

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
