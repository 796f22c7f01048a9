"""Decide whether a chat uses retrieval, retrieve, and fence the passages into the prompt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from gateway.auth import ApiKey, restrict
from gateway.errors import InvalidRequest, store_unavailable
from gateway.rag.dedupe import collapse_duplicates
from gateway.rag.options import RagOptions
from gateway.rag.prompt import (
    Passage,
    fit_rendered,
    new_fence_nonce,
    with_context,
    with_context_prompt,
)
from gateway.rag.query import retrieval_query
from gateway.settings import ModelAlias
from gateway.timing import Timings
from llm.types import Engine
from retrieval.types import CollectionNotFound, PayloadFilter, SearchHit, SearchMode, StoreError

P = TypeVar("P")


class RetrievalResult(Protocol):
    hits: list[SearchHit]
    embed_ms: float
    search_ms: float


class Retriever(Protocol):
    async def check(self, collection: str, flt: PayloadFilter | None) -> None: ...

    async def retrieve(
        self,
        query: str,
        *,
        collection: str,
        top_k: int,
        mode: SearchMode,
        flt: PayloadFilter | None,
        min_score: float | None,
    ) -> RetrievalResult: ...


@dataclass(frozen=True)
class RagDefaults:
    collection: str
    top_k: int
    mode: Literal["dense", "sparse", "hybrid"]
    min_score: float | None
    on_store_error: Literal["error", "degrade"]
    answer_reserve_tokens: int = 256
    # Passages at least this similar (Jaccard over word shingles) are sent once; 1.0: only
    # the same text (after whitespace normalisation).
    dedupe_similarity: float = 1.0


@dataclass(frozen=True)
class RagPlan:
    collection: str
    top_k: int
    mode: SearchMode
    flt: PayloadFilter | None
    min_score: float | None
    citations: Literal["keep", "strip"] = "keep"


@dataclass
class RagContext:
    """What retrieval contributed to one chat."""

    plan: RagPlan
    query: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    degraded_reason: str | None = None
    context_tokens: int = 0
    prompt_tokens: int | None = None  # the whole prompt, when fitting it counted it

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "collection": self.plan.collection,
            "mode": self.plan.mode.value,
            "degraded": self.degraded_reason is not None,
        }
        if self.degraded_reason:
            info["reason"] = self.degraded_reason
        info["context_tokens"] = self.context_tokens
        return info


def plan_retrieval(
    options: RagOptions | None,
    alias: ModelAlias | None,
    defaults: RagDefaults,
    key: ApiKey | None = None,
) -> RagPlan | None:
    """Request fields beat the model alias, which beats the server defaults.

    RAG is on for an alias with a collection, or when the request sends ``rag`` options
    (unless ``rag.enabled`` is false); a plain engine model without ``rag`` is a plain chat.
    """
    options = options or RagOptions()
    alias_on = alias is not None and alias.collection is not None
    # What to do with the answer's markers does not, alone, turn retrieval on.
    sent = options.model_dump(exclude_none=True, exclude={"enabled", "citations"})
    enabled = options.enabled if options.enabled is not None else (alias_on or bool(sent))
    if not enabled:
        return None
    alias = alias or ModelAlias()
    if options.filter is not None and not all(isinstance(k, str) for k in options.filter):
        raise InvalidRequest("filter keys must be payload field names", param="rag.filter")
    collection = options.collection or alias.collection or defaults.collection
    return RagPlan(
        collection=collection,
        top_k=options.top_k or alias.top_k or defaults.top_k,
        mode=SearchMode(options.mode or alias.mode or defaults.mode),
        flt=restrict(key, collection, options.filter),
        min_score=_first_set(options.min_score, alias.min_score, defaults.min_score),
        citations=options.citations or "keep",
    )


def _first_set(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _passage(number: int, hit: SearchHit) -> Passage:
    payload = hit.payload
    page = payload.get("page")
    return Passage(
        number=number,
        title=str(payload.get("title") or payload.get("section") or ""),
        source=str(payload.get("source", "")),
        page=int(page) if isinstance(page, int) else None,
        text=hit.text,
    )


def _origin(hit: SearchHit) -> dict[str, Any]:
    return {"source": hit.payload.get("source", ""), "doc_id": hit.payload.get("doc_id"),
            "chunk_id": hit.id}  # fmt: skip


def _source(passage: Passage, hit: SearchHit, copies: list[SearchHit]) -> dict[str, Any]:
    source = {
        "id": passage.number,
        "title": passage.title,
        "source": passage.source,
        "page": passage.page,
        "section": hit.payload.get("section"),
        "doc_id": hit.payload.get("doc_id"),
        "chunk_id": hit.id,
        "score": round(hit.score, 6),
        "text": hit.text,
    }
    if copies:
        source["also_in"] = [_origin(copy) for copy in copies]
    return source


class RagPipeline:
    def __init__(self, retriever: Retriever | None, engine: Engine, defaults: RagDefaults):
        self._retriever = retriever
        self._engine = engine
        self.defaults = defaults

    async def check(self, plan: RagPlan) -> None:
        """What retrieval refuses cheaply, checked before a stream opens so it keeps its HTTP
        status: a malformed filter (400), a missing collection (404), a store that is down
        when the server is set to refuse rather than degrade (503)."""
        try:
            if self._retriever is None:
                raise StoreError("retrieval is not configured on this server")
            await self._retriever.check(plan.collection, plan.flt)
        except CollectionNotFound:
            raise
        except ValueError as exc:
            raise InvalidRequest(f"invalid retrieval options: {exc}", param="rag.filter") from exc
        except StoreError as exc:
            if self.defaults.on_store_error == "error":
                raise store_unavailable(exc) from exc

    async def augment(
        self,
        messages: list[dict[str, Any]],
        plan: RagPlan,
        *,
        engine_model: str,
        max_tokens: int | None,
        timings: Timings,
        add_system: bool = True,
    ) -> tuple[list[dict[str, Any]], RagContext]:
        """Retrieve for ``messages`` and return them with the fenced passages in place."""
        return await self.augment_with(
            retrieval_query(messages),
            plan,
            render=lambda kept, nonce: with_context(messages, kept, nonce, add_system=add_system),
            count_tokens=lambda chat: self._engine.count_chat_tokens(engine_model, chat),
            engine_model=engine_model,
            max_tokens=max_tokens,
            timings=timings,
        )

    async def augment_prompt(
        self,
        prompt: str,
        plan: RagPlan,
        *,
        engine_model: str,
        max_tokens: int | None,
        timings: Timings,
    ) -> tuple[str, RagContext]:
        """A completion prompt with the passages fenced before it; the prompt is the query."""
        return await self.augment_with(
            prompt.strip(),
            plan,
            render=lambda kept, nonce: with_context_prompt(prompt, kept, nonce),
            count_tokens=lambda text: self._engine.count_prompt_tokens(engine_model, text),
            engine_model=engine_model,
            max_tokens=max_tokens,
            timings=timings,
        )

    async def augment_with(
        self,
        query: str,
        plan: RagPlan,
        *,
        render: Callable[[list[Passage], str], P],
        count_tokens: Callable[[P], Awaitable[int]],
        engine_model: str,
        max_tokens: int | None,
        timings: Timings,
    ) -> tuple[P, RagContext]:
        """Retrieve for ``query``; ``render`` puts passages into a prompt, ``count_tokens``
        measures one, so the passages that fit the engine's window are kept."""
        context = RagContext(plan=plan, query=query)
        hits: list[SearchHit] = []
        try:
            if self._retriever is None:
                raise StoreError("retrieval is not configured on this server")
            if query:
                result = await self._retriever.retrieve(
                    query,
                    collection=plan.collection,
                    top_k=plan.top_k,
                    mode=plan.mode,
                    flt=plan.flt,
                    min_score=plan.min_score,
                )
                timings.add("embed", result.embed_ms)
                timings.add("search", result.search_ms)
                hits = result.hits
        except CollectionNotFound:
            raise
        except ValueError as exc:  # the store refused the filter or the limits
            raise InvalidRequest(f"invalid retrieval options: {exc}", param="rag.filter") from exc
        except StoreError as exc:
            unavailable = store_unavailable(exc)  # the detail is logged, never sent
            if self.defaults.on_store_error == "error":
                raise unavailable from exc
            context.degraded_reason = unavailable.message
            return render([], ""), context

        with timings.stage("prompt"):
            # Before numbering: the same paragraph from two copies of a file takes one slot.
            groups = collapse_duplicates(hits, self.defaults.dedupe_similarity)
            hits = [hit for hit, _ in groups]
            passages = [_passage(i, hit) for i, hit in enumerate(hits, start=1)]
            nonce = new_fence_nonce()
            max_len = await self._engine.max_model_len(engine_model)
            if max_len is None:  # an engine that does not say: trust top_k
                augmented, kept = render(passages, nonce), passages
            else:
                fitted = await fit_rendered(
                    lambda chosen: render(chosen, nonce),
                    passages,
                    count_tokens=count_tokens,
                    max_model_len=max_len,
                    reserved_for_answer=max_tokens or self.defaults.answer_reserve_tokens,
                )
                augmented, kept = fitted.prompt, fitted.passages
                context.context_tokens = fitted.context_tokens
                context.prompt_tokens = fitted.prompt_tokens
        context.sources = [_source(p, *groups[p.number - 1]) for p in kept]
        return augmented, context
