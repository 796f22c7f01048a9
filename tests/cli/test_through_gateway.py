"""`ragserve ingest/search/collections` while a gateway holds the embedded store.

The embedded engine admits one process per folder; the CLI must go through the running
gateway's HTTP API instead of failing on the lock. No engine is needed for this.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.run import ragserve

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process


def test_ingest_search_and_collections_go_through_the_gateway(
    held_store: tuple[str, Path], tmp_path: Path
) -> None:
    url, store = held_store
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zephyr.md").write_text("# Zephyr\n\nThe Zephyr-9 rotor was designed by Oona Falk.\n")
    (docs / "notes.txt").write_text("Unrelated notes about lunch.\n")

    first = ragserve(store, "ingest", str(docs), "--collection", "mine", "--tag", "team=ops")
    assert first.returncode == 0, first.stderr
    assert f"held by the gateway at {url}; going through it" in " ".join(first.stderr.split())
    assert "added 2" in first.stderr and "lock" not in first.stderr.lower()

    again = ragserve(store, "ingest", str(docs), "--collection", "mine")
    assert again.returncode == 0 and "skipped 2" in again.stderr

    found = ragserve(store, "search", "Who designed the Zephyr-9 rotor?", "--collection", "mine",
                     "--top-k", "1", "--filter", '{"tags": ["team=ops"]}')  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "Oona" in found.stdout

    listed = ragserve(store, "collections", "list")
    assert "mine\t2" in listed.stdout

    # An upload under a name inside the folder is not the CLI's to prune.
    uploaded_id = str((docs / "uploaded.txt").resolve())
    form = {"collection": "mine", "doc_id": uploaded_id}
    note = {"file": ("uploaded.txt", b"An uploaded note.")}
    httpx.post(f"{url}/v1/documents", data=form, files=note).raise_for_status()
    (docs / "notes.txt").unlink()
    pruned = ragserve(store, "ingest", str(docs), "--collection", "mine", "--prune")
    assert pruned.returncode == 0 and "deleted 1" in pruned.stderr
    documents = httpx.get(f"{url}/v1/documents", params={"collection": "mine"}).json()["data"]
    assert sorted(d["id"] for d in documents) == [uploaded_id, str((docs / "zephyr.md").resolve())]


def test_a_failed_file_makes_the_cli_exit_non_zero(held_store: tuple[str, Path], tmp_path: Path
                                                   ) -> None:  # fmt: skip
    _, store = held_store
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not a pdf at all")
    (tmp_path / "fine.txt").write_text("A fine document.")
    result = ragserve(store, "ingest", str(tmp_path), "--collection", "mixed")
    assert result.returncode == 1
    assert (
        "broken.pdf" in result.stderr and "added 1" in result.stderr and "failed 1" in result.stderr
    )


def test_without_a_gateway_the_cli_opens_the_store_itself(tmp_path: Path) -> None:
    store = tmp_path / "store"
    refused = ragserve(store, "search", "anything")
    assert refused.returncode == 1 and f"No store at {store}" in " ".join(refused.stderr.split())
    assert not store.exists(), "a search must not leave an empty store behind"
    first = ragserve(store, "ingest", "ingest/samples")
    assert first.returncode == 0, first.stderr
    assert f"No store at {store} yet: creating it" in " ".join(first.stderr.split())
    assert "going through" not in first.stderr and "added 4" in first.stderr
    found = ragserve(store, "search", "What does error HX-0451 mean?", "--top-k", "1")
    assert found.returncode == 0 and "HX-0451" in found.stdout
    assert "docs\t" in ragserve(store, "collections", "list").stdout
    assert ragserve(store, "collections", "delete", "docs", "--yes").returncode == 0
    assert ragserve(store, "collections", "list").stdout.strip() == ""
