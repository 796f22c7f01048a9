"""The Responses API (``/v1/responses``): RAG fences the passages into the last user
input; stored responses are reached on the replica that holds them."""

from __future__ import annotations

import json
from typing import Any

from gateway.auth import ApiKey
from gateway.errors import ErrorInfo
from gateway.flow import Staged
from gateway.metrics import Metrics
from gateway.models import ModelRegistry
from gateway.proxy import (
    Observer,
    Prepared,
    engine_body,
    observe_retrieval,
    prepared_call,
)
from gateway.rag.pipeline import RagContext, RagPipeline, RagPlan, plan_retrieval
from gateway.rag.prompt import DEFAULT_SYSTEM_PROMPT, Passage, with_context
from gateway.rag.query import input_as_chat, input_items, retrieval_query
from gateway.responses.ownership import engine_id, show_ids
from gateway.responses.protocol import ResponsesRequest
from gateway.responses.stream import ResponseEdits, failure_event, finish_response
from gateway.timing import Timings
from llm.types import Engine, EngineCall, EventStream

PATH = "/v1/responses"
Input = str | list[dict[str, Any]]


class ResponsesService:
    def __init__(
        self, engine: Engine, registry: ModelRegistry, rag: RagPipeline, metrics: Metrics
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._rag = rag
        self._metrics = metrics

    async def prepare(
        self,
        request: ResponsesRequest,
        raw: dict[str, Any],
        timings: Timings,
        key: ApiKey | None = None,
    ) -> Staged:
        resolved = await self._registry.resolve(request.model)
        plan = plan_retrieval(request.rag, resolved.alias, self._rag.defaults, key)
        if plan is not None:
            await self._rag.check(plan)
        changes: dict[str, Any] = {}
        previous = request.previous_response_id
        if previous is not None:  # another tenant's id is refused here (404)
            previous = changes["previous_response_id"] = engine_id(key, previous)
        timings.mark("preprocess")

        async def complete() -> Prepared:
            rag: RagContext | None = None
            if plan is not None:
                rag = await self._augment(request, raw, plan, resolved.engine_model, timings,
                                          changes)  # fmt: skip
            return prepared_call(
                PATH, raw, request=request, resolved=resolved, timings=timings, key=key,
                rag=rag, affinity=previous, **changes,
            )  # fmt: skip

        return Staged(request.stream, plan is not None, timings, complete)

    async def _augment(
        self,
        request: ResponsesRequest,
        raw: dict[str, Any],
        plan: RagPlan,
        engine_model: str,
        timings: Timings,
        changes: dict[str, Any],
    ) -> RagContext:
        """Fence the passages into the last user input; ground with ``instructions`` when
        the caller gave none."""
        instructions = request.instructions
        has_system = any(
            i.get("role") in ("system", "developer") for i in input_items(raw["input"])
        )
        if instructions is None and not has_system:
            changes["instructions"] = instructions = DEFAULT_SYSTEM_PROMPT

        def render(kept: list[Passage], nonce: str) -> Input:
            items = with_context(input_items(raw["input"]), kept, nonce, add_system=False)
            if isinstance(raw["input"], str):
                return str(items[0]["content"])
            return items

        changes["input"], rag = await self._rag.augment_with(
            retrieval_query(input_items(raw["input"])),
            plan,
            render=render,
            count_tokens=lambda value: self._engine.count_chat_tokens(
                engine_model, input_as_chat(instructions, value)
            ),
            engine_model=engine_model,
            max_tokens=request.max_output_tokens,
            timings=timings,
        )
        observe_retrieval(self._metrics, timings)
        return rag

    async def forward(
        self, method: str, path: str, response_id: str, key: ApiKey | None, query: str = ""
    ) -> tuple[int, bytes]:
        """``GET``/cancel of the caller's stored response, on the replica that holds it."""
        stored = engine_id(key, response_id)
        target = path.format(id=stored) + (f"?{query}" if query else "")
        status, content = await self._engine.forward(
            method, EngineCall(target, b"", affinity=stored)
        )
        if status == 200 and key is not None:
            body = json.loads(content)
            if isinstance(body, dict):
                show_ids(key, body)
                content = engine_body(body)
        return status, content

    @staticmethod
    def stream_edits(prepared: Prepared, stream: EventStream, observer: Observer) -> ResponseEdits:
        return ResponseEdits(prepared, stream, observer)

    @staticmethod
    def failure_event(error: ErrorInfo) -> bytes:
        return failure_event(error)

    @staticmethod
    def finish(prepared: Prepared, body: dict[str, Any], observer: Observer) -> dict[str, Any]:
        finish_response(prepared, body, observer)
        return body
