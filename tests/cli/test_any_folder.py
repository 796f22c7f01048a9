"""Every command finds the same stack from any folder, and says which one it uses.

The user sets one thing (``RAGSERVE_DATA_DIR``, as a shell profile would) and runs the real
``ragserve`` command from a scratch folder and from the repo: first on the embedded store
it opens itself, then while a gateway process holds that store. The answers are the same
each time, and nothing is created in the working folder. No engine is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.run import ragserve_in
from tests.support.processes import REPO, free_port, gateway_process

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process

QUESTION = "Who designed the Zephyr-9 rotor?"


def flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


def test_the_cli_answers_the_same_from_any_folder_on_the_store_and_through_a_gateway(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    data = tmp_path / "data"
    store = data / "qdrant"
    env = {"RAGSERVE_DATA_DIR": str(data)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rotor.md").write_text("# Rotor\n\nThe Zephyr-9 rotor was designed by Oona Falk.\n")

    # Nothing ingested yet: a search refuses, and leaves no store anywhere.
    refused = ragserve_in(elsewhere, env, "search", QUESTION)
    assert refused.returncode == 1 and f"No store at {store}" in flat(refused.stderr)
    assert not store.exists() and not (elsewhere / "data").exists()

    # A relative path from the scratch folder; the store is the one the settings name.
    ingested = ragserve_in(elsewhere, env, "ingest", "../docs")
    assert ingested.returncode == 0, ingested.stderr
    assert f"No store at {store} yet: creating it" in flat(ingested.stderr)
    assert "added 1" in ingested.stderr and list(elsewhere.iterdir()) == []

    def answers(cwd: Path, says: str) -> tuple[str, str]:
        found = ragserve_in(cwd, env, "search", QUESTION, "--top-k", "1")
        listed = ragserve_in(cwd, env, "collections", "list")
        assert found.returncode == 0 and listed.returncode == 0, found.stderr + listed.stderr
        assert says in flat(found.stderr) and says in flat(listed.stderr)
        return found.stdout, listed.stdout

    opened = f"Using the store at {store}."
    here = answers(elsewhere, opened)
    assert "Oona" in here[0] and here[1] == "docs\t1\n"
    assert answers(REPO, opened) == here

    # A gateway holds the store now: every command goes through it, from anywhere.
    port = free_port()
    gateway_env = {
        "RAGSERVE_QDRANT_PATH": str(store),  # start_gateway's scratch store otherwise
        "RAGSERVE_PORT": str(port),
        "RAGSERVE_ENGINE_URLS": f"http://127.0.0.1:{free_port()}",  # no chats here
    }
    log = artifacts_dir / "gateway-any-folder.log"
    with gateway_process(gateway_env, log, port=port, timeout=300) as url:
        held = f"The store at {store} is held by the gateway at {url}; going through it."
        for cwd in (elsewhere, REPO):
            assert answers(cwd, held) == here
        # The same file, named from another folder, is the same document.
        through = ragserve_in(REPO, env, "ingest", str(docs))
        assert through.returncode == 0 and held in flat(through.stderr), through.stderr
        assert "skipped 1" in through.stderr
    assert list(elsewhere.iterdir()) == []
