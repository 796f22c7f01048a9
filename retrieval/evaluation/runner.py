"""Evaluate dense, sparse and hybrid retrieval on a BEIR dataset in a fresh collection.

Each corpus document becomes one point (title + text, BEIR's scoring unit), encoded by the
serving encoders: the embedder for the dense vector (it reads the first ``max_seq_length``
tokens, as in MTEB) and ``SparseEncoder`` for the keyword vector (the whole text). BM25's
length normalisation uses the corpus's own average document length unless told otherwise.
Every judged query then retrieves ``DEPTH`` documents per mode through ``VectorStore.search``,
the call the gateway's retriever makes.

``title`` says which side reads the document's title: ``both`` (BEIR's ``title + " " + text``),
``dense``, ``sparse`` or ``none``. Dense vectors go through an ``EmbeddingCache`` (a corpus
is encoded once per model, backend and text), so re-runs and ``sweep.py`` cost searches only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from retrieval._search import DEFAULT_FUSION, Fusion
from retrieval.evaluation.beir import BeirDataset, CorpusDocument
from retrieval.evaluation.cache import EmbeddingCache
from retrieval.evaluation.metrics import DEPTH, Run, evaluate
from retrieval.sparse import DEFAULT_STEMMER, SparseEncoder, tokenize
from retrieval.types import PointRecord, SearchMode, SparseVector, VectorStore

Title = Literal["both", "dense", "sparse", "none"]
TITLES: tuple[Title, ...] = ("both", "dense", "sparse", "none")

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
    split: str = "test"
    embedding_backend: str = "torch"
    sparse_encoder: str = ""  # the keyword encoder's version
    title: str = "both"
    fusion: dict[str, Any] = field(default_factory=dict)
    index_s: float = 0.0  # encoding (or reading cached vectors) and storing the corpus
    query_embed_s: float = 0.0
    results: list[ModeResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def average_length(corpus: Sequence[CorpusDocument], title: Title = "both") -> float:
    """Mean keyword-token count of the corpus's keyword passages (BM25's avgdl)."""
    texts = passages(corpus, title, "sparse")
    return sum(len(tokenize(text)) for text in texts) / max(len(corpus), 1)


def passages(corpus: Sequence[CorpusDocument], title: Title, side: str) -> list[str]:
    """What ``side`` (dense or sparse) reads of each document under the ``title`` policy."""
    with_title = title == "both" or title == side
    return [doc.passage if with_title else doc.text for doc in corpus]


def evaluate_dataset(
    dataset: BeirDataset,
    store: VectorStore,
    embedder: Encoder,
    *,
    modes: Sequence[SearchMode] = tuple(SearchMode),
    sparse: SparseEncoder | None = None,
    on_progress: ProgressCallback | None = None,
    cache: EmbeddingCache | None = None,
    title: Title = "both",
    fusion: Fusion = DEFAULT_FUSION,
    split: str = "test",
    stemmer: str | None = DEFAULT_STEMMER,
) -> EvaluationReport:
    """Index ``dataset`` into a new collection of ``store``, search it per mode, score it.

    The collection is deleted afterwards. ``sparse`` defaults to BM25's usual k1=1.2,
    b=0.75 with the corpus's average length and ``stemmer``.
    """
    avgdl = max(average_length(dataset.corpus, title), 1.0)
    sparse = sparse or SparseEncoder(avgdl=avgdl, stemmer=stemmer)
    report = new_report(dataset, embedder, sparse, title, fusion, split)
    collection = f"eval_{uuid.uuid4().hex[:12]}"
    store.ensure_collection(collection, embedder.dimension)
    try:
        started = time.perf_counter()
        build_index(store, collection, dataset.corpus, embedder, sparse, title, cache, on_progress)
        report.index_s = time.perf_counter() - started
        queries = QuerySet.encode(dataset, embedder, sparse, need_dense=_needs_dense(modes))
        report.query_embed_s = queries.embed_s
        for mode in modes:
            report.results.append(score_mode(store, collection, dataset, queries, mode, fusion,
                                             on_progress))  # fmt: skip
    finally:
        store.delete_collection(collection)
    return report


def new_report(
    dataset: BeirDataset,
    embedder: Encoder,
    sparse: SparseEncoder,
    title: Title,
    fusion: Fusion,
    split: str,
) -> EvaluationReport:
    return EvaluationReport(
        dataset=dataset.name,
        documents=len(dataset.corpus),
        queries=len(dataset.queries),
        embedding_model=embedder.name,
        bm25={"k1": sparse.k1, "b": sparse.b, "avgdl": round(sparse.avgdl, 2)},
        split=split,
        embedding_backend=str(getattr(embedder, "backend", "torch")),
        sparse_encoder=sparse.version,
        title=title,
        fusion=asdict(fusion),
    )


@dataclass(frozen=True, slots=True)
class QuerySet:
    """The judged queries of a split, encoded once for every mode and setting."""

    ids: list[str]
    dense: list[list[float] | None]
    keywords: list[SparseVector]
    embed_s: float

    @classmethod
    def encode(
        cls, dataset: BeirDataset, embedder: Encoder, sparse: SparseEncoder, *, need_dense: bool
    ) -> QuerySet:
        ids = list(dataset.queries)
        texts = [dataset.queries[q] for q in ids]
        started = time.perf_counter()
        dense: list[list[float] | None] = (
            list(embedder.embed_queries(texts)) if need_dense else [None] * len(texts)
        )
        return cls(ids, dense, sparse.encode_queries(texts), time.perf_counter() - started)

    def with_keywords(self, dataset: BeirDataset, sparse: SparseEncoder) -> QuerySet:
        """The same dense vectors, keywords re-encoded by ``sparse``."""
        texts = [dataset.queries[q] for q in self.ids]
        return QuerySet(self.ids, self.dense, sparse.encode_queries(texts), self.embed_s)


def score_mode(
    store: VectorStore,
    collection: str,
    dataset: BeirDataset,
    queries: QuerySet,
    mode: SearchMode,
    fusion: Fusion = DEFAULT_FUSION,
    on_progress: ProgressCallback | None = None,
) -> ModeResult:
    """Search every query in ``mode`` and score the run."""
    started = time.perf_counter()
    run = search_run(store, collection, mode, queries.ids, queries.dense, queries.keywords,
                     on_progress, fusion=fusion)  # fmt: skip
    elapsed = time.perf_counter() - started
    return ModeResult(mode.value, evaluate(run, dataset.qrels), elapsed)


def build_index(
    store: VectorStore,
    collection: str,
    corpus: Sequence[CorpusDocument],
    embedder: Encoder,
    sparse: SparseEncoder,
    title: Title = "both",
    cache: EmbeddingCache | None = None,
    on_progress: ProgressCallback | None = None,
) -> None:
    """Encode (or read cached vectors of) ``corpus`` under ``title`` and store one point each."""
    cache = cache or EmbeddingCache(None)

    def encoded(done: int, total: int) -> None:
        if on_progress:
            on_progress("index", done, total)

    dense = cache.documents(embedder, passages(corpus, title, "dense"), encoded)
    keywords = passages(corpus, title, "sparse")
    for start in range(0, len(corpus), INDEX_BATCH):
        rows = range(start, min(start + INDEX_BATCH, len(corpus)))
        store.upsert(collection, [
            PointRecord(id=str(uuid.uuid5(_ID_NAMESPACE, corpus[i].doc_id)),
                        dense=dense[i].tolist(), sparse=sparse.encode_document(keywords[i]),
                        payload={"doc_id": corpus[i].doc_id, "title": corpus[i].title})
            for i in rows
        ])  # fmt: skip
    store.optimize(collection)


def index_corpus(
    store: VectorStore,
    collection: str,
    embedder: Encoder,
    sparse: SparseEncoder,
    corpus: Sequence[CorpusDocument],
    on_progress: ProgressCallback | None = None,
) -> None:
    """One point per document (title + text), id derived from the document id."""
    build_index(store, collection, corpus, embedder, sparse, "both", None, on_progress)


def search_run(
    store: VectorStore,
    collection: str,
    mode: SearchMode,
    query_ids: Sequence[str],
    dense: Sequence[list[float] | None],
    keywords: Sequence[SparseVector],
    on_progress: ProgressCallback | None = None,
    *,
    fusion: Fusion = DEFAULT_FUSION,
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
            fusion=fusion,
        )
        run[query_id] = {str(hit.payload["doc_id"]): hit.score for hit in hits}
        if on_progress:
            on_progress(mode.value, n + 1, len(query_ids))
    return run


def _needs_dense(modes: Sequence[SearchMode]) -> bool:
    return any(mode is not SearchMode.SPARSE for mode in modes)
