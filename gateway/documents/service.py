"""Documents in a collection: upload through the ingest implementation, list, delete.

The gateway does not import ``ingest``: the app's composition root hands this service a
``DocumentWriter`` (ingest's ``StoreTarget``, the same code ``ragserve ingest`` runs when it
opens the store itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Literal, Protocol

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
from retrieval.types import VectorStore

Origin = Literal["file", "upload"]
_STORED: dict[str, Literal["added", "updated"]] = {"added": "added", "updated": "updated"}


class WriteOutcome(Protocol):
    """What happened to one upload (``ingest.targets.FileOutcome``)."""

    @property
    def status(self) -> str: ...  # added, updated, unchanged, empty or failed

    @property
    def chunks(self) -> int: ...

    @property
    def warnings(self) -> list[str]: ...

    @property
    def error(self) -> str | None: ...


class DocumentWriter(Protocol):
    """Loads, chunks, embeds and stores one uploaded file (``ingest.targets.StoreTarget``)."""

    @property
    def supported_suffixes(self) -> tuple[str, ...]: ...

    def upload(
        self,
        collection: str,
        data: bytes,
        filename: str,
        *,
        doc_id: str,
        source: str | None,
        tags: dict[str, str],
        origin: str = "upload",
    ) -> WriteOutcome:
        """Raises ``ValueError`` for a collection name the store refuses."""
        ...


def safe_filename(name: str) -> str:
    """The last path component only: an upload named ``../../etc/passwd`` is ``passwd``."""
    base = PureWindowsPath(PurePosixPath(name).name).name.strip()
    if not base or base in (".", ".."):
        raise InvalidRequest("the uploaded file has no usable name", param="file")
    return base


def _pairs(parts: Iterable[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"a tag is key=value, got {part!r}", param="tags")
        tags[key.strip()] = value.strip()
    return tags


def parse_form_tags(raw: str | None) -> dict[str, str]:
    """A JSON object, or ``team=ops,lang=en``."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return _pairs(part for part in raw.split(",") if part.strip())
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

    def __init__(self, writer: DocumentWriter, store: VectorStore, max_bytes: int) -> None:
        self._writer = writer
        self._store = store
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
        origin: Origin = "upload",
    ) -> UploadResult:
        """``reserved_tags``: the tag names API keys' filters use (see ``stamp_upload_tags``).

        ``origin``: "file" when ``ragserve ingest`` sends a file (its ``--prune`` may delete
        the document once the file is gone); "upload" documents are never pruned.
        """
        scope = restrict(key, collection, None, param="collection")
        name = safe_filename(filename)
        suffixes = self._writer.supported_suffixes
        if not name.lower().endswith(suffixes):
            raise UnsupportedMediaType(
                f"'{name}': supported types are {', '.join(suffixes)}",
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
                outcome = self._writer.upload(collection, data, name, doc_id=doc_id,
                                              source=source, tags=tags, origin=origin)  # fmt: skip
            except ValueError as exc:  # a name the store refuses
                raise InvalidRequest(str(exc), param="collection", code="invalid_value") from exc
            if outcome.status == "failed":
                raise InvalidRequest(f"'{name}' could not be read: {outcome.error}", param="file")
            return UploadResult(
                id=doc_id,
                collection=collection,
                status=_STORED.get(outcome.status, "unchanged"),  # "empty": nothing stored
                chunks=outcome.chunks,
                warnings=outcome.warnings,
            )

        async with self._write_lock:
            return await anyio.to_thread.run_sync(run)

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

    async def delete(
        self, collection: str, doc_id: str, key: ApiKey | None, origin: Origin | None = None
    ) -> DeleteResult:
        """``origin``: delete the document only if it came from there (a prune sends "file")."""
        # Another tenant's document is "not found", exactly like one that does not exist.
        scope = restrict(key, collection, None, param="collection") or {}
        only = {"origin": origin} if origin else {}
        target = {"doc_id": doc_id, **only, **scope}  # the key's conditions win, as in searches

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
