"""HTTP edge of the documents API (multipart uploads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from gateway.auth import ApiKey
from gateway.deps import api_key
from gateway.documents.protocol import DeleteResult, DocumentList, UploadResult
from gateway.documents.service import DocumentService, Origin, parse_form_tags
from gateway.errors import ERROR_RESPONSES, store_unavailable

router = APIRouter(responses=ERROR_RESPONSES)


def _service(request: Request) -> DocumentService:
    service: DocumentService | None = request.app.state.documents
    if service is None:
        raise store_unavailable(request.app.state.retrieval.error)
    return service


@router.post("/v1/documents", response_model=UploadResult)
async def upload_document(
    request: Request,
    key: Annotated[ApiKey | None, Depends(api_key)],
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
    return await _service(request).upload(
        data,
        file.filename or "",
        collection=collection or request.app.state.settings.collection,
        doc_id=doc_id,
        source=source,
        tags=parse_form_tags(tags),
        key=key,
        reserved_tags=request.app.state.keys.tenant_tag_names,
        origin=origin,
    )


@router.get("/v1/documents", response_model=DocumentList)
async def list_documents(
    request: Request,
    key: Annotated[ApiKey | None, Depends(api_key)],
    collection: Annotated[str | None, Query(min_length=1)] = None,
) -> DocumentList:
    target = collection or request.app.state.settings.collection
    return DocumentList(data=await _service(request).list(target, key))


@router.delete("/v1/documents", response_model=DeleteResult)
async def delete_document(
    request: Request,
    key: Annotated[ApiKey | None, Depends(api_key)],
    doc_id: Annotated[str, Query(min_length=1)],
    collection: Annotated[str | None, Query(min_length=1)] = None,
    origin: Annotated[Origin | None, Query(description="only if it came from there")] = None,
) -> DeleteResult:
    target = collection or request.app.state.settings.collection
    return await _service(request).delete(target, doc_id, key, origin)
