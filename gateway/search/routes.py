"""HTTP edge of search and collections; the ``ragserve`` CLI uses these when a gateway
holds the embedded store."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request

from gateway.auth import ApiKey, Forbidden, restrict
from gateway.deps import api_key
from gateway.errors import ERROR_RESPONSES, InvalidRequest, NotFound, ServiceUnavailable
from gateway.retrieval_setup import RetrievalStack
from gateway.search.protocol import (
    CollectionInfo,
    CollectionList,
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


def _stack(request: Request) -> RetrievalStack:
    stack: RetrievalStack = request.app.state.retrieval
    if stack.retriever is None or stack.store is None:
        raise ServiceUnavailable(
            f"the vector store is unavailable: {stack.error}", code="store_unavailable"
        )
    return stack


@router.post("/v1/search", response_model=SearchResponse)
async def search(
    body: SearchRequest, request: Request, key: Annotated[ApiKey | None, Depends(api_key)]
) -> SearchResponse:
    stack = _stack(request)
    assert stack.retriever is not None
    collection = body.collection or request.app.state.settings.collection
    flt = restrict(key, collection, body.filter)
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
async def list_collections(
    request: Request, key: Annotated[ApiKey | None, Depends(api_key)]
) -> CollectionList:
    store: VectorStore | None = _stack(request).store
    assert store is not None

    def collect() -> list[CollectionInfo]:
        names = _visible(key, store.list_collections())
        return [CollectionInfo(name=name, points=store.count(name)) for name in names]

    return CollectionList(data=await anyio.to_thread.run_sync(collect))


@router.delete("/v1/collections/{name}")
async def delete_collection(
    name: str, request: Request, key: Annotated[ApiKey | None, Depends(api_key)]
) -> dict[str, object]:
    store = _stack(request).store
    assert store is not None
    if key is not None and not key.may_use(name):
        raise Forbidden(f"this API key may not use the collection '{name}'", param="name")
    if not await anyio.to_thread.run_sync(store.collection_exists, name):
        raise _not_found(name)
    await anyio.to_thread.run_sync(store.delete_collection, name)
    return {"id": name, "object": "collection", "deleted": True}
