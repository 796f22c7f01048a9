"""Where an ingest writes: the seam between the one ingest run and its two targets.

``ingest.pipeline.ingest_paths`` walks the files, names the documents, counts and prunes;
a target stores what it is handed. ``StoreTarget`` is the store opened in this process
(files are loaded, chunked and embedded here); the CLI's gateway client is the other
target (files travel to a running gateway, whose documents API stores them through a
``StoreTarget`` of its own). Both are re-index targets too (``ingest.reindex``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from ingest.chunker import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP
from ingest.indexer import DEFAULT_BATCH_SIZE, DocumentEmbedder, Indexer, SparseDocuments
from ingest.loaders import DEFAULT_MAX_BYTES, SUPPORTED_SUFFIXES, Document, LoadError, load_path
from ingest.report import Status
from retrieval.types import VectorStore


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file of a run, with the names it is stored under."""

    path: Path
    doc_id: str
    source: str
    tags: dict[str, str]


@dataclass
class FileOutcome:
    """What happened to one file: stored (a ``Status``) or failed, with why."""

    status: Status | Literal["failed"]
    chunks: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


FileDone = Callable[[SourceFile, FileOutcome], None]


class IngestTarget(Protocol):
    """What an ingest run needs of the place it writes to."""

    def submit(self, collection: str, file: SourceFile, done: FileDone) -> None:
        """Store ``file``; ``done`` is called once it is stored or has failed."""

    def flush(self, collection: str) -> None:
        """Finish every submitted file (each ``done`` has been called on return)."""

    def documents(self, collection: str) -> set[str]:
        """The ids of the documents stored in ``collection`` (none if it does not exist)."""

    def delete_file_document(self, collection: str, doc_id: str) -> int:
        """Delete a document ingested from a file (never an upload); its chunk count."""

    def finish(self, collection: str) -> None:
        """After a run that changed ``collection``."""


class StoreTarget:
    """The store opened in this process; also what the documents API writes uploads with."""

    supported_suffixes = SUPPORTED_SUFFIXES

    def __init__(
        self,
        store: VectorStore,
        embedder: DocumentEmbedder,
        sparse: SparseDocuments,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.max_bytes = max_bytes
        self._options = {"max_tokens": max_tokens, "overlap": overlap, "batch_size": batch_size}
        # One indexer per collection for a run: chunks of consecutive files share batches.
        self._indexers: dict[str, Indexer] = {}

    def indexer(self, collection: str) -> Indexer:
        """A fresh indexer (raises ``ValueError`` for a name the store refuses)."""
        return Indexer(self.store, self.embedder, self.sparse, collection,
                       max_bytes=self.max_bytes, **self._options)  # fmt: skip

    def _run_indexer(self, collection: str) -> Indexer:
        if collection not in self._indexers:
            self._indexers[collection] = self.indexer(collection)
        return self._indexers[collection]

    # -- IngestTarget ----------------------------------------------------------------------

    def submit(self, collection: str, file: SourceFile, done: FileDone) -> None:
        indexer = self._run_indexer(collection)
        try:
            document = load_path(file.path, doc_id=file.doc_id, source=file.source,
                                 max_bytes=self.max_bytes)  # fmt: skip
        except LoadError as exc:
            done(file, FileOutcome("failed", error=str(exc)))
            return
        except Exception as exc:  # one bad file must not end the run
            done(file, FileOutcome("failed", error=f"unexpected {type(exc).__name__}: {exc}"))
            return

        def stored(document: Document, status: Status, chunks: int) -> None:
            done(file, FileOutcome(status, chunks, document.warnings))

        indexer.submit(document, file.tags, origin="file", done=stored)

    def flush(self, collection: str) -> None:
        self._run_indexer(collection).flush()

    def documents(self, collection: str) -> set[str]:
        if not self.store.collection_exists(collection):
            return set()
        return set(self._run_indexer(collection).documents())

    def delete_file_document(self, collection: str, doc_id: str) -> int:
        if not self.store.count(collection, {"doc_id": doc_id, "origin": "file"}):
            return 0
        return self._run_indexer(collection).delete_document(doc_id)

    def finish(self, collection: str) -> None:
        # Edge has no background optimizer: index the new segments once, after the bulk.
        self.store.optimize(collection)

    # -- one uploaded file (the documents API) ---------------------------------------------

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
    ) -> FileOutcome:
        """Store uploaded bytes now; a fresh indexer, as other writers may have been at work."""
        indexer = self.indexer(collection)
        try:
            status, chunks, warnings = indexer.ingest_bytes(
                data, filename, doc_id=doc_id, source=source, tags=tags, origin=origin
            )
        except LoadError as exc:
            return FileOutcome("failed", error=str(exc))
        if status == "empty":
            warnings = [*warnings, "the document has no text: nothing was indexed"]
        return FileOutcome(status, chunks, warnings)

    # -- ReindexTarget ---------------------------------------------------------------------

    def create_versioned(self, alias: str) -> str:
        return self.store.create_versioned(alias, self.embedder.dimension)

    def switch_alias(self, alias: str, collection: str) -> None:
        self.store.switch_alias(alias, collection)

    def delete_collection(self, name: str) -> None:
        self._indexers.pop(name, None)
        self.store.delete_collection(name)
