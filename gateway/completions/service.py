"""Completions (``/v1/completions``): RAG fences the passages before the prompt."""

from __future__ import annotations

from typing import Any

from gateway.auth import ApiKey
from gateway.chunk_edits import (
    COMPLETION_TEXT,
    ChunkEdits,
    completion_texts,
    failure_event,
    finish_whole,
)
from gateway.completions.protocol import CompletionRequest
from gateway.errors import ErrorInfo, InvalidRequest
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
from llm.types import EventStream

PATH = "/v1/completions"


class CompletionsService:
    def __init__(self, registry: ModelRegistry, rag: RagPipeline, metrics: Metrics) -> None:
        self._registry = registry
        self._rag = rag
        self._metrics = metrics

    async def prepare(
        self,
        request: CompletionRequest,
        raw: dict[str, Any],
        timings: Timings,
        key: ApiKey | None = None,
    ) -> Staged:
        resolved = await self._registry.resolve(request.model)
        plan = plan_retrieval(request.rag, resolved.alias, self._rag.defaults, key)
        if plan is not None:
            if not isinstance(request.prompt, str):
                raise InvalidRequest(
                    "retrieval needs the prompt as one string; send rag.enabled=false "
                    "for token ids or several prompts",
                    param="prompt",
                )
            await self._rag.check(plan)
        timings.mark("preprocess")

        async def complete() -> Prepared:
            changes: dict[str, Any] = {}
            rag = None
            if plan is not None:
                assert isinstance(request.prompt, str)
                changes["prompt"], rag = await self._rag.augment_prompt(
                    request.prompt,
                    plan,
                    engine_model=resolved.engine_model,
                    max_tokens=request.max_tokens,
                    timings=timings,
                )
                observe_retrieval(self._metrics, timings)
            return prepared_call(
                PATH, raw, request=request, resolved=resolved, timings=timings, key=key,
                rag=rag, **changes,
            )  # fmt: skip

        return Staged(request.stream, plan is not None, timings, complete)

    @staticmethod
    def stream_edits(prepared: Prepared, stream: EventStream, observer: Observer) -> ChunkEdits:
        return ChunkEdits(prepared, observer, pattern=COMPLETION_TEXT, texts_of=completion_texts)

    @staticmethod
    def failure_event(error: ErrorInfo) -> bytes:
        return failure_event(error)

    @staticmethod
    def finish(prepared: Prepared, body: dict[str, Any], observer: Observer) -> dict[str, Any]:
        return finish_whole(prepared, body, observer, completion_texts)
