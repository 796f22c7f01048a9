"""What every proxied endpoint shares: the prepared engine call, its postprocessing facts
and its usage accounting (the flow from admission to answer is ``gateway/flow.py``)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from gateway.answer_cache.key import CACHED_PATHS, answer_key, cacheable, passage_fingerprints
from gateway.auth import ApiKey
from gateway.chat.protocol import ProxiedRequest
from gateway.metrics import Metrics
from gateway.models import ResolvedModel
from gateway.rag.citations import citation_report
from gateway.rag.pipeline import RagContext
from gateway.rag.query import input_as_chat
from gateway.timing import Timings
from llm.types import Engine, EngineCall

log = logging.getLogger("ragserve.usage")


@dataclass
class Prepared:
    """One request ready for the engine, with what its answer's postprocessing needs."""

    call: EngineCall
    stream: bool
    public_model: str
    engine_model: str
    timings: Timings
    rag: RagContext | None = None
    include_usage: bool = False  # the client asked for the usage chunk
    key: ApiKey | None = None  # the caller's key (None when the server has none)
    cache_key: str | None = None  # where its answer is kept; None: never cached
    cached: bool = False  # answered from the answer cache

    def first_extras(self) -> dict[str, Any]:
        """Sources go out before any token, so a client can show them while text streams."""
        if self.rag is None:
            return {}
        return {"sources": self.rag.sources, "rag": self.rag.info()}

    def final_extras(self, text: str) -> dict[str, Any]:
        extras: dict[str, Any] = {"timings": self.timings.as_dict()}
        if self.rag is not None:
            extras.update(citation_report(text, self.rag.sources))
        if self.cached:
            extras["cached"] = True
        return extras


class Observer:
    """Per-request usage and metrics, taken on the slow path only (first event, usage, end).

    The relay counts the content events it passes (``relayed``, one integer increment an
    event: one event is one token on vLLM), so a stream that ends before the engine's usage
    chunk (client gone, drain, engine failure) is still billed: its completion tokens are
    those relayed, its prompt tokens counted by the engine's tokenizer, only then.
    """

    __slots__ = (
        "_count_prompt",
        "_first_ms",
        "_key",
        "_metrics",
        "_settled",
        "_timings",
        "prompt_tokens",
        "relayed",
    )  # fmt: skip

    def __init__(
        self,
        metrics: Metrics,
        timings: Timings,
        *,
        key: ApiKey | None = None,
        count_prompt: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._metrics = metrics
        self._timings = timings
        self._first_ms: float | None = None
        self._key = key
        self._count_prompt = count_prompt
        self._settled = False
        self.relayed = 0  # content events relayed so far
        self.prompt_tokens: int | None = None  # known before the end when RAG counted it

    def first_output(self) -> None:
        if self._first_ms is None:
            self._timings.mark("engine_first_token")
            self._first_ms = self._timings.elapsed_ms()
            self._metrics.first_token_seconds.observe(self._first_ms / 1000)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """The engine's own usage figures: the request is accounted for."""
        self.prompt_tokens = prompt_tokens
        self._record(prompt_tokens, completion_tokens, complete=True)
        if self._first_ms is not None and completion_tokens > 1:
            gap_ms = (self._timings.elapsed_ms() - self._first_ms) / (completion_tokens - 1)
            self._metrics.inter_token_seconds.observe(gap_ms / 1000)

    def so_far(self) -> dict[str, int]:
        """Usage spent so far, in chat completion terms (the error event carries it)."""
        prompt = self.prompt_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.relayed,
            "total_tokens": prompt + self.relayed,
        }

    async def settle(self) -> None:
        """A stream's end: if the engine's usage never came, account for what was spent.

        Bounded: an engine that just failed may not answer its tokenizer either.
        """
        if self._settled:
            return
        if self.prompt_tokens is None and self._count_prompt is not None:
            with anyio.move_on_after(_PROMPT_COUNT_TIMEOUT_S):
                try:
                    self.prompt_tokens = await self._count_prompt()
                except Exception:  # usage is best effort once the stream is cut
                    log.warning("could not count the prompt tokens of a cut stream")
        if not self._settled:  # a usage chunk may have come while we counted
            self._record(self.prompt_tokens or 0, self.relayed, complete=False)

    def _record(self, prompt_tokens: int, completion_tokens: int, *, complete: bool) -> None:
        if self._settled:
            return
        self._settled = True
        self._metrics.tokens.labels("in").inc(prompt_tokens)
        self._metrics.tokens.labels("out").inc(completion_tokens)
        name = self._key.name if self._key is not None else ""
        self._metrics.key_tokens.labels(name, "in").inc(prompt_tokens)
        self._metrics.key_tokens.labels(name, "out").inc(completion_tokens)
        log.info(
            "usage",
            extra={"key": name, "prompt_tokens": prompt_tokens,
                   "completion_tokens": completion_tokens, "complete": complete},
        )  # fmt: skip


