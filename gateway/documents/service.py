"""Documents in a collection: upload through the ingest pipeline, list, delete."""

from __future__ import annotations

import json
from pathlib import PurePosixPath, PureWindowsPath

import anyio

from gateway.auth import ApiKey, restrict, stamp_upload_tags
from gateway.documents.protocol import DeleteResult, DocumentInfo, UploadResult
from gateway.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from ingest.indexer import Indexer, parse_tags
from ingest.loaders import SUPPORTED_SUFFIXES, LoadError, UnsupportedType
from retrieval.embedder import Embedder
from retrieval.sparse import SparseEncoder
from retrieval.types import VectorStore


def safe_filename(name: str) -> str:
    """The last path component only: an upload named ``../../etc/passwd`` is ``passwd``."""
    base = PureWindowsPath(PurePosixPath(name).name).name.strip()
    if not base or base in (".", ".."):
        raise InvalidRequest("the uploaded file has no usable name", param="file")
    return base


def parse_form_tags(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        try:
            return parse_tags(part for part in raw.split(",") if part.strip())
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="tags") from exc
    if not isinstance(value, dict):
        raise InvalidRequest('tags: a JSON object like {"team": "ops"}', param="tags")
    return {str(k): str(v) for k, v in value.items()}


def _collection_not_found(collection: str) -> NotFound:
    return NotFound(
        f"collection '{collection}' does not exist", param="collection",
        code="collection_not_found",
    )  # fmt: skip


class DocumentService:
    """Writes are serialised: one indexer at a time keeps a collection's bookkeeping exact.

    A key with a filter (a tenant) sees, lists and deletes only the chunks inside its
    filter, and its uploads are tagged to stay inside it.
    """

    def __init__(
        self, store: VectorStore, embedder: Embedder, sparse: SparseEncoder, max_bytes: int
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._sparse = sparse
        self._max_bytes = max_bytes
        self._write_lock = anyio.Lock()

    async def upload(
        self,
        data: bytes,
        filename: str,
        *,
        collection: str,
        doc_id: str | None,
        source: str | None = None,
        tags: dict[str, str],
        key: ApiKey | None,
        reserved_tags: frozenset[str] = frozenset(),
    ) -> UploadResult:
        """``reserved_tags``: the tag names API keys' filters use (see ``stamp_upload_tags``)."""
        scope = restrict(key, collection, None, param="collection")
        name = safe_filename(filename)
        if not name.lower().endswith(SUPPORTED_SUFFIXES):
            raise UnsupportedMediaType(
                f"'{name}': supported types are {', '.join(SUPPORTED_SUFFIXES)}",
                param="file",
                code="unsupported_file_type",
            )
        if len(data) > self._max_bytes:
            raise PayloadTooLarge(f"the file exceeds {self._max_bytes} bytes", param="file")
        tags = stamp_upload_tags(key, tags, reserved_tags)
        doc_id = doc_id or name

        def run() -> UploadResult:
            if scope and self._store.collection_exists(collection):
                # The indexer replaces every chunk of a doc_id: another tenant's must not be.
                everyone = self._store.count(collection, {"doc_id": doc_id})
                if everyone != self._store.count(collection, {"doc_id": doc_id, **scope}):
                    raise Conflict(
                        f"the document id '{doc_id}' is taken; upload under another doc_id",
                        param="doc_id",
                        code="document_id_taken",
                    )
            try:
                indexer = Indexer(self._store, self._embedder, self._sparse, collection)
            except ValueError as exc:  # a name the store refuses
                raise InvalidRequest(str(exc), param="collection", code="invalid_value") from exc
            status, chunks, warnings = indexer.ingest_bytes(
                data, name, doc_id=doc_id, source=source, tags=tags
            )
            if status == "empty":
                warnings = [*warnings, "the document has no text: nothing was indexed"]
            return UploadResult(
                id=doc_id,
                collection=collection,
                status="unchanged" if status == "empty" else status,
                chunks=chunks,
                warnings=warnings,
            )

        try:
            async with self._write_lock:
                return await anyio.to_thread.run_sync(run)
        except UnsupportedType as exc:
            raise UnsupportedMediaType(str(exc), param="file") from exc
        except LoadError as exc:
            raise InvalidRequest(f"'{name}' could not be read: {exc}", param="file") from exc

    async def list(self, collection: str, key: ApiKey | None) -> list[DocumentInfo]:
        scope = restrict(key, collection, None, param="collection") or {}

        def run() -> list[DocumentInfo]:
            if not self._store.collection_exists(collection):
                raise _collection_not_found(collection)
            hashes = self._store.document_hashes(collection)
            counted = (
                (doc_id, doc_hash, self._store.count(collection, {"doc_id": doc_id, **scope}))
                for doc_id, doc_hash in sorted(hashes.items())
            )
            return [
                DocumentInfo(id=doc_id, collection=collection, doc_hash=doc_hash, chunks=chunks)
                for doc_id, doc_hash, chunks in counted
                if chunks  # none inside the key's filter: another tenant's document
            ]

        return await anyio.to_thread.run_sync(run)

    async def delete(self, collection: str, doc_id: str, key: ApiKey | None) -> DeleteResult:
        # Another tenant's document is "not found", exactly like one that does not exist.
        scope = restrict(key, collection, None, param="collection") or {}
        target = {"doc_id": doc_id, **scope}  # the key's conditions win, as in searches

        def run() -> int:
            if not self._store.collection_exists(collection):
                raise _collection_not_found(collection)
            chunks = self._store.count(collection, target)
            if chunks:
                self._store.delete(collection, target)
            return chunks

        async with self._write_lock:
            chunks = await anyio.to_thread.run_sync(run)
        if not chunks:
            raise NotFound(
                f"no document '{doc_id}' in '{collection}'", param="doc_id",
                code="document_not_found",
            )  # fmt: skip
        return DeleteResult(id=doc_id, deleted=True, chunks=chunks)
