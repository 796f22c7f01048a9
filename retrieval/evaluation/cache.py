"""Corpus embeddings cached on disk, so repeated evaluations and sweeps encode a corpus once.

Encoding is nearly all of an evaluation's cost on a CPU (SciFact's 5,183 abstracts: minutes),
while a sweep over fusion or keyword settings never changes a dense vector. The cache key
hashes the model name, the backend, the model's input length and every passage in order, so
another model, backend, title policy or corpus can never be served stale vectors.

Layout: ``folder/<key>.npy`` (float32, one row per passage) beside ``<key>.json`` (what the
key was made of, for people). Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ENCODE_ROUND = 256  # passages per embed call (progress granularity)


def cache_key(embedder: Any, passages: Sequence[str]) -> str:
    """Hash of the model, its backend and input length, and the passages in order."""
    digest = hashlib.sha256()
    backend = getattr(embedder, "backend", "torch")
    length = getattr(embedder, "max_seq_length", "")
    digest.update(f"{embedder.name}\0{backend}\0{length}\0".encode())
    for passage in passages:
        digest.update(passage.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


class EmbeddingCache:
    """Document vectors by (model, backend, passages); ``folder=None`` disables caching."""

    def __init__(self, folder: str | os.PathLike[str] | None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.hits = 0
        self.misses = 0

    def documents(
        self,
        embedder: Any,
        passages: Sequence[str],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """The vectors of ``passages`` (rows in order), from disk or freshly encoded."""
        key = cache_key(embedder, passages)
        path = self.folder / f"{key}.npy" if self.folder else None
        if path is not None and path.is_file():
            vectors: np.ndarray = np.load(path)
            if vectors.shape[0] == len(passages):
                self.hits += 1
                if on_progress:
                    on_progress(len(passages), len(passages))
                return vectors
        self.misses += 1
        vectors = _encode(embedder, passages, on_progress)
        if path is not None:
            self._write(path, vectors, embedder, len(passages))
        return vectors

    def _write(self, path: Path, vectors: np.ndarray, embedder: Any, count: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as tmp:
            np.save(tmp, vectors)
        os.replace(tmp.name, path)
        about = {
            "model": embedder.name,
            "backend": getattr(embedder, "backend", "torch"),
            "max_seq_length": getattr(embedder, "max_seq_length", None),
            "passages": count,
        }
        path.with_suffix(".json").write_text(json.dumps(about, indent=1) + "\n")


def _encode(
    embedder: Any, passages: Sequence[str], on_progress: Callable[[int, int], None] | None
) -> np.ndarray:
    # length-sorted rounds keep padding low (a batch pads to its longest passage)
    order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
    out: np.ndarray | None = None
    for start in range(0, len(order), ENCODE_ROUND):
        rows = order[start : start + ENCODE_ROUND]
        vectors = np.asarray(embedder.embed_documents([passages[i] for i in rows]), np.float32)
        if out is None:
            out = np.empty((len(passages), vectors.shape[1]), dtype=np.float32)
        out[rows] = vectors
        if on_progress:
            on_progress(start + len(rows), len(passages))
    if out is None:
        return np.empty((0, 0), dtype=np.float32)
    return out
