"""Ingest throughput: the whole pipeline vs raw ``SentenceTransformer.encode`` of its chunks.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ingest_bench.py [--docs 40] [--paragraphs 12]
        [--backends torch onnx onnx-int8]

Writes a synthetic Markdown corpus to a temporary folder, ingests it into a fresh Edge store
(load, chunk, embed, sparse-encode, upsert, optimise) and encodes the very same chunk texts
with the bare model (batch 64, the pipeline's model batch too). Each round runs both back to
back and the median of the per-round ratios pipeline/raw is the figure (background load on a
shared machine hits both sides of a round alike); the goal is ≥ 0.8.

With ``--backends``, each round also ingests the same corpus once per embedding backend
(``RAGSERVE_EMBEDDING_BACKEND``), back to back in a rotating order, and the median of the
per-round speed-ups over torch is printed (the goal for ONNX Runtime: ≥ 2x).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ingest.chunker import Chunker
from ingest.files import discover, doc_id_for
from ingest.indexer import DEFAULT_BATCH_SIZE, EMBED_BATCH_SIZE
from ingest.loaders import load_path
from ingest.pipeline import ingest_paths
from ingest.targets import StoreTarget
from retrieval.embedder import BACKENDS, Embedder
from retrieval.factory import open_store
from retrieval.sparse import SparseEncoder

WORDS = (
    "gateway collector archive sensor reading buffer uplink station mast gauge pipeline "
    "alert threshold retention policy device group operator calibration firmware release "
    "network latency throughput segment index query shard replica quorum snapshot tide "
    "weather coastal harbour fjord northern winter storm pressure humidity temperature"
).split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
    words.insert(rng.randint(0, len(words)), f"{rng.randint(1, 99_999):,}")
    return " ".join(words).capitalize() + "."


def write_corpus(root: Path, docs: int, paragraphs: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for d in range(docs):
        parts = [f"# Report {d}"]
        for p in range(paragraphs):
            if p % 4 == 0:
                parts.append(f"## Part {p // 4}")
            parts.append(" ".join(sentence(rng) for _ in range(rng.randint(3, 7))))
        (root / f"report-{d:03d}.md").write_text("\n\n".join(parts) + "\n")


def raw_encode_rate(embedder: Embedder, texts: list[str], batch_size: int) -> float:
    model = embedder._model  # the bare SentenceTransformer
    began = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                 convert_to_numpy=True, show_progress_bar=False)  # fmt: skip
    return len(texts) / (time.perf_counter() - began)


def pipeline_rate(corpus: Path, folder: Path, embedder: Embedder, batch_size: int) -> float:
    store = open_store("edge", path=str(folder))
    try:
        target = StoreTarget(store, embedder, SparseEncoder(), batch_size=batch_size)
        summary = ingest_paths([corpus], target, collection="bench", base=corpus)
    finally:
        store.close()
    assert not summary.failed, summary.line()
    return summary.chunks_per_s


def compare_backends(
    corpus: Path, tmp: Path, embedders: dict[str, Embedder], rounds: int, batch_size: int
) -> None:
    """Pipeline chunks/s per backend, interleaved per round so load drift hits all alike."""
    rates: dict[str, list[float]] = {name: [] for name in embedders}
    names = list(embedders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            folder = tmp / f"store-{name}-{r}"
            rates[name].append(pipeline_rate(corpus, folder, embedders[name], batch_size))
        print(f"round {r + 1}: " + "   ".join(f"{n} {rates[n][-1]:6.1f} chunks/s" for n in names))
    base = rates.get("torch")
    for name in names:
        line = f"{name:10s} pipeline median {statistics.median(rates[name]):6.1f} chunks/s"
        if base is not None and name != "torch":
            gain = statistics.median(o / t for o, t in zip(rates[name], base, strict=True))
            line += f"   {gain:.2f}x torch (median of per-round ratios)"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--paragraphs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="pipeline chunks per embed+upsert round")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", nargs="*", default=[], choices=list(BACKENDS),
                        help="compare pipeline chunks/s per embedding backend")  # fmt: skip
    parser.add_argument("--cache-dir", default="data/models/embeddings",
                        help="where exported ONNX graphs are cached")  # fmt: skip
    args = parser.parse_args()

    embedder = Embedder.load()
    embedder.embed_documents(["warm-up"] * 8)
    others = {b: Embedder.load(backend=b, cache_dir=args.cache_dir) for b in args.backends}
    for other in others.values():
        other.embed_documents(["warm-up"] * 8)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        write_corpus(corpus, args.docs, args.paragraphs)
        window = embedder.max_seq_length - 2
        chunker = Chunker(embedder.tokenizer, max_tokens=min(256, window))
        texts = [
            c.text
            for path in discover([corpus])
            for c in chunker.chunk(load_path(path, doc_id=doc_id_for(path, corpus)))
        ]
        tokens = embedder.tokenizer(texts, add_special_tokens=False)["input_ids"]
        print(f"corpus: {args.docs} files, {len(texts)} chunks, "
              f"{statistics.mean(len(t) for t in tokens):.0f} tokens/chunk on average")  # fmt: skip

        raw_rates, pipe_rates = [], []
        for r in range(args.rounds):
            raw_rates.append(raw_encode_rate(embedder, texts, EMBED_BATCH_SIZE))
            store = open_store("edge", path=str(Path(tmp) / f"store-{r}"))
            try:
                target = StoreTarget(store, embedder, SparseEncoder(), batch_size=args.batch_size)
                summary = ingest_paths([corpus], target, collection="bench", base=corpus)
            finally:
                store.close()
            assert summary.chunks == len(texts) and not summary.failed, summary.line()
            pipe_rates.append(summary.chunks_per_s)
            print(f"round {r + 1}: raw encode {raw_rates[-1]:6.1f} chunks/s   "
                  f"pipeline {pipe_rates[-1]:6.1f} chunks/s   ({summary.line()})")  # fmt: skip
        if others:
            compare_backends(corpus, Path(tmp), others, args.rounds, args.batch_size)
        raw, pipe = statistics.median(raw_rates), statistics.median(pipe_rates)
        ratio = statistics.median(p / r for p, r in zip(pipe_rates, raw_rates, strict=True))
        print(f"median: raw {raw:.1f} chunks/s, pipeline {pipe:.1f} chunks/s, "
              f"ratio {ratio:.2f} (goal ≥ 0.8)")  # fmt: skip


if __name__ == "__main__":
    main()
