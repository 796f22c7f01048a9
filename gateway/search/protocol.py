"""Wire types of search and collections (ragserve's own, OpenAI has none)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.wire import integral


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # see gateway.wire

    query: str = Field(min_length=1, max_length=8192)
    collection: str | None = Field(default=None, min_length=1, max_length=255)
    top_k: int = Field(default=5, ge=1, le=100)
    mode: Literal["dense", "sparse", "hybrid"] = "hybrid"
    filter: dict[str, Any] | None = None
    min_score: float | None = None

    _top_k = field_validator("top_k", mode="before")(integral)


class SearchResult(BaseModel):
    id: str
    score: float
    text: str
    source: str | None = None
    title: str | None = None
    section: str | None = None
    page: int | None = None
    doc_id: str | None = None


class SearchResponse(BaseModel):
    object: Literal["search.result"] = "search.result"
    collection: str
    mode: str
    results: list[SearchResult]
    timings: dict[str, float]


class CollectionInfo(BaseModel):
    name: str
    points: int


class CollectionVersion(BaseModel):
    """A fresh collection built for a re-index of ``alias`` (not yet live)."""

    id: str
    object: Literal["collection.version"] = "collection.version"
    alias: str


class AliasSwitch(BaseModel):
    collection: str = Field(min_length=1, description="A version created for this alias")


class CollectionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CollectionInfo]
