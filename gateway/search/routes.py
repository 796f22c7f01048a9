"""HTTP edge of search and collections; the ``ragserve`` CLI uses these when a gateway
holds the embedded store."""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from gateway.auth import ApiKey, Forbidden, restrict
from gateway.deps import AppServices, KeyDep, ServicesDep
from gateway.errors import ERROR_RESPONSES, InvalidRequest, NotFound, store_unavailable
from gateway.retrieval_setup import RetrievalStack
from gateway.search.protocol import (
    AliasSwitch,
    CollectionInfo,
    CollectionList,
    CollectionVersion,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from retrieval.types import CollectionNotFound, SearchMode, VectorStore

router = APIRouter(responses=ERROR_RESPONSES)


def _not_found(name: str) -> NotFound:
    return NotFound(
        f"collection '{name}' does not exist", param="collection", code="collection_not_found"
    )


def _stack(services: AppServices) -> RetrievalStack:
    stack = services.retrieval
    if stack.retriever is None or stack.store is None:
        raise store_unavailable(stack.error)
    return stack


@router.post("/v1/search", response_model=SearchResponse)
async def search(body: SearchRequest, services: ServicesDep, key: KeyDep) -> SearchResponse:
    stack = _stack(services)
    assert stack.retriever is not None
    collection = body.collection or services.settings.collection
    flt = restrict(key, collection, body.filter, param="collection")
    try:
        found = await stack.retriever.retrieve(
            body.query,
            collection=collection,
            top_k=body.top_k,
            mode=SearchMode(body.mode),
            flt=flt,
            min_score=body.min_score,
        )
    except CollectionNotFound as exc:
        raise _not_found(exc.name) from exc
    except ValueError as exc:
        raise InvalidRequest(f"invalid search options: {exc}", param="filter") from exc
    return SearchResponse(
        collection=collection,
        mode=body.mode,
        results=[
            SearchResult(
                id=hit.id,
                score=hit.score,
                text=hit.text,
                source=hit.payload.get("source"),
                title=hit.payload.get("title"),
                section=hit.payload.get("section"),
                page=hit.payload.get("page"),
                doc_id=hit.payload.get("doc_id"),
            )
            for hit in found.hits
        ],
        timings={"embed": round(found.embed_ms, 2), "search": round(found.search_ms, 2)},
    )


def _visible(key: ApiKey | None, names: list[str]) -> list[str]:
    return [name for name in names if key is None or key.may_use(name)]


@router.get("/v1/collections", response_model=CollectionList)
async def list_collections(services: ServicesDep, key: KeyDep) -> CollectionList:
    store: VectorStore | None = _stack(services).store
    assert store is not None

    scope = key.filter if key is not None else None  # a tenant counts only its own points

    def collect() -> list[CollectionInfo]:
        names = _visible(key, store.list_collections())
        return [CollectionInfo(name=name, points=store.count(name, scope)) for name in names]

    return CollectionList(data=await anyio.to_thread.run_sync(collect))


@router.delete("/v1/collections/{name}")
async def delete_collection(name: str, services: ServicesDep, key: KeyDep) -> dict[str, object]:
    store = _stack(services).store
    assert store is not None
    restrict(key, name, None, param="name")
    if key is not None and key.filter:
        # The collection holds other tenants' documents too: a tenant deletes its documents.
        raise Forbidden(
            "this API key is limited by a filter and may not delete whole collections; "
            "delete its documents instead",
            param="name",
            code="collection_forbidden",
        )
    if not await anyio.to_thread.run_sync(store.collection_exists, name):
        raise _not_found(name)
    await anyio.to_thread.run_sync(store.delete_collection, name)
    return {"id": name, "object": "collection", "deleted": True}


def _require_unrestricted(key: ApiKey | None, action: str) -> None:
    # A re-index creates and drops physical collections that no per-key list names, and
    # drops every tenant's chunks with the old one.
    if key is not None and (key.collections is not None or key.filter):
        raise Forbidden(
            f"{action} needs an API key that is not limited to some collections or by a filter",
            code="collection_forbidden",
        )


@router.post("/v1/collections/{name}/versions", response_model=CollectionVersion)
async def create_collection_version(
    name: str, services: ServicesDep, key: KeyDep
) -> CollectionVersion:
    """Start a re-index: a fresh collection beside the one ``name`` points at."""
    _require_unrestricted(key, "re-indexing")
    stack = _stack(services)
    assert stack.store is not None
    try:
        fresh = await anyio.to_thread.run_sync(
            stack.store.create_versioned, name, stack.embedder.dimension
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="name") from exc
    return CollectionVersion(id=fresh, alias=name)


@router.post("/v1/collections/{name}/switch", response_model=CollectionVersion)
async def switch_collection_alias(
    name: str,
    body: AliasSwitch,
    services: ServicesDep,
    key: KeyDep,
) -> CollectionVersion:
    """Finish a re-index: point ``name`` at the new version atomically, drop the old one."""
    _require_unrestricted(key, "re-indexing")
    stack = _stack(services)
    assert stack.store is not None
    if not body.collection.startswith(f"{name}_"):
        raise InvalidRequest(
            f"'{body.collection}' is not a version of '{name}'", param="collection"
        )
    try:
        await anyio.to_thread.run_sync(stack.store.switch_alias, name, body.collection)
    except CollectionNotFound as exc:
        raise _not_found(exc.name) from exc
    return CollectionVersion(id=body.collection, alias=name)
