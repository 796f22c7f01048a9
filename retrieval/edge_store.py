"""The embedded default store: Qdrant Edge (Qdrant's engine in-process) on a folder.

Layout of ``path``::

    edge.lock            held (flock) while a process has the store open
    catalog.json         {"aliases": {alias: physical}, "collections": {physical: {...}}}
    shards/<physical>/   one Edge shard per physical collection

Edge has no collections or aliases of its own, so they are kept in ``catalog.json``, replaced
atomically (``os.replace``). ``ensure_collection("docs")`` creates ``docs_<time>_<id>`` behind
the alias ``docs``; a re-index builds a ``create_versioned`` collection and ``switch_alias``
flips the alias: a search that already holds the old shard finishes on it, later ones see the
new one, and ``switch_alias`` waits for such searches to finish before it closes and deletes
the old shard.

Edge has no background optimizer: ``optimize(name)`` builds the HNSW index (the ingest should
call it after a bulk load; ``switch_alias`` does it for the new collection). Every write is
flushed before it returns, so a killed process loses nothing acknowledged.
Edge admits one process per folder: a second one gets ``StoreLocked``.

``score_threshold``: dense mode, cosine similarity; sparse mode, the BM25 x IDF score; hybrid
mode, the cosine floor of the dense branch (keyword hits are kept whatever their BM25 score, as
their scores have no fixed scale) while returned scores are fusion scores (see ``Fusion``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import qdrant_edge as qe

from retrieval._edge_convert import edge_point, query_request, to_edge_filter
from retrieval._search import (
    DEFAULT_FUSION,
    KEYWORD_INDEXES,
    Fusion,
    check_name,
    check_query,
)
from retrieval.encoders import WriteGuard
from retrieval.types import (
    DENSE_VECTOR,
    SPARSE_VECTOR,
    CollectionNotFound,
    PayloadFilter,
    PointRecord,
    SearchHit,
    SearchMode,
    SparseVector,
    StoreError,
    StoreLocked,
)

_SCROLL_PAGE = 1024


class _Shard:
    """An open Edge shard and how many calls are using it right now."""

    def __init__(self, physical: str, shard: qe.EdgeShard) -> None:
        self.physical = physical
        self.shard = shard
        self.users = 0
        self.write_lock = threading.Lock()


class EdgeStore:
    """``VectorStore`` over Qdrant Edge shards in one folder (one process at a time)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._root = Path(path)
        self._root.mkdir(parents=True, exist_ok=True)
        (self._root / "shards").mkdir(exist_ok=True)
        self._lock_file = _lock_folder(self._root / "edge.lock")
        self._cond = threading.Condition()
        self._shards: dict[str, _Shard] = {}
        self._closed = False
        self._encoders = WriteGuard()
        try:
            catalog = json.loads((self._root / "catalog.json").read_text())
        except FileNotFoundError:
            catalog = {}
        except (OSError, ValueError) as exc:
            self._unlock()
            raise StoreError(f"cannot read {self._root / 'catalog.json'}: {exc}") from exc
        self._aliases: dict[str, str] = dict(catalog.get("aliases", {}))
        self._collections: dict[str, dict[str, Any]] = dict(catalog.get("collections", {}))

    # -- collections and aliases ---------------------------------------------------------

    def ensure_collection(self, name: str, dense_size: int) -> None:
        """Create the collection (behind an alias of that name) if missing."""
        check_name(name)
        with self._cond:
            physical = self._aliases.get(name, name)
            if physical in self._collections:
                self._check_size(name, physical, dense_size)
                return
            physical = self._create_physical(name, dense_size)
            self._aliases[name] = physical
            self._save_catalog()

    def collection_exists(self, name: str) -> bool:
        with self._cond:
            return self._aliases.get(name, name) in self._collections

    def list_collections(self) -> list[str]:
        """Aliases, plus physical collections no alias points at (e.g. a re-index underway)."""
        with self._cond:
            behind_alias = set(self._aliases.values())
            orphans = [c for c in self._collections if c not in behind_alias]
            return sorted([*self._aliases, *orphans])

    def delete_collection(self, name: str) -> None:
        """Drop an alias and the collection behind it, or a physical collection; no-op if absent."""
        self._encoders.forget()
        with self._cond:
            physical = self._aliases.get(name, name)
            if physical not in self._collections:
                return
            self._aliases.pop(name, None)
            self._aliases = {a: c for a, c in self._aliases.items() if c != physical}
            del self._collections[physical]
            self._save_catalog()
            self._drop_shard(physical)

    def create_versioned(self, alias: str, dense_size: int) -> str:
        """Create a fresh physical collection for a re-index; return its name."""
        check_name(alias)
        with self._cond:
            physical = self._create_physical(alias, dense_size)
            self._save_catalog()
            return physical

    def switch_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` atomically; drop what it pointed at.

        ``collection`` is optimised first (HNSW built), so the switch never slows searches.
        """
        self._encoders.forget()
        check_name(alias)
        self.optimize(collection)
        with self._cond:
            if collection not in self._collections:
                raise CollectionNotFound(collection)
            if alias in self._collections:
                raise StoreError(f"'{alias}' is a collection, not an alias")
            old = self._aliases.get(alias)
            self._aliases[alias] = collection
            self._save_catalog()
            if old is not None and old != collection and old not in self._aliases.values():
                del self._collections[old]
                self._save_catalog()
                self._drop_shard(old)

    # -- points ----------------------------------------------------------------------------

    def count(self, name: str, flt: PayloadFilter | None = None) -> int:
        edge_filter = to_edge_filter(flt)
        with self._use(name) as shard:
            return int(_call(shard.shard.count, qe.CountRequest(exact=True, filter=edge_filter)))

    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        if not points:
            return
        self._encoders.check(self, name, points)
        edge_points = [edge_point(p) for p in points]
        with self._use(name) as shard, shard.write_lock:
            _call(shard.shard.update, qe.UpdateOperation.upsert_points(edge_points))
            _call(shard.shard.flush)

    def delete(self, name: str, flt: PayloadFilter) -> None:
        """Delete every point whose payload matches ``flt`` (an empty filter is refused)."""
        edge_filter = to_edge_filter(flt)
        if edge_filter is None:
            raise ValueError("delete needs a non-empty filter; use delete_collection to drop all")
        with self._use(name) as shard, shard.write_lock:
            _call(shard.shard.update, qe.UpdateOperation.delete_points_by_filter(edge_filter))
            _call(shard.shard.flush)

    def search(
        self,
        name: str,
        *,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        mode: SearchMode,
        top_k: int,
        flt: PayloadFilter | None = None,
        score_threshold: float | None = None,
        fusion: Fusion | None = None,
    ) -> list[SearchHit]:
        mode = SearchMode(mode)
        check_query(mode, dense, sparse, top_k)
        fusion = fusion or DEFAULT_FUSION
        edge_filter = to_edge_filter(flt)
        dense_q = qe.Query.Nearest(list(dense), using=DENSE_VECTOR) if dense is not None else None
        sparse_q = None
        if sparse is not None and sparse.indices:
            sparse_q = qe.Query.Nearest(
                qe.SparseVector(list(sparse.indices), list(sparse.values)), using=SPARSE_VECTOR
            )
        if mode is SearchMode.DENSE:
            request = query_request(top_k, dense_q, edge_filter, score_threshold)
        elif mode is SearchMode.SPARSE:
            if sparse_q is None:  # nothing but stopwords: no keyword can match
                return self._check_exists(name)
            request = query_request(top_k, sparse_q, edge_filter, score_threshold)
        else:
            limit = fusion.limit(top_k)
            prefetches = []
            if dense_q is not None:
                prefetches.append(qe.Prefetch(limit, dense_q, score_threshold=score_threshold))
            if sparse_q is not None:
                prefetches.append(qe.Prefetch(limit, sparse_q))
            if not prefetches:
                return self._check_exists(name)
            fused: Any = (
                qe.Fusion.Dbsf()
                if fusion.method == "dbsf"
                else qe.Fusion.Rrf(
                    k=fusion.k, weights=fusion.weights(dense_q is not None, sparse_q is not None)
                )
            )
            request = qe.QueryRequest(
                limit=top_k,
                query=fused,
                prefetches=prefetches,
                filter=edge_filter,
                with_payload=True,
            )
        with self._use(name) as shard:
            points = _call(shard.shard.query, request)
        return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def document_hashes(self, name: str) -> dict[str, str]:
        """Map each stored ``doc_id`` to its ``doc_hash`` (for incremental ingest)."""
        hashes: dict[str, str] = {}
        offset: Any = None
        with self._use(name) as shard:
            while True:
                request = qe.ScrollRequest(
                    offset=offset, limit=_SCROLL_PAGE, with_payload=["doc_id", "doc_hash"]
                )
                records, offset = _call(shard.shard.scroll, request)
                for record in records:
                    payload = record.payload or {}
                    if "doc_id" in payload and "doc_hash" in payload:
                        hashes[str(payload["doc_id"])] = str(payload["doc_hash"])
                if offset is None:
                    return hashes

    def optimize(self, name: str) -> None:
        """Merge segments and build the HNSW index now: Edge has no background optimizer.

        Searches keep working meanwhile. Below ~10k points it changes little (a full scan is
        fast); at 100k it takes hybrid search from ~25 ms to ~4 ms. Call after a bulk ingest.
        """
        with self._use(name) as shard, shard.write_lock:
            _call(shard.shard.optimize)
            _call(shard.shard.flush)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            while any(s.users for s in self._shards.values()):
                self._cond.wait()
            for shard in self._shards.values():
                _close_quietly(shard.shard)
            self._shards.clear()
            self._unlock()

    # -- internals (callers hold self._cond where noted) -----------------------------------

    @contextmanager
    def _use(self, name: str) -> Iterator[_Shard]:
        """Resolve ``name`` and hold its shard open for the duration of one call."""
        with self._cond:
            if self._closed:
                raise StoreError("the store is closed")
            physical = self._aliases.get(name, name)
            if physical not in self._collections:
                raise CollectionNotFound(name)
            shard = self._shards.get(physical)
            if shard is None:
                shard = _Shard(physical, self._load(physical))
                self._shards[physical] = shard
            shard.users += 1
        try:
            yield shard
        finally:
            with self._cond:
                shard.users -= 1
                self._cond.notify_all()

    def _check_exists(self, name: str) -> list[SearchHit]:
        if not self.collection_exists(name):
            raise CollectionNotFound(name)
        return []

    def _check_size(self, name: str, physical: str, dense_size: int) -> None:
        stored = self._collections[physical].get("dense_size")
        if stored is not None and stored != dense_size:
            raise StoreError(
                f"collection '{name}' holds {stored}-d vectors, not {dense_size}-d: "
                "re-index it for the new embedding model"
            )

    def _create_physical(self, alias: str, dense_size: int) -> str:
        """Create a shard for a new physical collection (self._cond held)."""
        physical = f"{alias}_{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"
        config = qe.EdgeConfig(
            vectors={
                DENSE_VECTOR: qe.EdgeVectorParams(size=dense_size, distance=qe.Distance.Cosine)
            },
            sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        shard = _call(qe.EdgeShard.create, str(self._shard_dir(physical)), config)
        for field_name in KEYWORD_INDEXES:
            index = qe.UpdateOperation.create_field_index(field_name, qe.PayloadSchemaType.Keyword)
            _call(shard.update, index)
        _call(shard.flush)
        self._shards[physical] = _Shard(physical, shard)
        self._collections[physical] = {"dense_size": dense_size, "created": time.time()}
        return physical

    def _load(self, physical: str) -> qe.EdgeShard:
        shard: qe.EdgeShard = _call(qe.EdgeShard.load, str(self._shard_dir(physical)))
        return shard

    def _drop_shard(self, physical: str) -> None:
        """Close ``physical`` once no call uses it, then delete its files (self._cond held)."""
        shard = self._shards.get(physical)
        if shard is not None:
            while shard.users:
                self._cond.wait()
            del self._shards[physical]
            _close_quietly(shard.shard)
        shutil.rmtree(self._shard_dir(physical), ignore_errors=True)

    def _shard_dir(self, physical: str) -> Path:
        return self._root / "shards" / physical

    def _save_catalog(self) -> None:
        data = {"aliases": self._aliases, "collections": self._collections}
        target = self._root / "catalog.json"
        tmp = target.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def _unlock(self) -> None:
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


def _lock_folder(lock_path: Path) -> IO[str]:
    lock_file = open(lock_path, "a+")  # held open for the store's lifetime
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock_file.close()
        raise StoreLocked(
            f"the store at {lock_path.parent} is open in another process "
            "(Edge admits one process per folder): go through that process"
        ) from exc
    return lock_file


def _call(fn: Any, *args: Any) -> Any:
    """Run an Edge call, turning its errors into ``StoreError`` (``StoreLocked`` for the WAL)."""
    try:
        return fn(*args)
    except Exception as exc:
        if "WouldBlock" in str(exc):
            raise StoreLocked(f"an Edge shard is open elsewhere: {exc}") from exc
        raise StoreError(f"qdrant-edge: {exc}") from exc


def _close_quietly(shard: qe.EdgeShard) -> None:
    try:
        shard.close()
    except Exception:  # closing is best effort; the data is flushed already
        pass
