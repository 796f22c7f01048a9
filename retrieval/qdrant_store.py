"""The store over qdrant-client: a Qdrant server, or qdrant-client's local mode on a folder.

Each collection has the named dense vector ``dense`` (cosine) and the sparse vector ``sparse``
with ``Modifier.IDF``. ``ensure_collection("docs")`` creates ``docs_<time>_<id>`` behind the
real alias ``docs`` (local mode keeps aliases too), so a re-index can switch atomically.
Hybrid search is one Query API call: a dense and a sparse prefetch fused by ``Fusion``.
Payload indexes are created on the server only (local mode ignores them).

``score_threshold``: dense mode, cosine similarity; sparse mode, the BM25 x IDF score; hybrid
mode, the cosine floor of the dense prefetch (keyword hits are kept whatever their BM25 score)
while returned scores are fusion scores.

Local mode is not thread-safe, so its calls are serialised; server calls are not.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from retrieval._filters import AnyOf, Equals, Range, parse_filter
from retrieval._search import (
    DEFAULT_FUSION,
    KEYWORD_INDEXES,
    RRF_K,
    Fusion,
    check_name,
    check_query,
)
from retrieval.encoders import WriteGuard, stamped_payload
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
)

_UPSERT_BATCH = 256
_SCROLL_PAGE = 1024


def to_qdrant_filter(flt: PayloadFilter | None) -> models.Filter | None:
    """Translate a ``PayloadFilter`` into a qdrant-client filter (None for no filter)."""
    conditions: list[models.Condition] = []
    for cond in parse_filter(flt):
        if isinstance(cond, Equals):
            match = models.MatchValue(value=cond.value)
            conditions.append(models.FieldCondition(key=cond.key, match=match))
        elif isinstance(cond, AnyOf):
            any_of = models.MatchAny(any=cond.values)
            conditions.append(models.FieldCondition(key=cond.key, match=any_of))
        elif isinstance(cond, Range):
            bounds: dict[str, Any] = dict(cond.bounds)
            rng = models.DatetimeRange(**bounds) if cond.is_datetime else models.Range(**bounds)
            conditions.append(models.FieldCondition(key=cond.key, range=rng))
    return models.Filter(must=conditions) if conditions else None


class QdrantStore:
    """``VectorStore`` over a ``QdrantClient`` (server or local mode)."""

    def __init__(self, client: QdrantClient, *, rrf_k: int | None = RRF_K) -> None:
        """``rrf_k=None`` uses the plain ``Fusion.RRF`` (servers older than 1.16 lack ``k``)."""
        self._client = client
        from qdrant_client.local.qdrant_local import QdrantLocal

        self.is_local = isinstance(getattr(client, "_client", None), QdrantLocal)
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.is_local else contextlib.nullcontext()
        )
        self._rrf_k = rrf_k
        self._encoders = WriteGuard()

    # -- collections and aliases ---------------------------------------------------------

    def ensure_collection(self, name: str, dense_size: int) -> None:
        """Create the collection (behind an alias of that name) if missing."""
        check_name(name)
        with self._calls(name):
            physical = self._resolve(name)
            if physical is not None:
                self._check_size(name, physical, dense_size)
                return
            physical = self._create_physical(name, dense_size)
            self._client.update_collection_aliases(
                change_aliases_operations=[_create(name, physical)]
            )

    def collection_exists(self, name: str) -> bool:
        with self._calls(name):
            return self._resolve(name) is not None

    def list_collections(self) -> list[str]:
        """Aliases, plus collections no alias points at (e.g. a re-index underway)."""
        with self._calls(""):
            aliases = self._aliases()
            behind_alias = set(aliases.values())
            names = [c.name for c in self._client.get_collections().collections]
            return sorted([*aliases, *(n for n in names if n not in behind_alias)])

    def delete_collection(self, name: str) -> None:
        """Drop an alias and the collection behind it, or a collection; no-op if absent."""
        self._encoders.forget()
        with self._calls(name):
            aliases = self._aliases()
            physical = aliases.get(name, name)
            if name in aliases:
                self._client.update_collection_aliases(change_aliases_operations=[_delete(name)])
            others = [a for a, c in aliases.items() if c == physical and a != name]
            if others:
                self._client.update_collection_aliases(
                    change_aliases_operations=[_delete(a) for a in others]
                )
            if self._client.collection_exists(physical):
                self._client.delete_collection(physical)

    def create_versioned(self, alias: str, dense_size: int) -> str:
        """Create a fresh physical collection for a re-index; return its name."""
        check_name(alias)
        with self._calls(alias):
            return self._create_physical(alias, dense_size)

    def switch_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` atomically; drop what it pointed at."""
        self._encoders.forget()
        check_name(alias)
        with self._calls(collection):
            if not self._client.collection_exists(collection):
                raise CollectionNotFound(collection)
            aliases = self._aliases()
            old = aliases.get(alias)
            operations: list[Any] = [_delete(alias)] if old is not None else []
            operations.append(_create(alias, collection))
            # one request: the server applies it atomically, readers never miss the alias
            self._client.update_collection_aliases(change_aliases_operations=operations)
            if old is not None and old != collection:
                still_used = [a for a, c in aliases.items() if c == old and a != alias]
                if not still_used:
                    self._client.delete_collection(old)

    # -- points ----------------------------------------------------------------------------

    def count(self, name: str, flt: PayloadFilter | None = None) -> int:
        count_filter = to_qdrant_filter(flt)
        with self._calls(name):
            return self._client.count(name, count_filter=count_filter, exact=True).count

    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        self._encoders.check(self, name, points)
        structs = [_point(p) for p in points]
        with self._calls(name):
            for start in range(0, len(structs), _UPSERT_BATCH):
                self._client.upsert(name, points=structs[start : start + _UPSERT_BATCH], wait=True)

    def delete(self, name: str, flt: PayloadFilter) -> None:
        """Delete every point whose payload matches ``flt`` (an empty filter is refused)."""
        selector = to_qdrant_filter(flt)
        if selector is None:
            raise ValueError("delete needs a non-empty filter; use delete_collection to drop all")
        with self._calls(name):
            self._client.delete(
                name, points_selector=models.FilterSelector(filter=selector), wait=True
            )

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
        query_filter = to_qdrant_filter(flt)
        sparse_q = None
        if sparse is not None and sparse.indices:
            sparse_q = models.SparseVector(indices=list(sparse.indices), values=list(sparse.values))
        args: dict[str, Any] = {"query_filter": query_filter, "limit": top_k, "with_payload": True}
        if mode is SearchMode.DENSE:
            assert dense is not None
            args.update(query=list(dense), using=DENSE_VECTOR, score_threshold=score_threshold)
        elif mode is SearchMode.SPARSE:
            if sparse_q is None:  # nothing but stopwords: no keyword can match
                return self._check_exists(name)
            args.update(query=sparse_q, using=SPARSE_VECTOR, score_threshold=score_threshold)
        else:
            limit = fusion.limit(top_k)
            prefetch = []
            if dense is not None:
                prefetch.append(
                    models.Prefetch(
                        query=list(dense),
                        using=DENSE_VECTOR,
                        limit=limit,
                        score_threshold=score_threshold,
                    )
                )
            if sparse_q is not None:
                prefetch.append(models.Prefetch(query=sparse_q, using=SPARSE_VECTOR, limit=limit))
            if not prefetch:
                return self._check_exists(name)
            weights = fusion.weights(dense is not None, sparse_q is not None)
            args.update(prefetch=prefetch, query=self._fusion(fusion, weights))
        with self._calls(name):
            points = self._client.query_points(name, **args).points
        return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def document_hashes(self, name: str) -> dict[str, str]:
        """Map each stored ``doc_id`` to its ``doc_hash`` (for incremental ingest)."""
        hashes: dict[str, str] = {}
        offset: Any = None
        with self._calls(name):
            while True:
                records, offset = self._client.scroll(
                    name, limit=_SCROLL_PAGE, offset=offset, with_payload=["doc_id", "doc_hash"]
                )
                for record in records:
                    payload = record.payload or {}
                    if "doc_id" in payload and "doc_hash" in payload:
                        hashes[str(payload["doc_id"])] = str(payload["doc_hash"])
                if offset is None:
                    return hashes

    def optimize(self, name: str) -> None:
        """Nothing to do: the server optimises in the background, local mode has no indexes."""

    def close(self) -> None:
        with self._calls(""):
            self._client.close()

    # -- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _calls(self, name: str) -> Iterator[None]:
        """Serialise local-mode calls; map client errors to the contract's exceptions."""
        with self._lock:
            try:
                yield
            except StoreError:
                raise
            except UnexpectedResponse as exc:
                if exc.status_code == 404:
                    raise CollectionNotFound(name) from exc
                raise StoreError(f"qdrant: {exc}") from exc
            except (ApiException, httpx.HTTPError, OSError, RuntimeError) as exc:
                raise StoreError(f"qdrant: {exc}") from exc
            except ValueError as exc:
                if self.is_local and "not found" in str(exc):
                    raise CollectionNotFound(name) from exc
                raise StoreError(f"qdrant: {exc}") from exc
            except Exception as exc:
                # grpc errors and anything else the transport raises
                raise StoreError(f"qdrant: {type(exc).__name__}: {exc}") from exc

    def _fusion(
        self, fusion: Fusion, weights: list[float] | None
    ) -> models.RrfQuery | models.FusionQuery:
        if fusion.method == "dbsf":
            return models.FusionQuery(fusion=models.Fusion.DBSF)
        if self._rrf_k is None:  # servers before 1.16: plain RRF, no k, no weights
            return models.FusionQuery(fusion=models.Fusion.RRF)
        # the store's rrf_k is the default; a fusion asking for another k wins
        k = fusion.k if fusion.k != DEFAULT_FUSION.k else self._rrf_k
        return models.RrfQuery(rrf=models.Rrf(k=k, weights=weights))

    def _aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self._client.get_aliases().aliases}

    def _resolve(self, name: str) -> str | None:
        aliases = self._aliases()
        if name in aliases:
            return aliases[name]
        return name if self._client.collection_exists(name) else None

    def _check_exists(self, name: str) -> list[SearchHit]:
        if not self.collection_exists(name):
            raise CollectionNotFound(name)
        return []

    def _check_size(self, name: str, physical: str, dense_size: int) -> None:
        vectors = self._client.get_collection(physical).config.params.vectors
        params = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
        if params is not None and params.size != dense_size:
            raise StoreError(
                f"collection '{name}' holds {params.size}-d vectors, not {dense_size}-d: "
                "re-index it for the new embedding model"
            )

    def _create_physical(self, alias: str, dense_size: int) -> str:
        physical = f"{alias}_{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"
        self._client.create_collection(
            physical,
            vectors_config={
                DENSE_VECTOR: models.VectorParams(size=dense_size, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={
                SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
            },
        )
        if not self.is_local:
            for field_name in KEYWORD_INDEXES:
                self._client.create_payload_index(
                    physical, field_name, models.PayloadSchemaType.KEYWORD, wait=True
                )
        return physical


def _create(alias: str, collection: str) -> models.CreateAliasOperation:
    return models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
    )


def _delete(alias: str) -> models.DeleteAliasOperation:
    return models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))


def _point(point: PointRecord) -> models.PointStruct:
    vector: dict[str, Any] = {DENSE_VECTOR: list(point.dense)}
    if point.sparse.indices:
        vector[SPARSE_VECTOR] = models.SparseVector(
            indices=list(point.sparse.indices), values=list(point.sparse.values)
        )
    return models.PointStruct(id=point.id, vector=vector, payload=stamped_payload(point))
