"""The indexer: documents → chunks → vectors → store, idempotently and incrementally.

Point ids come from content (document id + chunk index + chunk hash), so re-running an
ingest rewrites the same points. A document is skipped only when every stored point of it
carries its current hash and their number is its chunk count, so a run killed half-way is
finished by the next one. A changed document gets its new chunks first, then loses the
old ones: a reader never sees it vanish.

Chunks of consecutive documents share embedding batches (small files would otherwise make
tiny batches); a document's clean-up runs once its last chunk is written.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ingest.chunker import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, Chunk, Chunker
from ingest.files import SkipCallback, discover, display_path, doc_id_for, parse_tags, under
from ingest.loaders import (
    DEFAULT_MAX_BYTES,
    SUPPORTED_SUFFIXES,
    Document,
    LoadError,
    UnsupportedType,
    load_bytes,
    load_path,
)
from ingest.report import IngestSummary, Progress, ProgressCallback, Status
from retrieval.types import PointRecord, SparseVector, VectorStore

__all__ = [
    "SUPPORTED_SUFFIXES",
    "DocumentEmbedder",
    "Indexer",
    "IngestSummary",
    "LoadError",
    "SparseDocuments",
    "UnsupportedType",
    "discover",
    "display_path",
    "parse_tags",
    "point_id",
]

_POINT_NAMESPACE = uuid.UUID("0b6f3f2e-5d0c-4a57-9a53-3c6f1d0f9a11")
# Chunks per embed+upsert round. Large enough that the model's length-sorting keeps padding
# low (a whole-corpus encode sorts everything; 64-chunk rounds cost ~20% in padding).
DEFAULT_BATCH_SIZE = 256
EMBED_BATCH_SIZE = 64  # the model's own batch inside a round


class DocumentEmbedder(Protocol):
    @property
    def dimension(self) -> int: ...

    @property
    def tokenizer(self) -> Any: ...

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]: ...


class SparseDocuments(Protocol):
    def encode_document(self, text: str) -> SparseVector: ...


def point_id(doc_id: str, index: int, text: str) -> str:
    """The point's UUID: the same chunk of the same document always gets the same id."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc_id}\x00{index}\x00{digest}"))


# Called when a document is done: (document, status, chunk count).
DoneCallback = Callable[[Document, Status, int], None]


@dataclass(eq=False)  # identity: jobs are counted per batch
class _Job:
    document: Document
    chunks: list[Chunk]
    previous: str | None
    tags: dict[str, str]
    origin: str
    done: DoneCallback | None
    written: int = 0
    payload_base: dict[str, Any] = field(default_factory=dict)


