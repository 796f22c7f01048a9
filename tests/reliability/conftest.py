"""Fixtures of the reliability tests: private copies of the sample corpus, fuzzing gateways.

The session-wide gateway (``gateway_url``) serves other tests from a store they rely on;
tests here that write (uploads, deletes) or break things get their own copy of the corpus.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import seed_store
from tests.support.processes import free_port, gateway_process


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed embedded store holding the samples in 'docs': copy it, never open it."""
    return seed_store(tmp_path_factory.mktemp("reliability-corpus"))


@pytest.fixture
def corpus_copy(sample_corpus: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the sample corpus for one test."""
    return Path(shutil.copytree(sample_corpus, tmp_path / "qdrant"))


@pytest.fixture(scope="module")
def own_gateway_url(
    engine_url: str,
    sample_corpus: Path,
    artifacts_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A gateway process of this module's own, on the shared engine and a corpus copy."""
    store = shutil.copytree(sample_corpus, tmp_path_factory.mktemp("own-gateway") / "qdrant")
    port = free_port()
    env = {
        "RAGSERVE_ENGINE_URLS": engine_url,
        "RAGSERVE_QDRANT_PATH": str(store),
        "RAGSERVE_PORT": str(port),
    }
    with gateway_process(env, artifacts_dir / "reliability-gateway.log", port=port) as url:
        yield url
