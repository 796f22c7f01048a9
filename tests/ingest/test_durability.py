"""Durability: an ingest killed with SIGKILL half-way, then re-run, ends exactly where an
uninterrupted run ends: the same points, no duplicates, no stale versions."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from ingest.targets import StoreTarget
from retrieval.embedder import Embedder
from retrieval.factory import open_store
from retrieval.sparse import SparseEncoder
from retrieval.types import VectorStore

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]
MAX_TOKENS = 48
TIMEOUT_S = 180


def write_corpus(root: Path, version: int) -> None:
    """Eight documents of several chunks each; ``version`` 2 rewrites every other one."""
    root.mkdir(exist_ok=True)
    for d in range(8):
        edited = version == 2 and d % 2 == 0
        paragraphs = 7 if edited else 5
        body = "\n\n".join(
            f"Document {d} paragraph {p}{' (revised)' if edited else ''}: the unit "
            f"U-{d}{p} holds {d * 100 + p} litres and reports to station S{p} every "
            f"{p + 2} minutes, unless the operator Mirela Quenby-{d} pauses it."
            for p in range(paragraphs)
        )
        (root / f"doc{d}.md").write_text(f"# Document {d}\n\n{body}\n")


def ingest(store: VectorStore, corpus: Path, embedder: Embedder) -> None:
    target = StoreTarget(store, embedder, SparseEncoder(), max_tokens=MAX_TOKENS)
    summary = ingest_paths([corpus], target, collection="docs", base=corpus)
    assert summary.failed == 0


def kill_midway(store_path: Path, corpus: Path, after_chunks: int) -> None:
    """Start the slow ingest in a subprocess and SIGKILL it once it has stored some chunks."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.ingest._slow_ingest", str(store_path), str(corpus),
         str(MAX_TOKENS)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while True:
            ready, _, _ = select.select(
                [child.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            assert ready, "the child ingest reported nothing in time"
            line = child.stdout.readline().strip()
            assert line and not line.startswith("done"), f"the child ended first: {line!r}"
            if line.isdigit() and int(line) >= after_chunks:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def assert_exact(store: VectorStore, reference: VectorStore) -> None:
    assert store.count("docs") == reference.count("docs")
    hashes = store.document_hashes("docs")
    assert hashes == reference.document_hashes("docs")
    for doc_id, doc_hash in hashes.items():
        every = store.count("docs", {"doc_id": doc_id})
        assert every == store.count("docs", {"doc_id": doc_id, "doc_hash": doc_hash})


def test_an_ingest_killed_half_way_reruns_to_the_exact_uninterrupted_count(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, version=1)
    killed_path = tmp_path / "killed"
    reference = open_store("edge", path=str(tmp_path / "reference"))
    try:
        ingest(reference, corpus, embedder)
        total = reference.count("docs")
        assert total >= 30
        kill_midway(killed_path, corpus, after_chunks=total // 3)
        killed = open_store("edge", path=str(killed_path))
        try:
            assert 0 < killed.count("docs") < total
            ingest(killed, corpus, embedder)
            assert_exact(killed, reference)
        finally:
            killed.close()
    finally:
        reference.close()


class CrashingEmbedder:
    """Fault injection: the real embedder, dying on its ``crash_at``-th call."""

    def __init__(self, real: Embedder, crash_at: int) -> None:
        self.real, self.calls, self.crash_at = real, 0, crash_at
        self.dimension, self.tokenizer = real.dimension, real.tokenizer
        self.max_seq_length = real.max_seq_length

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt("crash on cue")
        return self.real.embed_documents(texts, batch_size)


def test_an_update_interrupted_part_way_reruns_to_the_exact_state(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, version=1)
    store = open_store("edge", path=str(tmp_path / "store"))
    reference = open_store("edge", path=str(tmp_path / "reference"))
    try:
        ingest(store, corpus, embedder)
        write_corpus(corpus, version=2)  # every other document rewritten, longer
        ingest(reference, corpus, embedder)
        crashing = CrashingEmbedder(embedder, crash_at=4)
        target = StoreTarget(store, crashing, SparseEncoder(), max_tokens=MAX_TOKENS,
                             batch_size=2)  # fmt: skip
        with pytest.raises(KeyboardInterrupt):
            ingest_paths([corpus], target, collection="docs", base=corpus)
        assert store.document_hashes("docs") != reference.document_hashes("docs")
        ingest(store, corpus, embedder)
        assert_exact(store, reference)
    finally:
        store.close()
        reference.close()