_PROMPT_COUNT_TIMEOUT_S = 2.0


async def count_prompt_tokens(engine: Engine, prepared: Prepared) -> int:
    """The prompt tokens of a prepared call, by the engine's tokenizer (a cut stream's bill).

    Chat messages through the chat template; a completion's prompt as text; a Responses
    input as the chat it becomes. Tool schemas are not counted.
    """
    body = json.loads(prepared.call.body)
    model = prepared.engine_model
    if isinstance(body.get("messages"), list):
        return await engine.count_chat_tokens(model, body["messages"])
    if isinstance(body.get("prompt"), str):
        return await engine.count_prompt_tokens(model, body["prompt"])
    messages = input_as_chat(body.get("instructions"), body.get("input"))
    return await engine.count_chat_tokens(model, messages) if messages else 0


def prepared_call(
    path: str,
    raw: dict[str, Any],
    *,
    request: ProxiedRequest,
    resolved: ResolvedModel,
    timings: Timings,
    key: ApiKey | None,
    rag: RagContext | None,
    affinity: str | None = None,
    **changes: Any,
) -> Prepared:
    """A request ready for the engine: the client's body with RAG's ``changes``, and what
    its answer's postprocessing needs. Every proxied endpoint ends its preparation here."""
    body = forward_body(raw, engine_model=resolved.engine_model, key=key, **changes)
    return Prepared(
        call=EngineCall(path, engine_body(body), model=resolved.engine_model, affinity=affinity),
        stream=request.stream,
        public_model=resolved.public_name,
        engine_model=resolved.engine_model,
        timings=timings,
        rag=rag,
        include_usage=request.include_usage,
        key=key,
        cache_key=_answer_key(path, raw, key, rag, resolved.engine_model),
    )


def _answer_key(
    path: str, raw: dict[str, Any], key: ApiKey | None, rag: RagContext | None, engine_model: str
) -> str | None:
    """Where a deterministic chat's or completion's answer is kept; None: never cached."""
    if path not in CACHED_PATHS or not cacheable(raw):
        return None
    if rag is not None and rag.degraded_reason is not None:
        return None  # answered without its sources: not the answer the corpus gives
    if key is not None and not key.answer_cache:
        return None
    passages = passage_fingerprints(rag.sources) if rag is not None else []
    tenant = key.name if key is not None else ""
    return answer_key(tenant=tenant, path=path, raw=raw, passages=passages,
                      engine_model=engine_model)  # fmt: skip


def observe_retrieval(metrics: Metrics, timings: Timings) -> None:
    for stage in ("embed", "search", "prompt"):
        if stage in timings.stages:
            metrics.retrieval_seconds.labels(stage).observe(timings.stages[stage] / 1000)


def engine_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def tenant_salt(key: ApiKey | None, client_salt: str | None) -> str | None:
    """vLLM's prefix-cache salt for this caller: tenants never share cached prefixes.

    With keys, the salt derives from the key's name, with the client's own salt inside it,
    so no value a client sends can equal another tenant's salt. Without keys, the client's
    salt (if any) passes as sent.
    """
    if key is None:
        return client_salt
    seed = f"{len(key.name)}:{key.name}:{client_salt or ''}".encode()  # unambiguous split
    return hashlib.sha256(seed).hexdigest()


def forward_body(
    raw: dict[str, Any], *, engine_model: str, key: ApiKey | None, **changes: Any
) -> dict[str, Any]:
    """The client's body as the engine gets it: ours removed, the model and RAG's changes
    applied, every other field untouched."""
    body = {name: value for name, value in raw.items() if name != "rag"}
    body["model"] = engine_model
    body.update(changes)
    salt = tenant_salt(key, raw.get("cache_salt"))
    if salt is not None:
        body["cache_salt"] = salt
    if body.get("stream") is True:
        # Usage feeds the metrics; the relay drops the usage chunk if the client did not ask.
        body["stream_options"] = {**(raw.get("stream_options") or {}), "include_usage": True}
    return body
