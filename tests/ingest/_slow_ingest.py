"""Run by ``test_durability`` in a subprocess: a deliberately slow ingest that reports progress.

``python -m tests.ingest._slow_ingest STORE CORPUS MAX_TOKENS`` prints the number of chunks
written after every file (two chunks per batch, a pause per batch), then ``done``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ingest.pipeline import ingest_paths
from ingest.report import Progress
from ingest.targets import StoreTarget
from retrieval.embedder import Embedder
from retrieval.factory import open_store
from retrieval.sparse import SparseEncoder

BATCH = 2
PAUSE_S = 0.05


class SlowEmbedder(Embedder):
    """The real embedder, with a pause per call so the parent can kill mid-run."""

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        time.sleep(PAUSE_S)
        return super().embed_documents(texts, batch_size)


def main(store_path: str, corpus: str, max_tokens: int) -> None:
    real = Embedder.load()
    embedder = SlowEmbedder(real._model, real.name)
    store = open_store("edge", path=store_path)
    print("started", flush=True)

    def report(event: Progress) -> None:
        print(event.chunks, flush=True)

    target = StoreTarget(store, embedder, SparseEncoder(), batch_size=BATCH,
                         max_tokens=max_tokens)  # fmt: skip
    summary = ingest_paths([corpus], target, collection="docs", base=corpus, progress=report)
    store.close()
    print("done", summary.line(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