class Indexer:
    """Ingest into one collection of one store with one embedder."""

    def __init__(
        self,
        store: VectorStore,
        embedder: DocumentEmbedder,
        sparse: SparseDocuments,
        collection: str,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.collection = collection
        self.batch_size = max(1, batch_size)
        self.max_bytes = max_bytes
        # The model truncates past its window ([CLS] and [SEP] included): never exceed it.
        window = getattr(embedder, "max_seq_length", None)
        if isinstance(window, int) and window > 8:
            max_tokens = min(max_tokens, window - 2)
        self.chunker = Chunker(embedder.tokenizer, max_tokens=max_tokens,
                               overlap=min(overlap, max_tokens // 2))  # fmt: skip
        self.store.ensure_collection(collection, embedder.dimension)
        self._hashes: dict[str, str] | None = None
        self._pending: list[tuple[_Job, Chunk]] = []
        self.written = 0  # chunks embedded and stored by this indexer (progress)
        self.on_batch: Callable[[int], None] | None = None

    @property
    def _stored(self) -> dict[str, str]:
        # Loaded on first use: a scroll over the collection's payloads, once per indexer.
        if self._hashes is None:
            self._hashes = self.store.document_hashes(self.collection)
        return self._hashes

    def documents(self) -> dict[str, str]:
        """Stored documents: id → content hash."""
        return dict(self._stored)

    def chunk(self, document: Document) -> list[Chunk]:
        return self.chunker.chunk(document)

    # -- one document ----------------------------------------------------------------------

    def submit(
        self,
        document: Document,
        tags: dict[str, str] | None = None,
        *,
        origin: str = "file",
        done: DoneCallback | None = None,
    ) -> None:
        """Queue ``document``; ``done`` is called once it is stored (call ``flush`` at the end)."""
        chunks = self.chunk(document)
        previous = self._stored.get(document.doc_id)
        if not chunks:
            if previous is not None:
                self.delete_document(document.doc_id)
            if done:
                done(document, "empty", 0)
            return
        if previous == document.doc_hash and self._complete(document, len(chunks)):
            if done:
                done(document, "unchanged", len(chunks))
            return
        job = _Job(document, chunks, previous, dict(tags or {}), origin, done)
        job.payload_base = self._payload_base(job)
        self._pending.extend((job, chunk) for chunk in chunks)
        while len(self._pending) >= self.batch_size:
            self._write_batch()

    def flush(self) -> None:
        """Write every queued chunk (and finish their documents)."""
        while self._pending:
            self._write_batch()

    def index(self, document: Document, tags: dict[str, str] | None = None) -> tuple[Status, int]:
        """Store ``document`` now; returns what happened and its chunk count."""
        result: list[tuple[Status, int]] = []
        self.submit(document, tags, done=lambda d, status, n: result.append((status, n)))
        self.flush()
        return result[0]

    def ingest_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        doc_id: str,
        source: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> tuple[Status, int, list[str]]:
        """Load and store uploaded bytes; raises ``LoadError`` (``UnsupportedType``)."""
        if len(data) > self.max_bytes:
            raise LoadError(f"too large: {len(data)} bytes is over the {self.max_bytes} limit")
        document = load_bytes(data, filename, doc_id=doc_id, source=source or filename)
        result: list[tuple[Status, int]] = []
        self.submit(document, tags, origin="upload",
                    done=lambda d, status, n: result.append((status, n)))  # fmt: skip
        self.flush()
        status, chunks = result[0]
        return status, chunks, document.warnings

    def delete_document(self, doc_id: str) -> int:
        """Delete a document's points; returns how many there were."""
        chunks = self.store.count(self.collection, {"doc_id": doc_id})
        if chunks:
            self.store.delete(self.collection, {"doc_id": doc_id})
        self._stored.pop(doc_id, None)
        return chunks

    # -- many -----------------------------------------------------------------------------

    def ingest_documents(
        self,
        documents: Iterable[Document],
        tags: dict[str, str] | None = None,
        *,
        origin: str = "file",
        summary: IngestSummary | None = None,
        on_done: DoneCallback | None = None,
    ) -> IngestSummary:
        """Store loaded documents, batching chunks across them."""
        summary = summary if summary is not None else IngestSummary()
        seen: set[str] = set()

        def done(document: Document, status: Status, chunks: int) -> None:
            summary.count(status)
            if status in ("added", "updated"):
                summary.chunks += chunks
            if status == "empty":
                summary.warn(document.source, "empty: no text to index")
            if on_done:
                on_done(document, status, chunks)

        for document in documents:
            if document.doc_id in seen:
                summary.skipped += 1
                summary.warn(document.source, "given twice in one run: read once")
                continue
            seen.add(document.doc_id)
            for warning in document.warnings:
                summary.warn(document.source, warning)
            self.submit(document, tags, origin=origin, done=done)
        self.flush()
        return summary

    def ingest_paths(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        glob: str | None = None,
        prune: bool = False,
        tags: dict[str, str] | None = None,
        base: str | os.PathLike[str] | None = None,
        on_file: Callable[[Path, int], None] | None = None,
        on_skip: SkipCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IngestSummary:
        """Ingest files and folders; ``on_file(path, chunks)`` is called as each is done."""
        began = time.perf_counter()
        summary = IngestSummary()
        skip = on_skip or (lambda path, why: summary.warn(str(path), f"skipped: {why}"))
        files = discover(paths, glob, skip)
        by_id: dict[str, Path] = {}
        finished, written_before = 0, self.written

        def report(path: str | None = None) -> None:
            if on_progress:
                on_progress(Progress(finished, len(files), self.written - written_before,
                                     time.perf_counter() - began, path))  # fmt: skip

        def done(document: Document, status: Status, chunks: int) -> None:
            nonlocal finished
            finished += 1
            if on_file:
                on_file(by_id[document.doc_id], chunks)
            report(document.source)

        def failed() -> None:
            nonlocal finished
            finished += 1
            report()

        self.on_batch = lambda n: report()
        try:
            documents = self._load_all(files, base, by_id, summary, failed)
            self.ingest_documents(documents, tags, summary=summary, on_done=done)
        finally:
            self.on_batch = None
        if prune:
            summary.deleted = self.prune(paths, set(by_id), base)
        if summary.added or summary.updated or summary.deleted:
            # Edge has no background optimizer: index the new segments once, after the bulk.
            self.store.optimize(self.collection)
        summary.elapsed_s = time.perf_counter() - began
        report()
        return summary

    def _load_all(
        self,
        files: list[Path],
        base: str | os.PathLike[str] | None,
        by_id: dict[str, Path],
        summary: IngestSummary,
        failed: Callable[[], None],
    ) -> Iterable[Document]:
        """Documents of ``files``, lazily; load failures are recorded, not raised."""
        for path in files:
            doc_id = doc_id_for(path, base)
            by_id[doc_id] = path
            try:
                yield load_path(path, doc_id=doc_id, source=display_path(path),
                                max_bytes=self.max_bytes)  # fmt: skip
            except LoadError as exc:
                summary.fail(str(path), str(exc))
                failed()
            except Exception as exc:  # noqa: BLE001 - one bad file must not end the run
                summary.fail(str(path), f"unexpected {type(exc).__name__}: {exc}")
                failed()

    def prune(
        self,
        roots: Sequence[str | os.PathLike[str]],
        present: set[str],
        base: str | os.PathLike[str] | None = None,
    ) -> int:
        """Delete documents under ``roots`` whose files are gone; returns how many.

        Only documents ingested from files are candidates: an upload that happens to share a
        name is never pruned, nor a file that exists but was filtered out or failed to load.
        """
        prefixes = [doc_id_for(r, base) for r in roots]
        folder = Path(os.path.abspath(base if base is not None else os.getcwd()))
        gone = 0
        for doc_id in sorted(self._stored):
            if doc_id in present or not any(under(doc_id, p) for p in prefixes):
                continue
            if (folder / doc_id).exists():
                continue
            if self.store.count(self.collection, {"doc_id": doc_id, "origin": "file"}):
                self.delete_document(doc_id)
                gone += 1
        return gone

    # -- internals -------------------------------------------------------------------------

    def _complete(self, document: Document, expected: int) -> bool:
        """All of the document's points carry its hash, and there are ``expected`` of them."""
        doc = {"doc_id": document.doc_id}
        if self.store.count(self.collection, doc) != expected:
            return False
        current = {**doc, "doc_hash": document.doc_hash}
        return self.store.count(self.collection, current) == expected

    def _payload_base(self, job: _Job) -> dict[str, Any]:
        d = job.document
        return {
            "doc_id": d.doc_id,
            "doc_hash": d.doc_hash,
            "source": d.source,
            "title": d.title,
            "chunk_count": len(job.chunks),
            "tags": [f"{k}={v}" for k, v in sorted(job.tags.items())],
            "meta": dict(job.tags),
            # "file" documents may be pruned when their file is gone; uploads never are.
            "origin": job.origin,
            "mtime": d.mtime,
        }

    def _write_batch(self) -> None:
        batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
        self._write(batch)
        per_job = Counter(job for job, _ in batch)  # insertion-ordered: documents in order
        for job, n in per_job.items():
            job.written += n
            if job.written == len(job.chunks):
                self._finish(job)
        if self.on_batch:
            self.on_batch(len(batch))

    def _write(self, batch: Sequence[tuple[_Job, Chunk]]) -> None:
        texts = [chunk.text for _, chunk in batch]
        dense = self.embedder.embed_documents(
            texts, batch_size=min(EMBED_BATCH_SIZE, self.batch_size)
        )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        points = [
            PointRecord(
                id=point_id(job.document.doc_id, chunk.index, chunk.text),
                dense=vector,
                sparse=self.sparse.encode_document(chunk.text),
                payload={
                    **job.payload_base,
                    "text": chunk.text,
                    "section": chunk.section,
                    "page": chunk.page,
                    "chunk_index": chunk.index,
                    "start": chunk.start,
                    "end": chunk.end,
                    "ingested_at": now,
                },
            )  # fmt: skip
            for (job, chunk), vector in zip(batch, dense, strict=True)
        ]
        self.store.upsert(self.collection, points)
        self.written += len(points)

    def _finish(self, job: _Job) -> None:
        document, n = job.document, len(job.chunks)
        if job.previous is not None and job.previous != document.doc_hash:
            self.store.delete(self.collection,
                              {"doc_id": document.doc_id, "doc_hash": job.previous})  # fmt: skip
        if not self._complete(document, n):
            # Leftovers of yet older versions (an update killed half-way) or of another
            # chunking of the same bytes: rewrite the document cleanly.
            self.store.delete(self.collection, {"doc_id": document.doc_id})
            for i in range(0, n, self.batch_size):
                self._write([(job, c) for c in job.chunks[i : i + self.batch_size]])
        self._stored[document.doc_id] = document.doc_hash
        if job.done:
            job.done(document, "updated" if job.previous is not None else "added", n)
