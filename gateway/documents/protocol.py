"""Wire types of the documents API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class DocumentInfo(BaseModel):
    id: str
    object: Literal["document"] = "document"
    collection: str
    source: str | None = None
    title: str | None = None
    chunks: int
    doc_hash: str | None = None


class DocumentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DocumentInfo]


class UploadResult(BaseModel):
    object: Literal["document.ingest"] = "document.ingest"
    id: str
    collection: str
    status: Literal["added", "updated", "unchanged"]
    chunks: int
    warnings: list[str] = []


class DeleteResult(BaseModel):
    id: str
    object: Literal["document"] = "document"
    deleted: bool
    chunks: int
