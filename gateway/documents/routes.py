"""HTTP edge of the documents API (multipart uploads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from gateway.deps import KeyDep, ServicesDep
from gateway.documents.protocol import DeleteResult, DocumentList, UploadResult
from gateway.documents.service import Origin, parse_form_tags
from gateway.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES)


@router.post("/v1/documents", response_model=UploadResult)
async def upload_document(
    services: ServicesDep,
    key: KeyDep,
    file: Annotated[UploadFile, File(description="The document (.txt .md .html .pdf .docx)")],
    collection: Annotated[str | None, Form(min_length=1, max_length=255)] = None,
    doc_id: Annotated[str | None, Form(min_length=1, max_length=1024)] = None,
    tags: Annotated[str | None, Form(description='JSON object, e.g. {"team": "ops"}')] = None,
    source: Annotated[str | None, Form(max_length=1024)] = None,
    origin: Annotated[
        Origin, Form(description="file: sent by `ragserve ingest`, which may prune it later")
    ] = "upload",
) -> UploadResult:
    data = await file.read()
    return await services.documents.upload(
        data,
        file.filename or "",
        collection=collection or services.settings.collection,
        doc_id=doc_id,
        source=source,
        tags=parse_form_tags(tags),
        key=key,
        reserved_tags=services.keys.tenant_tag_names,
        origin=origin,
    )


@router.get("/v1/documents", response_model=DocumentList)
async def list_documents(
    services: ServicesDep,
    key: KeyDep,
    collection: Annotated[str | None, Query(min_length=1)] = None,
) -> DocumentList:
    target = collection or services.settings.collection
    return DocumentList(data=await services.documents.list(target, key))


@router.delete("/v1/documents", response_model=DeleteResult)
async def delete_document(
    services: ServicesDep,
    key: KeyDep,
    doc_id: Annotated[str, Query(min_length=1)],
    collection: Annotated[str | None, Query(min_length=1)] = None,
    origin: Annotated[Origin | None, Query(description="only if it came from there")] = None,
) -> DeleteResult:
    target = collection or services.settings.collection
    return await services.documents.delete(target, doc_id, key, origin)
