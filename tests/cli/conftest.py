"""A gateway process holding an embedded store, once per test module (no engine needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port, gateway_process


@pytest.fixture(scope="module")
def held_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[tuple[str, Path]]:
    """(the gateway's URL, the store it holds)."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    store = tmp_path_factory.mktemp(f"{name}-held")
    port = free_port()
    env = {
        "RAGSERVE_ENGINE_URLS": f"http://127.0.0.1:{free_port()}",  # chats are not used here
        "RAGSERVE_QDRANT_PATH": str(store),
        "RAGSERVE_PORT": str(port),
    }
    log = artifacts_dir / f"gateway-{name}.log"
    # A generous start-up bound: the first start may build caches on a busy shared machine.
    with gateway_process(env, log, port=port, timeout=300) as url:
        yield url, store
