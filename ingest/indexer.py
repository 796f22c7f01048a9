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
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ingest.chunker import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, Chunk, Chunker
from ingest.loaders import DEFAULT_MAX_BYTES, Document, LoadError, load_bytes
from ingest.report import Status
from retrieval.types import PointRecord, SparseVector, VectorStore

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

    def ingest_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        doc_id: str,
        source: str | None = None,
        tags: dict[str, str] | None = None,
        origin: str = "upload",
    ) -> tuple[Status, int, list[str]]:
        """Load and store uploaded bytes; raises ``LoadError`` (``UnsupportedType``).

        ``origin``: "file" for a file sent by ``ragserve ingest`` (a later ``--prune`` may
        delete it once the file is gone), "upload" otherwise (never pruned).
        """
        if len(data) > self.max_bytes:
            raise LoadError(f"too large: {len(data)} bytes is over the {self.max_bytes} limit")
        document = load_bytes(data, filename, doc_id=doc_id, source=source or filename)
        result: list[tuple[Status, int]] = []
        self.submit(document, tags, origin=origin,
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
