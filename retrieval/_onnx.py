"""The sentence-transformers model as an ONNX Runtime graph, exported offline from its own weights.

sentence-transformers' ``backend="onnx"`` needs optimum-onnx, whose 0.1.0 release does not
import against the transformers version vLLM pins here (``is_offline_mode`` is gone), and it
downloads pre-exported graphs from the hub. So the graph is exported here with
``torch.onnx.export`` from the loaded model: the transformer, then the model's own mean pooling
over the attention mask and L2 normalisation inside the graph, so one session call returns the
final vectors. Tokenisation stays sentence-transformers' own (``preprocess``), so inputs are
identical. ``int8`` applies ONNX Runtime's dynamic quantisation (weights int8, activations
quantised per batch) to the exported graph.

Files are cached under ``cache_dir/<key>/`` where the key hashes the weights, the torch and
ONNX Runtime versions and the variant; an export is written to a temporary folder and renamed
into place, so concurrent processes never read half a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("ragserve.retrieval")

OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class UnsupportedModel(ValueError):
    """The model's pipeline is not transformer + mean pooling (+ normalise): use torch."""


def check_exportable(st_model: Any) -> None:
    """Raise ``UnsupportedModel`` unless the pipeline is what the exported graph computes."""
    modules = list(st_model)
    names = [type(m).__name__ for m in modules]
    if names[:2] != ["Transformer", "Pooling"] or any(n != "Normalize" for n in names[2:]):
        raise UnsupportedModel(f"ONNX export supports Transformer+Pooling(+Normalize), not {names}")
    pooling = modules[1].get_config_dict()
    if pooling.get("pooling_mode", "mean") != "mean" and not pooling.get(
        "pooling_mode_mean_tokens"
    ):
        raise UnsupportedModel(f"ONNX export supports mean pooling only, not {pooling}")


def cache_key(st_model: Any, variant: str) -> str:
    """Hash of the weights and of everything that shapes the exported graph."""
    import onnxruntime
    import torch

    digest = hashlib.sha256(
        f"{variant}|{OPSET}|{torch.__version__}|{onnxruntime.__version__}".encode()
    )
    for name, tensor in sorted(st_model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def export(st_model: Any, cache_dir: Path, quantize: bool) -> Path:
    """The cached ``model.onnx`` for ``st_model`` (exporting it first if missing)."""
    check_exportable(st_model)
    variant = "int8pc" if quantize else "fp32"
    target = Path(cache_dir) / f"{variant}-{cache_key(st_model, variant)}"
    path = target / "model.onnx"
    if path.is_file():
        return path
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir))
    work.chmod(0o755)  # mkdtemp makes it private; the cache is shared by whoever runs ragserve
    try:
        fp32 = work / "fp32.onnx"
        _export_fp32(st_model, fp32)
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # int8 weights per output channel, MatMuls only: per-tensor scales (the default)
            # took the minimum cosine to torch's vectors down to 0.90 on SciFact abstracts,
            # per channel keeps it at 0.99; the embedding lookup stays float
            quantize_dynamic(fp32, work / "model.onnx", weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], per_channel=True)  # fmt: skip
            fp32.unlink()
        else:
            fp32.rename(work / "model.onnx")
        try:
            os.rename(work, target)
        except OSError:
            if not path.is_file():  # not another process winning the race: a real failure
                raise
        log.info("exported %s embedding graph to %s", variant, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _export_fp32(st_model: Any, path: Path) -> None:
    import torch

    transformer = st_model[0].auto_model

    class Pooled(torch.nn.Module):
        """Transformer, then sentence-transformers' mean pooling and normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            mean = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    sample = st_model.preprocess(["an example sentence to trace", "another"])
    args = tuple(sample[name] for name in _INPUTS)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in _INPUTS}
    with torch.inference_mode():
        torch.onnx.export(
            Pooled().eval(),
            args,
            str(path),
            input_names=list(_INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes={**dynamic, "sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency
        )


class OnnxRunner:
    """Runs the exported graph on tokenised batches (sentence-transformers' tokenisation)."""

    def __init__(self, st_model: Any, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between runs: on a small box the spinning threads would take the
        # cores from vLLM and the event loop (and made torch in the same process ~20x slower)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._st_model = st_model
        self._wanted = [i.name for i in self._session.get_inputs()]
        self.path = path

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Normalised vectors of ``texts``, in order."""
        # longest first, like sentence-transformers: a batch pads to its longest text
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: np.ndarray | None = None
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            features = self._st_model.preprocess([texts[i] for i in rows])
            feeds = {name: features[name].numpy().astype(np.int64) for name in self._wanted}
            (vectors,) = self._session.run(["sentence_embedding"], feeds)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out
