"""What only the embedded stores promise: one process per folder, durability, live switches."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from retrieval.edge_store import EdgeStore
from retrieval.factory import open_store
from retrieval.types import PointRecord, SearchMode, StoreLocked
from tests.support.processes import REPO

DIM = 384


@pytest.mark.parametrize("backend", ["edge", "local"])
def test_a_second_opener_in_this_process_gets_store_locked(backend: str, tmp_path: Path) -> None:
    store = open_store(backend, path=str(tmp_path))  # type: ignore[arg-type]
    try:
        with pytest.raises(StoreLocked):
            open_store(backend, path=str(tmp_path))  # type: ignore[arg-type]
    finally:
        store.close()
    open_store(backend, path=str(tmp_path)).close()  # type: ignore[arg-type]  # free again


def test_another_process_gets_store_locked(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    try:
        code = textwrap.dedent(
            f"""
            from retrieval.edge_store import EdgeStore
            from retrieval.types import StoreLocked
            try:
                EdgeStore({str(tmp_path)!r})
            except StoreLocked as exc:
                print("locked:", exc)
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert out.stdout.startswith("locked:"), out.stdout + out.stderr
    finally:
        store.close()


def test_acknowledged_writes_survive_a_killed_process(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import os, signal, uuid
        from retrieval.edge_store import EdgeStore
        from retrieval.types import PointRecord, SparseVector
        store = EdgeStore({str(tmp_path)!r})
        store.ensure_collection("docs", 4)
        points = [
            PointRecord(str(uuid.uuid4()), [1.0, float(i), 0.0, 1.0], SparseVector([i], [1.0]),
                        {{"doc_id": f"d{{i}}", "doc_hash": "h"}})
            for i in range(50)
        ]
        store.upsert("docs", points)
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "acknowledged", out.stdout + out.stderr
    store = EdgeStore(tmp_path)
    try:
        assert store.count("docs") == 50
        assert store.list_collections() == ["docs"]
        assert len(store.document_hashes("docs")) == 50
    finally:
        store.close()


def test_searches_during_alias_switches_never_fail(
    tmp_path: Path, corpus: dict[str, PointRecord]
) -> None:
    store = EdgeStore(tmp_path)
    points = list(corpus.values())
    store.ensure_collection("docs", DIM)
    store.upsert("docs", points)
    errors: list[BaseException] = []
    counts: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                hits = store.search(
                    "docs",
                    dense=points[0].dense,
                    sparse=points[0].sparse,
                    mode=SearchMode.HYBRID,
                    top_k=10,
                )
                counts.add(len(hits))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(6):
            new = store.create_versioned("docs", DIM)
            store.upsert(new, points[: 2 + round_ % 2])
            store.switch_alias("docs", new)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert counts <= {len(points), 2, 3}
    assert store.count("docs") == 3
    assert len(list((tmp_path / "shards").iterdir())) == 1  # the old versions are gone
    store.close()
