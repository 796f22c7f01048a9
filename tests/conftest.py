"""Session-wide real components: one vLLM server, one gateway process.

Set ``RAGSERVE_TEST_ENGINE_URL`` to reuse an engine you already run (a faster edit loop);
otherwise the session starts vLLM's CPU server once with the bundled model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from llm.launcher import EngineConfig, LocalEngine
from llm.model_prep import prepare_model
from tests.support.processes import REPO, free_port, gateway_process

MODEL_NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@contextmanager
def local_engine(log_path: Path) -> Iterator[LocalEngine]:
    """A vLLM CPU server of its own serving the bundled model, ready; stopped on exit."""
    model_dir = prepare_model(REPO / "data/models/SmolLM2-135M-Instruct")
    engine = LocalEngine(
        EngineConfig(model_dir=model_dir, served_model_name=MODEL_NAME, port=free_port()),
        log_path=log_path,
    )
    with engine:
        engine.wait_ready(timeout=420)
        yield engine


@pytest.fixture(scope="session")
def engine_url(artifacts_dir: Path) -> Iterator[str]:
    reuse = os.environ.get("RAGSERVE_TEST_ENGINE_URL")
    if reuse:
        yield reuse
        return
    with local_engine(artifacts_dir / "vllm.log") as engine:
        yield engine.config.url


SAMPLES = REPO / "ingest" / "samples"


def seed_store(path: Path) -> Path:
    """An embedded store at ``path`` holding the sample corpus in the collection 'docs'."""
    from ingest.pipeline import ingest_paths
    from ingest.targets import StoreTarget
    from retrieval.embedder import Embedder
    from retrieval.factory import open_store
    from retrieval.sparse import SparseEncoder

    store = open_store("edge", path=str(path))
    try:
        target = StoreTarget(store, Embedder.load(), SparseEncoder())
        # Named from the repo (ingest/samples/...), as `ragserve serve` names them.
        summary = ingest_paths([SAMPLES], target, collection="docs", base=REPO)
        assert summary.added == 4 and not summary.failed
    finally:
        store.close()
    return path


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_store(tmp_path_factory.mktemp("qdrant"))


@pytest.fixture(scope="session")
def gateway_url(engine_url: str, artifacts_dir: Path, seeded_store: Path) -> Iterator[str]:
    port = free_port()
    env = {
        "RAGSERVE_ENGINE_URLS": engine_url,
        "RAGSERVE_QDRANT_PATH": str(seeded_store),
        "RAGSERVE_PORT": str(port),
        # Tests share this gateway and some repeat deterministic requests to see what the
        # engine does: no answer cache here (test_answer_cache_engine.py runs its own).
        "RAGSERVE_ANSWER_CACHE": "false",
    }
    with gateway_process(env, artifacts_dir / "gateway.log", port=port) as url:
        yield url
