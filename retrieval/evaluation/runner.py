"""Evaluate dense, sparse and hybrid retrieval on a BEIR dataset in a fresh collection.

Each corpus document becomes one point (title + text, BEIR's scoring unit), encoded by the
serving encoders: the embedder for the dense vector (it reads the first ``max_seq_length``
tokens, as in MTEB) and ``SparseEncoder`` for the keyword vector (the whole text). BM25's
length normalisation uses the corpus's own average document length unless told otherwise.
Every judged query then retrieves ``DEPTH`` documents per mode through ``VectorStore.search``,
the call the gateway's retriever makes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from retrieval.evaluation.beir import BeirDataset, CorpusDocument
from retrieval.evaluation.metrics import DEPTH, Run, evaluate
from retrieval.sparse import SparseEncoder, tokenize
from retrieval.types import PointRecord, SearchMode, SparseVector, VectorStore

_ID_NAMESPACE = uuid.UUID("5f1d3c8e-2b7a-4c61-9e0d-8a4b6c2f1e37")
INDEX_BATCH = 256  # documents per embed + upsert round

# (stage, done, total): "index" counts documents, a mode's name counts queries.
ProgressCallback = Callable[[str, int, int], None]


class Encoder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]: ...

    def embed_queries(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]: ...


@dataclass(frozen=True, slots=True)
class ModeResult:
    mode: str
    metrics: dict[str, float]
    search_s: float  # all queries, one at a time


@dataclass
class EvaluationReport:
    dataset: str
    documents: int
    queries: int
    embedding_model: str
    bm25: dict[str, float]  # the sparse encoder's k1, b and avgdl
    index_s: float = 0.0  # encoding and storing the corpus
    query_embed_s: float = 0.0
    results: list[ModeResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def average_length(corpus: Sequence[CorpusDocument]) -> float:
    """Mean keyword-token count of the corpus's passages (BM25's avgdl)."""
    return sum(len(tokenize(doc.passage)) for doc in corpus) / max(len(corpus), 1)


def evaluate_dataset(
    dataset: BeirDataset,
    store: VectorStore,
    embedder: Encoder,
    *,
    modes: Sequence[SearchMode] = tuple(SearchMode),
    sparse: SparseEncoder | None = None,
    on_progress: ProgressCallback | None = None,
) -> EvaluationReport:
    """Index ``dataset`` into a new collection of ``store``, search it per mode, score it.

    The collection is deleted afterwards. ``sparse`` defaults to BM25's usual k1=1.2,
    b=0.75 with the corpus's average length.
    """
    sparse = sparse or SparseEncoder(avgdl=max(average_length(dataset.corpus), 1.0))
    report = EvaluationReport(
        dataset=dataset.name,
        documents=len(dataset.corpus),
        queries=len(dataset.queries),
        embedding_model=embedder.name,
        bm25={"k1": sparse.k1, "b": sparse.b, "avgdl": round(sparse.avgdl, 2)},
    )
    collection = f"eval_{uuid.uuid4().hex[:12]}"
    store.ensure_collection(collection, embedder.dimension)
    try:
        started = time.perf_counter()
        index_corpus(store, collection, embedder, sparse, dataset.corpus, on_progress)
        report.index_s = time.perf_counter() - started

        query_ids = list(dataset.queries)
        texts = [dataset.queries[q] for q in query_ids]
        started = time.perf_counter()
        dense = embedder.embed_queries(texts) if _needs_dense(modes) else [None] * len(texts)
        report.query_embed_s = time.perf_counter() - started
        keywords = sparse.encode_queries(texts)
        for mode in modes:
            started = time.perf_counter()
            run = search_run(store, collection, mode, query_ids, dense, keywords, on_progress)
            elapsed = time.perf_counter() - started
            report.results.append(ModeResult(mode.value, evaluate(run, dataset.qrels), elapsed))
    finally:
        store.delete_collection(collection)
    return report


def index_corpus(
    store: VectorStore,
    collection: str,
    embedder: Encoder,
    sparse: SparseEncoder,
    corpus: Sequence[CorpusDocument],
    on_progress: ProgressCallback | None = None,
) -> None:
    """One point per document, id derived from the document id, ``doc_id`` in the payload."""
    # Length-sorted rounds keep the model's padding low (a round's batches pad to its longest).
    ordered = sorted(corpus, key=lambda doc: len(doc.passage))
    for start in range(0, len(ordered), INDEX_BATCH):
        batch = ordered[start : start + INDEX_BATCH]
        passages = [doc.passage for doc in batch]
        vectors = embedder.embed_documents(passages)
        store.upsert(collection, [
            PointRecord(id=str(uuid.uuid5(_ID_NAMESPACE, doc.doc_id)), dense=vector,
                        sparse=sparse.encode_document(passage),
                        payload={"doc_id": doc.doc_id, "title": doc.title})
            for doc, passage, vector in zip(batch, passages, vectors, strict=True)
        ])  # fmt: skip
        if on_progress:
            on_progress("index", start + len(batch), len(ordered))
    store.optimize(collection)


def search_run(
    store: VectorStore,
    collection: str,
    mode: SearchMode,
    query_ids: Sequence[str],
    dense: Sequence[list[float] | None],
    keywords: Sequence[SparseVector],
    on_progress: ProgressCallback | None = None,
) -> Run:
    """The best ``DEPTH`` documents of each query, as document id → score."""
    run: dict[str, dict[str, float]] = {}
    for n, (query_id, dense_q, sparse_q) in enumerate(zip(query_ids, dense, keywords, strict=True)):
        hits = store.search(
            collection,
            dense=dense_q if mode is not SearchMode.SPARSE else None,
            sparse=sparse_q if mode is not SearchMode.DENSE else None,
            mode=mode,
            top_k=DEPTH,
        )
        run[query_id] = {str(hit.payload["doc_id"]): hit.score for hit in hits}
        if on_progress:
            on_progress(mode.value, n + 1, len(query_ids))
    return run


def _needs_dense(modes: Sequence[SearchMode]) -> bool:
    return any(mode is not SearchMode.SPARSE for mode in modes)
