"""``ragserve serve`` refuses an open gateway on a non-loopback address before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.run import ragserve_in

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process


def test_serve_on_every_address_without_keys_refuses_before_anything_starts(
    tmp_path: Path,
) -> None:
    env = {"RAGSERVE_DATA_DIR": str(tmp_path / "data"), "RAGSERVE_API_KEYS": "[]"}
    result = ragserve_in(tmp_path, env, "serve", "--host", "0.0.0.0",
                         "--engine-url", "http://127.0.0.1:9")  # fmt: skip
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "refusing to serve 0.0.0.0 with no API keys" in message
    assert "RAGSERVE_ALLOW_UNAUTHENTICATED=true" in message
    assert not (tmp_path / "data").exists(), "no store, no sample ingest, no engine"
