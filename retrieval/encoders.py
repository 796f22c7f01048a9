"""Which keyword encoder a collection was built with, so queries never mix encoders silently.

Stored sparse vectors only match queries tokenised the same way (a stemmed index does not
know ``inhibits``, only ``inhibit``). Writers put the encoder's version into every point's
payload (``stamp``); points without it were written before versions existed and are
``bm25-v1`` (unstemmed). Readers ask ``collection_encoder`` for the encoder to use:

- an empty collection, or one whose points all carry the preferred version: the preferred
  encoder (a new collection, or a re-index, gets the current default);
- all points of one other known version: that version's encoder (old collections keep
  answering as they were built);
- points of more than one version: ``EncoderMismatch``, which says to run
  ``ragserve ingest --reindex``.

The check counts points by payload (two or three ``count`` calls); ``SparseEncoders`` caches
the answer per collection for ``ttl_s`` and the retriever re-checks at once when a search
returns points of another version (an alias switched to a re-indexed collection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from retrieval.sparse import (
    DEFAULT_STEMMER,
    ENCODER_FIELD,
    LEGACY_VERSION,
    SparseEncoder,
    version_of,
)
from retrieval.types import PointRecord, SearchHit, StoreError, VectorStore


class EncoderMismatch(StoreError):
    """The collection holds keyword vectors of more than one encoder."""

    def __init__(self, collection: str, versions: Iterable[str]) -> None:
        names = ", ".join(sorted(versions))
        super().__init__(
            f"collection '{collection}' holds keyword vectors of several encoders ({names}); "
            f"run `ragserve ingest --reindex` on it"
        )
        self.collection = collection


def stamp(payload: dict[str, Any], encoder: SparseEncoder) -> dict[str, Any]:
    """``payload`` with the encoder's version (what writers store with every point)."""
    return {**payload, ENCODER_FIELD: encoder.version}


def hit_version(hit: SearchHit) -> str:
    """The encoder version of a stored point (unstamped points are legacy)."""
    return str(hit.payload.get(ENCODER_FIELD) or LEGACY_VERSION)


def stamped_payload(point: PointRecord) -> dict[str, Any]:
    """The payload a store writes: the point's own, plus its keyword encoder's version."""
    if point.sparse.encoder is None:  # a vector built by hand: nothing to record
        return dict(point.payload)
    return {**point.payload, ENCODER_FIELD: point.sparse.encoder}


def collection_encoder(
    store: VectorStore, collection: str, preferred: SparseEncoder
) -> SparseEncoder:
    """The encoder ``collection`` was built with (see the module docstring)."""
    return preferred.with_version(collection_version(store, collection, preferred.version))


def collection_version(store: VectorStore, collection: str, preferred: str) -> str:
    """The encoder version of ``collection``'s points (``preferred`` when it is empty)."""
    total = store.count(collection)
    if total == 0:
        return preferred
    candidates = dict.fromkeys([preferred, version_of(DEFAULT_STEMMER)])
    candidates.pop(LEGACY_VERSION, None)  # legacy points carry no field: counted as the rest
    stamped: dict[str, int] = {}
    for version in candidates:
        n = store.count(collection, {ENCODER_FIELD: version})
        if n:
            stamped[version] = n
    legacy = total - sum(stamped.values())
    found = {**stamped, **({LEGACY_VERSION: legacy} if legacy > 0 else {})}
    if len(found) > 1:
        raise EncoderMismatch(collection, found)
    (version,) = found
    return version


class WriteGuard:
    """Refuses writes that would put a second encoder's vectors into a collection.

    A store calls ``check`` before each upsert; the first write of a version to a collection
    counts its points (``collection_version``), later ones are free. Vectors built by hand
    (no ``encoder``) are not checked.
    """

    def __init__(self) -> None:
        self._ok: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def check(self, store: VectorStore, collection: str, points: Iterable[PointRecord]) -> None:
        versions = {p.sparse.encoder for p in points if p.sparse.encoder is not None}
        if len(versions) > 1:
            raise EncoderMismatch(collection, versions)
        for version in versions:
            with self._lock:
                if (collection, version) in self._ok:
                    continue
            stored = collection_version(store, collection, version)
            if stored != version:
                raise StoreError(
                    f"collection '{collection}' was built with the keyword encoder {stored}; "
                    f"this write uses {version}: run `ragserve ingest --reindex` to rebuild it "
                    f"with the new encoder"
                )
            with self._lock:
                self._ok.add((collection, version))

    def forget(self) -> None:
        """Check again on the next writes (after an alias switch or a deletion)."""
        with self._lock:
            self._ok.clear()


class SparseEncoders:
    """``collection_encoder`` per collection, cached for ``ttl_s`` seconds."""

    def __init__(self, preferred: SparseEncoder, store: VectorStore, ttl_s: float = 60.0) -> None:
        self.preferred = preferred
        self._store = store
        self._ttl_s = ttl_s
        self._known: dict[str, tuple[SparseEncoder, float]] = {}
        self._lock = threading.Lock()

    def cached(self, collection: str) -> SparseEncoder | None:
        """The cached encoder of ``collection`` if still fresh (no store call)."""
        with self._lock:
            entry = self._known.get(collection)
        if entry is None or time.monotonic() - entry[1] > self._ttl_s:
            return None
        return entry[0]

    def resolve(self, collection: str) -> SparseEncoder:
        """Ask the store (blocking: run it in a worker thread) and cache the answer."""
        encoder = collection_encoder(self._store, collection, self.preferred)
        with self._lock:
            self._known[collection] = (encoder, time.monotonic())
        return encoder

    def forget(self, collection: str) -> None:
        with self._lock:
            self._known.pop(collection, None)
