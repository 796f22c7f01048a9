"""The ingest pipeline: files → documents → chunks → vectors → store, idempotently.

Point ids come from content (document id + chunk index + chunk hash), so re-running an
ingest rewrites the same points. A document is skipped only when its stored hash matches
and all its chunks are there, so a run killed half-way is finished by the next one. A
changed document gets its new chunks first, then loses the old ones.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from ingest.chunking import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_OVERLAP,
    Chunk,
    chunk_sections,
    hf_token_counter,
)
from ingest.documents import (
    DEFAULT_MAX_BYTES,
    Document,
    LoadError,
    UnsupportedType,
    is_supported,
    load_bytes,
    load_file,
)
from retrieval.types import PointRecord, SparseVector, VectorStore

_POINT_NAMESPACE = uuid.UUID("0b6f3f2e-5d0c-4a57-9a53-3c6f1d0f9a11")

Status = Literal["added", "updated", "unchanged", "empty"]


class DocumentEmbedder(Protocol):
    @property
    def dimension(self) -> int: ...

    @property
    def tokenizer(self) -> Any: ...

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]: ...


class SparseDocuments(Protocol):
    def encode_document(self, text: str) -> SparseVector: ...


@dataclass
class IngestSummary:
    added: int = 0
    updated: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0
    chunks: int = 0
    elapsed_s: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.elapsed_s if self.elapsed_s else 0.0

    def count(self, status: Status) -> None:
        if status == "added":
            self.added += 1
        elif status == "updated":
            self.updated += 1
        else:
            self.skipped += 1


def point_id(doc_id: str, index: int, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc_id}\x00{index}\x00{digest}"))


def parse_tags(pairs: Iterable[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"a tag is key=value, got {pair!r}")
        tags[key.strip()] = value.strip()
    return tags


@dataclass
class Indexer:
    """Ingest into one collection of one store with one embedder."""

    store: VectorStore
    embedder: DocumentEmbedder
    sparse: SparseDocuments
    collection: str
    max_tokens: int = DEFAULT_MAX_TOKENS
    overlap: int = DEFAULT_OVERLAP
    batch_size: int = 64
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        self._count_tokens = hf_token_counter(self.embedder.tokenizer)
        self.store.ensure_collection(self.collection, self.embedder.dimension)
        self._stored = self.store.document_hashes(self.collection)

    # -- one document ------------------------------------------------------------------

    def chunk(self, document: Document) -> list[Chunk]:
        return chunk_sections(
            document.sections, self._count_tokens, max_tokens=self.max_tokens,
            overlap=self.overlap,
        )  # fmt: skip

    def index(self, document: Document, tags: dict[str, str] | None = None) -> tuple[Status, int]:
        """Store ``document``; returns what happened and its chunk count."""
        chunks = self.chunk(document)
        previous = self._stored.get(document.doc_id)
        if not chunks:
            if previous is not None:
                self.delete_document(document.doc_id)
            return "empty", 0
        if previous == document.doc_hash and self._complete(document.doc_id, len(chunks)):
            return "unchanged", len(chunks)
        for start in range(0, len(chunks), self.batch_size):
            self._upsert(document, chunks[start : start + self.batch_size], len(chunks), tags)
        # New chunks first, then the old version's: a reader never sees the document vanish.
        if previous is not None and previous != document.doc_hash:
            self.store.delete(self.collection, {"doc_id": document.doc_id, "doc_hash": previous})
        if not self._complete(document.doc_id, len(chunks)):
            # Leftovers of yet older versions (a run killed mid-update): rewrite cleanly.
            self.store.delete(self.collection, {"doc_id": document.doc_id})
            for start in range(0, len(chunks), self.batch_size):
                self._upsert(document, chunks[start : start + self.batch_size], len(chunks), tags)
        self._stored[document.doc_id] = document.doc_hash
        return ("updated" if previous is not None else "added"), len(chunks)

    def _complete(self, doc_id: str, expected: int) -> bool:
        return self.store.count(self.collection, {"doc_id": doc_id}) == expected

    def _upsert(
        self, document: Document, chunks: Sequence[Chunk], total: int, tags: dict[str, str] | None
    ) -> None:
        texts = [chunk.text for chunk in chunks]
        dense = self.embedder.embed_documents(texts, batch_size=self.batch_size)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        tag_list = [f"{k}={v}" for k, v in sorted((tags or {}).items())]
        points = [
            PointRecord(
                id=point_id(document.doc_id, chunk.index, chunk.text),
                dense=vector,
                sparse=self.sparse.encode_document(chunk.text),
                payload={
                    "text": chunk.text,
                    "doc_id": document.doc_id,
                    "doc_hash": document.doc_hash,
                    "source": document.source,
                    "title": document.title,
                    "section": chunk.section,
                    "page": chunk.page,
                    "chunk_index": chunk.index,
                    "chunk_count": total,
                    "start": chunk.start,
                    "end": chunk.end,
                    "tags": tag_list,
                    "meta": dict(tags or {}),
                    "ingested_at": now,
                },
            )  # fmt: skip
            for chunk, vector in zip(chunks, dense, strict=True)
        ]
        self.store.upsert(self.collection, points)

    def delete_document(self, doc_id: str) -> int:
        chunks = self.store.count(self.collection, {"doc_id": doc_id})
        if chunks:
            self.store.delete(self.collection, {"doc_id": doc_id})
        self._stored.pop(doc_id, None)
        return chunks

    def documents(self) -> dict[str, str]:
        """Stored documents: id → content hash."""
        return dict(self._stored)

    # -- files -------------------------------------------------------------------------

    def ingest_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        doc_id: str,
        source: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> tuple[Status, int, list[str]]:
        document = load_bytes(data, filename, doc_id=doc_id, source=source or filename)
        status, chunks = self.index(document, tags)
        return status, chunks, document.warnings

    def ingest_paths(
        self,
        paths: Sequence[Path],
        *,
        glob: str | None = None,
        prune: bool = False,
        tags: dict[str, str] | None = None,
        on_file: Callable[[Path, int], None] | None = None,
        on_skip: Callable[[Path, str], None] | None = None,
    ) -> IngestSummary:
        """Ingest files and folders; ``on_file(path, chunks)`` reports progress."""
        began = time.perf_counter()
        summary = IngestSummary()
        seen: set[str] = set()
        for path in discover(paths, glob, on_skip or (lambda p, why: None)):
            doc_id = str(path.resolve())
            seen.add(doc_id)
            try:
                document = load_file(path, doc_id=doc_id, source=display_path(path),
                                     max_bytes=self.max_bytes)  # fmt: skip
                status, chunks = self.index(document, tags)
            except UnsupportedType as exc:
                if on_skip:
                    on_skip(path, str(exc))
                continue
            except LoadError as exc:
                summary.failed += 1
                summary.failures.append((str(path), str(exc)))
                continue
            summary.warnings += [(str(path), w) for w in document.warnings]
            if status == "empty":
                summary.warnings.append((str(path), "empty: no text to index"))
            summary.count(status)
            summary.chunks += chunks if status != "unchanged" else 0
            if on_file:
                on_file(path, chunks)
        if prune:
            summary.deleted = self.prune(paths, seen)
        if summary.added or summary.updated or summary.deleted:
            # Edge has no background optimizer: index the new segments once, after the bulk.
            self.store.optimize(self.collection)
        summary.elapsed_s = time.perf_counter() - began
        return summary

    def prune(self, roots: Sequence[Path], present: set[str]) -> int:
        """Delete documents under ``roots`` whose files are gone; returns how many."""
        prefixes = [str(r.resolve()) for r in roots]
        gone = [
            doc_id
            for doc_id in list(self._stored)
            if doc_id not in present
            and any(doc_id == p or doc_id.startswith(p.rstrip("/") + "/") for p in prefixes)
        ]
        for doc_id in gone:
            self.delete_document(doc_id)
        return len(gone)


def display_path(path: Path) -> str:
    """How a file is named in sources: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def discover(
    paths: Sequence[Path], glob: str | None, on_skip: Callable[[Path, str], None]
) -> list[Path]:
    """Files to ingest, sorted; unsupported files are reported through ``on_skip``."""
    found: list[Path] = []
    for root in paths:
        if root.is_file():
            candidates = [root]
        elif root.is_dir():
            candidates = sorted(p for p in root.rglob(glob or "*") if p.is_file())
        else:
            on_skip(root, "no such file or folder")
            continue
        for path in candidates:
            if any(part.startswith(".") for part in path.relative_to(root).parts if root.is_dir()):
                continue  # hidden files and folders (.git, .DS_Store)
            if is_supported(path):
                found.append(path)
            else:
                on_skip(path, f"unsupported file type '{path.suffix or path.name}'")
    return sorted(dict.fromkeys(found))
