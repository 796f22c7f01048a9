"""The pipeline on real stores and the real embedder: idempotent, incremental, prunable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ingest.indexer import point_id
from ingest.pipeline import ingest_paths
from ingest.report import IngestSummary, Progress
from ingest.targets import FileOutcome, StoreTarget
from retrieval.embedder import Embedder
from retrieval.sparse import SparseEncoder
from retrieval.types import SearchMode, VectorStore

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "ingest" / "samples"

DOCS = {
    "alpha.md": "# Alpha\n\nThe alpha unit weighs 3 kg.\n\n## Power\n\nIt draws 9 W at 24 V.\n",
    "beta.txt": "Beta notes.\n\nThe beta unit ships with a 2 m cable.\n",
    "sub/gamma.html": "<title>Gamma</title><h1>Gamma</h1><p>Gamma runs on Tuesdays.</p>",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def run(
    store: VectorStore,
    embedder: Embedder,
    sparse: SparseEncoder,
    paths: list[Path],
    base: Path | None,
    *,
    max_tokens: int = 32,
    batch_size: int = 256,
    **kwargs: Any,
) -> IngestSummary:
    target = StoreTarget(store, embedder, sparse, max_tokens=max_tokens, batch_size=batch_size)
    return ingest_paths(paths, target, collection="docs", base=base, **kwargs)


def upload(store: VectorStore, embedder: Embedder, sparse: SparseEncoder, data: bytes,
           name: str) -> FileOutcome:  # fmt: skip
    target = StoreTarget(store, embedder, sparse)
    return target.upload("docs", data, name, doc_id=name, source=None, tags={})


def test_ingest_then_reingest_skips_everything(
    store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path
) -> None:
    first = run(store, embedder, sparse, [corpus], corpus, tags=["team=ops"])
    assert (first.added, first.updated, first.skipped, first.failed) == (3, 0, 0, 0)
    assert first.chunks == store.count("docs") > 3 and first.chunks_per_s > 0
    docs = set(store.document_hashes("docs"))
    assert docs == {"alpha.md", "beta.txt", "sub/gamma.html"}

    again = run(store, embedder, sparse, [corpus], corpus, tags=["team=ops"])
    assert (again.added, again.updated, again.skipped, again.chunks) == (0, 0, 3, 0)
    assert store.count("docs") == first.chunks


def test_without_a_base_documents_are_named_the_same_from_any_folder(
    edge_store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(corpus)
    first = run(edge_store, embedder, sparse, [Path(".")], None)
    assert first.added == 3
    assert set(edge_store.document_hashes("docs")) == {(corpus / name).as_posix() for name in DOCS}
    monkeypatch.chdir(tmp_path)
    again = run(edge_store, embedder, sparse, [corpus], None)
    assert (again.added, again.skipped) == (0, 3)
    (corpus / "beta.txt").unlink()
    monkeypatch.chdir("/")
    pruned = run(edge_store, embedder, sparse, [corpus], None, prune=True)
    assert pruned.deleted == 1 and len(edge_store.document_hashes("docs")) == 2


def test_payload_and_deterministic_ids(
    edge_store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path
) -> None:
    run(edge_store, embedder, sparse, [corpus], corpus, tags={"team": "ops"})
    query = embedder.embed_queries(["How many watts does it draw at 24 V?"])[0]
    hit = edge_store.search("docs", dense=query, sparse=None, mode=SearchMode.DENSE, top_k=1)[0]
    p = hit.payload
    assert p["doc_id"] == "alpha.md" and p["section"] == "Power" and p["title"] == "Alpha"
    assert "9 W" in p["text"] and p["tags"] == ["team=ops"] and p["meta"] == {"team": "ops"}
    assert p["chunk_count"] == edge_store.count("docs", {"doc_id": "alpha.md"})
    assert 0 <= p["chunk_index"] < p["chunk_count"] and p["page"] is None
    assert p["end"] - p["start"] == len(p["text"]) and p["ingested_at"] and p["doc_hash"]
    assert hit.id == point_id("alpha.md", p["chunk_index"], p["text"])


def test_a_changed_file_is_updated_without_stale_points(
    store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path
) -> None:
    run(store, embedder, sparse, [corpus], corpus)
    old = dict(store.document_hashes("docs"))
    (corpus / "alpha.md").write_text("# Alpha\n\nRewritten: the alpha unit now weighs 4 kg.\n")
    summary = run(store, embedder, sparse, [corpus], corpus)
    assert (summary.added, summary.updated, summary.skipped) == (0, 1, 2)
    assert store.count("docs", {"doc_id": "alpha.md", "doc_hash": old["alpha.md"]}) == 0
    new_hash = store.document_hashes("docs")["alpha.md"]
    assert new_hash != old["alpha.md"]
    assert store.count("docs", {"doc_id": "alpha.md"}) == store.count(
        "docs", {"doc_id": "alpha.md", "doc_hash": new_hash}
    )


def test_a_half_written_document_is_redone(
    edge_store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path
) -> None:
    first = run(edge_store, embedder, sparse, [corpus], corpus)
    edge_store.delete("docs", {"doc_id": "alpha.md", "chunk_index": 0})  # as if killed
    summary = run(edge_store, embedder, sparse, [corpus], corpus)
    assert (summary.updated, summary.skipped) == (1, 2)
    assert edge_store.count("docs") == first.chunks


def test_prune_deletes_documents_whose_files_are_gone_and_nothing_else(
    edge_store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path
) -> None:
    run(edge_store, embedder, sparse, [corpus], corpus)
    upload(edge_store, embedder, sparse, b"An uploaded note.", "upload.txt")
    (corpus / "sub" / "gamma.html").unlink()
    kept = run(edge_store, embedder, sparse, [corpus], corpus)  # no --prune: kept
    assert kept.deleted == 0 and edge_store.count("docs", {"doc_id": "sub/gamma.html"}) > 0
    pruned = run(edge_store, embedder, sparse, [corpus], corpus, prune=True, glob="*.md")
    assert pruned.deleted == 1
    stored = set(edge_store.document_hashes("docs"))
    assert stored == {"alpha.md", "beta.txt", "upload.txt"}  # filtered-out and uploads stay


def test_the_same_file_given_twice_makes_no_duplicates(
    store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path
) -> None:
    alpha = corpus / "alpha.md"
    dotted = Path(os.path.relpath(alpha))
    summary = run(store, embedder, sparse, [corpus, alpha, dotted, corpus], corpus)
    assert summary.added == 3
    single = store.count("docs")
    run(store, embedder, sparse, [alpha], corpus)
    assert store.count("docs") == single


def test_bad_files_are_failures_and_the_run_goes_on(
    edge_store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path
) -> None:
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 truncated garbage")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    (corpus / "empty.md").write_bytes(b"")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    summary = run(edge_store, embedder, sparse, [corpus], corpus)
    assert (summary.added, summary.failed) == (3, 2)
    reasons = dict(summary.failures)
    assert "PDF" in reasons[str(corpus / "broken.pdf")]
    assert "looks binary" in reasons[str(corpus / "binary.txt")]
    notes = " ".join(m for _, m in summary.warnings)
    assert "empty" in notes and "unsupported file type" in notes
    assert summary.skipped == 1  # the empty file
    assert edge_store.count("docs", {"doc_id": "empty.md"}) == 0


def test_an_upload_is_stored_once_and_a_bad_one_fails_without_raising(
    edge_store: VectorStore, embedder: Embedder, sparse: SparseEncoder
) -> None:
    added = upload(edge_store, embedder, sparse, b"# Note\n\nThe vault code is 7781.", "note.md")
    assert added.status == "added" and added.chunks == 1
    again = upload(edge_store, embedder, sparse, b"# Note\n\nThe vault code is 7781.", "note.md")
    assert again.status == "unchanged"
    assert set(edge_store.document_hashes("docs")) == {"note.md"}
    assert edge_store.count("docs", {"doc_id": "note.md", "origin": "upload"}) == 1
    broken = upload(edge_store, embedder, sparse, b"\x00\x00binary", "x.txt")
    assert broken.status == "failed" and broken.error and "binary" in broken.error
    empty = upload(edge_store, embedder, sparse, b"", "empty.md")
    assert empty.status == "empty" and "no text" in " ".join(empty.warnings)


def test_progress_events_count_files_and_chunks(
    edge_store: VectorStore, embedder: Embedder, sparse: SparseEncoder, corpus: Path
) -> None:
    events: list[Progress] = []
    summary = run(edge_store, embedder, sparse, [corpus], corpus, progress=events.append,
                  batch_size=2)  # fmt: skip
    assert events[-1].files_done == events[-1].files_total == 3
    assert events[-1].chunks == summary.chunks
    assert [e.chunks for e in events] == sorted(e.chunks for e in events)


QUESTIONS = [
    ("What is the name of the support team's mascot?", "Skarv", "pricing-and-support.pdf"),
    ("What does error HX-7731 mean?", "HX-7731", "troubleshooting.html"),
    ("How many events per second can one collector node ingest?", "48,000",
     "halcyon-overview.md"),
    ("Which release introduced delta compression?", "Kittiwake", "release-notes.txt"),
    ("Who founded Brightwater Instruments?", "Vasquez-Lindqvist", "halcyon-overview.md"),
]  # fmt: skip


def test_sample_corpus_questions_find_their_passage_in_the_top_3(
    edge_store: VectorStore, embedder: Embedder, sparse: SparseEncoder
) -> None:
    summary = run(edge_store, embedder, sparse, [SAMPLES], REPO, max_tokens=256)
    assert summary.failed == 0 and summary.added == len(list(SAMPLES.glob("*.*")))
    for question, fact, source in QUESTIONS:
        holders = edge_store.count("docs", {"source": f"ingest/samples/{source}"})
        assert holders >= 1
        query = embedder.embed_queries([question])[0]
        for mode in (SearchMode.DENSE, SearchMode.HYBRID):
            hits = edge_store.search("docs", dense=query, sparse=sparse.encode_query(question),
                                     mode=mode, top_k=3)  # fmt: skip
            assert any(fact in h.text and h.payload["source"].endswith(source) for h in hits), (
                question, mode, [h.text[:40] for h in hits],
            )  # fmt: skip
