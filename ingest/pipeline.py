"""The ingest entry points: plain functions over a store, an embedder and a collection.

``ingest_paths`` is what the CLI calls; ``ingest_file`` serves an HTTP upload (bytes and a
file name through the same loaders and indexer); ``list_documents`` and ``delete_document``
manage what is stored. All of them are synchronous: async callers run them in a thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ingest.chunker import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP
from ingest.files import SkipCallback, parse_tags
from ingest.indexer import DEFAULT_BATCH_SIZE, DocumentEmbedder, Indexer, SparseDocuments
from ingest.loaders import DEFAULT_MAX_BYTES, Document
from ingest.report import IngestSummary, ProgressCallback, RichProgress, Status
from retrieval.types import VectorStore

Tags = Iterable[str] | Mapping[str, object] | None


@dataclass
class FileResult:
    """What happened to one uploaded file."""

    doc_id: str
    status: Status
    chunks: int
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    doc_id: str
    doc_hash: str
    chunks: int


def ingest_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    store: VectorStore,
    embedder: DocumentEmbedder,
    sparse: SparseDocuments,
    collection: str,
    glob: str | None = None,
    prune: bool = False,
    tags: Tags = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
    max_bytes: int = DEFAULT_MAX_BYTES,
    base: str | os.PathLike[str] | None = None,
    progress: bool | ProgressCallback = True,
    on_skip: SkipCallback | None = None,
) -> IngestSummary:
    """Ingest files and folders into ``collection``; never raises for a bad file.

    ``tags``: ``["k=v", ...]`` or a mapping. ``base``: doc ids are paths relative to it
    (default: the working folder). ``progress``: a rich bar on a terminal (True), nothing
    (False), or a callable receiving ``report.Progress`` events. ``prune`` deletes stored
    documents under ``paths`` whose files no longer exist. Store failures do raise
    (``StoreError``): nothing else could be written either.
    """
    indexer = Indexer(store, embedder, sparse, collection, max_tokens=max_tokens,
                      overlap=overlap, batch_size=batch_size, max_bytes=max_bytes)  # fmt: skip
    run = lambda callback: indexer.ingest_paths(  # noqa: E731
        paths, glob=glob, prune=prune, tags=parse_tags(tags), base=base, on_skip=on_skip,
        on_progress=callback,
    )  # fmt: skip
    if callable(progress):
        return run(progress)
    bar = RichProgress(enabled=progress)
    if not bar.enabled:
        return run(None)
    with bar:
        return run(bar)


def ingest_documents(
    documents: Iterable[Document],
    *,
    store: VectorStore,
    embedder: DocumentEmbedder,
    sparse: SparseDocuments,
    collection: str,
    tags: Tags = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> IngestSummary:
    """Store already-loaded documents (e.g. from ``loaders.load_bytes``)."""
    import time

    began = time.perf_counter()
    indexer = Indexer(store, embedder, sparse, collection, max_tokens=max_tokens,
                      overlap=overlap, batch_size=batch_size)  # fmt: skip
    summary = indexer.ingest_documents(documents, parse_tags(tags), origin="upload")
    if summary.added or summary.updated:
        store.optimize(collection)
    summary.elapsed_s = time.perf_counter() - began
    return summary


def ingest_file(
    data: bytes,
    filename: str,
    *,
    store: VectorStore,
    embedder: DocumentEmbedder,
    sparse: SparseDocuments,
    collection: str,
    doc_id: str | None = None,
    source: str | None = None,
    tags: Tags = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> FileResult:
    """Store one uploaded file; raises ``LoadError`` (``UnsupportedType``) if unreadable.

    ``doc_id`` defaults to the file name: uploading it again replaces that document.
    """
    indexer = Indexer(store, embedder, sparse, collection, max_tokens=max_tokens,
                      overlap=overlap, max_bytes=max_bytes)  # fmt: skip
    doc_id = doc_id or filename
    status, chunks, warnings = indexer.ingest_bytes(
        data, filename, doc_id=doc_id, source=source, tags=parse_tags(tags)
    )
    if status == "empty":
        warnings = [*warnings, "the document has no text: nothing was indexed"]
    return FileResult(doc_id, status, chunks, warnings)


def delete_document(store: VectorStore, collection: str, doc_id: str) -> int:
    """Delete one document's chunks; returns how many there were (0: no such document)."""
    chunks = store.count(collection, {"doc_id": doc_id})
    if chunks:
        store.delete(collection, {"doc_id": doc_id})
    return chunks


def list_documents(store: VectorStore, collection: str) -> list[DocumentInfo]:
    """Stored documents with their hash and chunk count, sorted by id.

    Built from ``document_hashes`` plus one ``count`` per document: the store contract has
    no listing of its own (see the report: a ``list_documents`` there would be one scroll).
    """
    hashes = store.document_hashes(collection)
    return [
        DocumentInfo(doc_id, doc_hash, store.count(collection, {"doc_id": doc_id}))
        for doc_id, doc_hash in sorted(hashes.items())
    ]
