"""The ONNX Runtime backends: exported from the bundled weights, cached, equal to torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval._onnx import UnsupportedModel, check_exportable, export
from retrieval.embedder import Embedder

# The export is torch's TorchScript exporter, chosen on purpose (retrieval/_onnx.py: no
# onnxscript dependency); its deprecation notice and the tracer's advice are expected here.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning:"
        "retrieval._onnx"
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.onnx"),
    pytest.mark.filterwarnings("ignore::UserWarning:torch.onnx"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning:transformers"),
]

TEXTS = [
    "The cat sleeps on the sofa.",
    "Stock prices fell sharply after the announcement. " * 30,  # past the 256-token window
    "x",
    "  leading and trailing spaces  ",
    "Überprüfung der Größe, 0x80070005 and E-4012",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def onnx(cache_dir: Path) -> Embedder:
    return Embedder.load(backend="onnx", cache_dir=cache_dir)


def test_onnx_vectors_equal_torch_vectors(embedder: Embedder, onnx: Embedder) -> None:
    assert onnx.backend == "onnx" and embedder.backend == "torch"
    for embed in ("embed_documents", "embed_queries"):
        ours = np.array(getattr(onnx, embed)(TEXTS))
        theirs = np.array(getattr(embedder, embed)(TEXTS))
        cosine = (ours * theirs).sum(axis=1)
        assert cosine.min() > 0.99999, cosine
        assert np.abs(ours - theirs).max() < 1e-4
    assert onnx.dimension == 384 and onnx.embed_queries([]) == []


def test_the_export_is_cached_and_reused(onnx: Embedder, cache_dir: Path) -> None:
    (graph,) = cache_dir.glob("fp32-*/model.onnx")
    before = graph.stat().st_mtime_ns
    assert export(onnx._model, cache_dir, quantize=False) == graph  # found, not re-exported
    assert graph.stat().st_mtime_ns == before
    assert list(cache_dir.glob("fp32-*/model.onnx")) == [graph]
    assert not list(cache_dir.glob(".export-*"))  # no half-written folders left behind


def test_int8_is_normalised_and_close_but_not_equal(embedder: Embedder, cache_dir: Path) -> None:
    int8 = Embedder.load(backend="onnx-int8", cache_dir=cache_dir)
    assert int8.backend == "onnx-int8"
    ours = np.array(int8.embed_documents(TEXTS))
    theirs = np.array(embedder.embed_documents(TEXTS))
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    assert (ours * theirs).sum(axis=1).min() > 0.8  # why int8 is measured before it is offered


def test_unknown_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="backend"):
        Embedder.load(backend="tensorrt")  # type: ignore[arg-type]


def test_pipelines_other_than_mean_pooling_are_not_exported(embedder: Embedder) -> None:
    check_exportable(embedder._model)  # the bundled model: Transformer, Pooling, Normalize
    with pytest.raises(UnsupportedModel):
        check_exportable([embedder._model[0]])  # no pooling: the graph would differ
