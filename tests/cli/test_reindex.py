"""`ragserve ingest --reindex`: a fresh collection, then an atomic alias switch.

Through a real gateway process that holds the embedded store, while another client keeps
searching the collection; and with the store opened by the CLI itself. No engine needed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.cli.run import ragserve

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process

QUESTION = "Who designed the Zephyr-9 rotor?"


def folder(root: Path, name: str, files: dict[str, str | bytes]) -> Path:
    path = root / name
    path.mkdir()
    for file_name, content in files.items():
        target = path / file_name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return path


@dataclass
class Searcher:
    """Searches one collection in a loop, recording every outcome with its time."""

    url: str
    collection: str
    outcomes: list[tuple[float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = {"query": QUESTION, "collection": self.collection, "top_k": 1}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{self.url}/v1/search", json=body)
                except httpx.HTTPError:
                    self.outcomes.append((time.monotonic(), 0, ""))  # counted as a failure
                    continue
                results = response.json().get("results") or [{"text": ""}]
                self.outcomes.append((time.monotonic(), response.status_code, results[0]["text"]))

    def wait_for(self, count: int, timeout: float = 120) -> None:
        """Until ``count`` searches have answered (polled, with a deadline)."""
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < count:
            assert time.monotonic() < deadline, f"{len(self.outcomes)} of {count} searches"
            time.sleep(0.05)

    def __enter__(self) -> Searcher:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_queries_never_fail_while_the_gateway_switches_to_a_reindexed_collection(
    held_store: tuple[str, Path], tmp_path: Path
) -> None:
    url, store = held_store
    old = folder(tmp_path, "v1", {"rotor.md": "The Zephyr-9 rotor was designed by Oona Falk.\n"})
    new = folder(tmp_path, "v2", {
        "rotor.md": "The Zephyr-9 rotor was designed by Ilse Marrow in 2031.\n",
        "pump.txt": "The Boreal pump runs at 40 litres a minute.\n",
    })  # fmt: skip
    assert ragserve(store, "ingest", str(old), "--collection", "live").returncode == 0

    with Searcher(url, "live") as searcher:
        searcher.wait_for(3)
        began = time.monotonic()
        result = ragserve(store, "ingest", str(new), "--collection", "live", "--reindex")
        ended = time.monotonic()
        searcher.wait_for(len(searcher.outcomes) + 3)  # a few searches after the switch too

    assert result.returncode == 0, result.stderr
    assert "now points at the re-indexed collection" in result.stderr
    during = [o for o in searcher.outcomes if began <= o[0] <= ended]
    assert during, "the searches must overlap the re-index"
    failures = [o for o in searcher.outcomes if o[1] != 200 or not o[2]]
    assert not failures, f"{len(failures)} of {len(searcher.outcomes)} searches failed"
    answers = [o[2] for o in searcher.outcomes]
    assert "Oona" in answers[0] and "Ilse" in answers[-1]
    switched_at = next(i for i, a in enumerate(answers) if "Ilse" in a)
    assert all("Ilse" in a for a in answers[switched_at:]), "the switch happens once"
    # The old collection is gone; only the alias is listed, holding the new documents.
    listed = httpx.get(f"{url}/v1/collections", timeout=30).json()["data"]
    assert [(c["name"], c["points"]) for c in listed if c["name"].startswith("live")] == [
        ("live", 2)
    ]


def test_a_failed_reindex_leaves_the_live_collection_alone(
    held_store: tuple[str, Path], tmp_path: Path
) -> None:
    url, store = held_store
    good = folder(tmp_path, "good", {"rotor.md": "The Zephyr-9 rotor was designed by Oona Falk.\n"})
    assert ragserve(store, "ingest", str(good), "--collection", "steady").returncode == 0
    bad = folder(tmp_path, "bad", {"fine.txt": "A fine document.", "broken.pdf": b"%PDF-1.4 junk"})

    result = ragserve(store, "ingest", str(bad), "--collection", "steady", "--reindex")

    assert result.returncode == 1
    assert "re-index aborted" in result.stderr and "broken.pdf" in result.stderr
    found = httpx.post(f"{url}/v1/search", json={"query": QUESTION, "collection": "steady"},
                       timeout=30).json()["results"]  # fmt: skip
    assert "Oona" in found[0]["text"]
    names = [c["name"] for c in httpx.get(f"{url}/v1/collections", timeout=30).json()["data"]]
    assert [n for n in names if n.startswith("steady")] == ["steady"], "the partial one is dropped"


def test_a_switch_only_accepts_a_version_of_the_same_alias(held_store: tuple[str, Path]) -> None:
    url, _ = held_store
    version = httpx.post(f"{url}/v1/collections/alpha/versions", timeout=30).json()
    assert version["alias"] == "alpha" and version["id"].startswith("alpha_")
    wrong = httpx.post(f"{url}/v1/collections/beta/switch", json={"collection": version["id"]},
                       timeout=30)  # fmt: skip
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "collection"
    never_made = {"collection": "alpha_20990101T000000_deadbeef"}
    missing = httpx.post(f"{url}/v1/collections/alpha/switch", json=never_made, timeout=30)
    assert missing.status_code == 404
    bad_name = httpx.post(f"{url}/v1/collections/no%20spaces/versions", timeout=30)
    assert bad_name.status_code == 400
    httpx.delete(f"{url}/v1/collections/{version['id']}", timeout=30)


def test_reindex_with_the_store_opened_by_the_cli(tmp_path: Path) -> None:
    store = tmp_path / "store"
    old = folder(tmp_path, "v1", {"rotor.md": "The Zephyr-9 rotor was designed by Oona Falk.\n"})
    new = folder(tmp_path, "v2", {"rotor.md": "The Zephyr-9 rotor was designed by Ilse Marrow.\n"})
    assert ragserve(store, "ingest", str(old), "--collection", "local").returncode == 0

    result = ragserve(store, "ingest", str(new), "--collection", "local", "--reindex")

    assert result.returncode == 0, result.stderr
    assert "going through it" not in result.stderr  # the CLI held the store itself
    found = ragserve(store, "search", QUESTION, "--collection", "local", "--top-k", "1")
    assert "Ilse" in found.stdout and "Oona" not in found.stdout
    listed = ragserve(store, "collections", "list").stdout
    assert listed.strip().splitlines() == ["local\t1"]
    both = ragserve(store, "ingest", str(new), "--collection", "local", "--reindex", "--prune")
    assert both.returncode == 2 and "--prune" in both.stderr
