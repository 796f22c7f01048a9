"""Retrieval benchmark: query-path latency (embed + hybrid search) and micro-batching gain.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/retrieval_bench.py [--sizes 10000 100000]
        [--backend onnx] [--compare torch onnx onnx-int8]

Bulk chunks get synthetic texts (for their keyword vectors) and random unit dense vectors
(embedding 100k chunks on a CPU would take longer than the benchmark is about); every query
goes through the real embedder. Prints figures; it is not a test.

``--compare`` first times one warm query embedding per backend, the backends taking turns
query by query (so the machine's load drifts over all of them alike), and prints p50/p95 and
the speed-up over torch; ``--backend`` picks the embedder for the rest of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable

import numpy as np

from retrieval.batching import QueryBatcher
from retrieval.embedder import BACKENDS, Embedder
from retrieval.factory import open_store
from retrieval.sparse import SparseEncoder
from retrieval.types import PointRecord, SearchMode, VectorStore

COLLECTION = "bench"
TOPICS = [
    "password reset",
    "invoice refund",
    "network outage",
    "disk quota",
    "login failure",
    "calendar sync",
    "backup schedule",
    "api rate limit",
    "email bounce",
    "printer driver",
]
QUERIES = [
    "how do I reset my password",
    "why was my invoice refunded twice",
    "the network keeps dropping every hour",
    "what happens when my disk quota is full",
    "error E-4012 when logging in",
    "calendar does not sync on my phone",
    "how often are backups taken",
    "what is the api rate limit per minute",
    "emails to customers bounce back",
    "install the printer driver on linux",
]


def synthetic_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)]
    texts = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        filler = " ".join(rng.choices(words, k=40))
        texts.append(f"{topic}: case {i} code E-{rng.randint(1000, 9999)} {filler}")
    return texts


def percentiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {statistics.median(samples):6.2f} ms  p95 {q[94]:6.2f} ms"


def fill(store: VectorStore, n: int, dim: int, sparse: SparseEncoder) -> float:
    rng = np.random.default_rng(7)
    texts = synthetic_texts(n)
    started = time.perf_counter()
    store.ensure_collection(COLLECTION, dim)
    for start in range(0, n, 2000):
        chunk = texts[start : start + 2000]
        vectors = rng.standard_normal((len(chunk), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        points = [
            PointRecord(
                id=str(uuid.UUID(int=start + i + 1)),
                dense=vector.tolist(),
                sparse=sparse.encode_document(text),
                payload={"text": text, "source": f"doc{(start + i) // 20}.md", "doc_id": "d"},
            )
            for i, (text, vector) in enumerate(zip(chunk, vectors, strict=True))
        ]
        store.upsert(COLLECTION, points)
    optimize: Callable[[str], None] | None = getattr(store, "optimize", None)
    if optimize is not None:
        optimize(COLLECTION)
    return time.perf_counter() - started


def query_path(store: VectorStore, embedder: Embedder, sparse: SparseEncoder, rounds: int) -> None:
    embed_ms, search_ms, total_ms = [], [], []
    for i in range(rounds + 5):
        query = QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}")
        t0 = time.perf_counter()
        dense = embedder.embed_queries([query])[0]
        sparse_q = sparse.encode_query(query)
        t1 = time.perf_counter()
        hits = store.search(
            COLLECTION, dense=dense, sparse=sparse_q, mode=SearchMode.HYBRID, top_k=5
        )
        t2 = time.perf_counter()
        assert hits
        if i >= 5:  # warm-up
            embed_ms.append((t1 - t0) * 1000)
            search_ms.append((t2 - t1) * 1000)
            total_ms.append((t2 - t0) * 1000)
    print(f"    embed       {percentiles(embed_ms)}")
    print(f"    search      {percentiles(search_ms)}")
    print(f"    embed+search {percentiles(total_ms)}")


def bench_store(backend: str, n: int, embedder: Embedder, sparse: SparseEncoder) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(backend, path=folder)  # type: ignore[arg-type]
        try:
            seconds = fill(store, n, embedder.dimension, sparse)
            print(f"{backend} store, {n:,} chunks (filled in {seconds:.1f} s), hybrid top-5:")
            query_path(store, embedder, sparse, rounds=100)
        finally:
            store.close()


def bench_backends(backends: list[str], cache_dir: str, rounds: int) -> None:
    embedders = {b: Embedder.load(backend=b, cache_dir=cache_dir) for b in backends}  # type: ignore[arg-type]
    samples: dict[str, list[float]] = {b: [] for b in backends}
    for i in range(rounds + 10):
        query = f"{QUERIES[i % len(QUERIES)]} {i}"
        turn = backends[i % len(backends) :] + backends[: i % len(backends)]
        for backend in turn:
            started = time.perf_counter()
            embedders[backend].embed_queries([query])
            if i >= 10:  # warm-up
                samples[backend].append((time.perf_counter() - started) * 1000)
    print(f"one query embedding, warm, {rounds} queries per backend (interleaved):")
    base = statistics.median(samples["torch"]) if "torch" in samples else None
    for backend in backends:
        p50 = statistics.median(samples[backend])
        gain = f"  {base / p50:.2f}x torch" if base and backend != "torch" else ""
        print(f"    {backend:10s} {percentiles(samples[backend])}{gain}")


async def bench_batching(embedder: Embedder, callers: int, rounds: int) -> None:
    texts = [f"{QUERIES[i % len(QUERIES)]} variant {i}" for i in range(callers * rounds)]
    started = time.perf_counter()
    for text in texts:
        await asyncio.to_thread(embedder.embed_queries, [text])
    one_by_one = len(texts) / (time.perf_counter() - started)

    sizes: list[int] = []
    batcher = QueryBatcher(embedder, on_batch=sizes.append)
    started = time.perf_counter()
    for r in range(rounds):
        batch = texts[r * callers : (r + 1) * callers]
        await asyncio.gather(*(batcher.embed(t) for t in batch))
    batched = len(texts) / (time.perf_counter() - started)
    print(f"query embedding, {callers} concurrent callers x {rounds} rounds:")
    print(f"    one by one   {one_by_one:7.1f} queries/s")
    print(
        f"    micro-batched {batched:7.1f} queries/s  ({batched / one_by_one:.1f}x, "
        f"{len(sizes)} forward passes, mean batch {statistics.mean(sizes):.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--local-size", type=int, default=10_000)
    parser.add_argument("--backend", default="torch", choices=list(BACKENDS))
    parser.add_argument("--compare", nargs="*", default=[], choices=list(BACKENDS))
    parser.add_argument("--compare-rounds", type=int, default=200)
    parser.add_argument("--compare-only", action="store_true", help="stop after --compare")
    parser.add_argument("--cache-dir", default="data/models/embeddings")
    args = parser.parse_args()
    if args.compare:
        bench_backends(args.compare, args.cache_dir, args.compare_rounds)
        if args.compare_only:
            return
    embedder = Embedder.load(backend=args.backend, cache_dir=args.cache_dir)
    sparse = SparseEncoder()
    embedder.embed_queries(["warm up"])
    asyncio.run(bench_batching(embedder, callers=32, rounds=8))
    for n in args.sizes:
        bench_store("edge", n, embedder, sparse)
    if args.local_size:
        bench_store("local", args.local_size, embedder, sparse)


if __name__ == "__main__":
    main()
