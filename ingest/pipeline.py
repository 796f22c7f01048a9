"""The ingest run: files and folders → documents in a collection, through any target.

One implementation whether the target is the store opened in this process or a running
gateway (``ingest.targets``): which files, what each document is called, what is counted,
which stored documents a prune deletes. Synchronous: async callers run it in a thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from ingest.files import SkipCallback, discover, doc_id_for, file_of, parse_tags, under
from ingest.report import IngestSummary, Progress, ProgressCallback, RichProgress
from ingest.targets import FileOutcome, IngestTarget, SourceFile

Tags = Iterable[str] | Mapping[str, object] | None


def ingest_paths(
    paths: Sequence[str | os.PathLike[str]],
    target: IngestTarget,
    *,
    collection: str,
    glob: str | None = None,
    prune: bool = False,
    tags: Tags = None,
    base: str | os.PathLike[str] | None = None,
    progress: bool | ProgressCallback = False,
    on_skip: SkipCallback | None = None,
) -> IngestSummary:
    """Ingest files and folders into ``collection``; never raises for a bad file.

    ``tags``: ``["k=v", ...]`` or a mapping. ``base``: document ids are paths relative to
    it (default: absolute paths, the same from any working folder). ``progress``: a rich
    bar on a terminal (True), nothing (False), or a callable receiving ``Progress`` events.
    ``prune`` deletes stored documents under ``paths`` whose files are gone. A target that
    cannot write at all raises (``StoreError``, or the gateway client's error).
    """
    began = time.perf_counter()
    summary = IngestSummary()
    skip = on_skip or (lambda path, why: summary.warn(str(path), f"skipped: {why}"))
    files = discover(paths, glob, skip)
    tag_map = parse_tags(tags)
    present = {doc_id_for(path, base) for path in files}
    finished = 0

    with _reporter(progress) as report:

        def done(file: SourceFile, outcome: FileOutcome) -> None:
            nonlocal finished
            finished += 1
            _record(summary, file, outcome)
            report(Progress(finished, len(files), summary.chunks,
                            time.perf_counter() - began, file.source))  # fmt: skip

        for path in files:
            doc_id = doc_id_for(path, base)
            target.submit(collection, SourceFile(path, doc_id, doc_id, tag_map), done)
        target.flush(collection)
        if prune:
            summary.deleted = _prune(target, collection, paths, present, base)
        if summary.added or summary.updated or summary.deleted:
            target.finish(collection)
        summary.elapsed_s = time.perf_counter() - began
        report(Progress(finished, len(files), summary.chunks, summary.elapsed_s))
    return summary


def _record(summary: IngestSummary, file: SourceFile, outcome: FileOutcome) -> None:
    if outcome.status == "failed":
        summary.fail(str(file.path), outcome.error or "failed")
        return
    summary.count(outcome.status)
    if outcome.status in ("added", "updated"):
        summary.chunks += outcome.chunks
    if outcome.status == "empty":
        summary.warn(file.source, "empty: no text to index")
    for warning in outcome.warnings:
        summary.warn(file.source, warning)


def _prune(
    target: IngestTarget,
    collection: str,
    roots: Sequence[str | os.PathLike[str]],
    present: set[str],
    base: str | os.PathLike[str] | None,
) -> int:
    """Delete documents under ``roots`` whose files are gone; returns how many.

    Only documents ingested from files are candidates: an upload that happens to share a
    name is never pruned, nor a file that exists but was filtered out or failed to load.
    """
    prefixes = [doc_id_for(root, base) for root in roots]
    gone = 0
    for doc_id in sorted(target.documents(collection)):
        if doc_id in present or not any(under(doc_id, prefix) for prefix in prefixes):
            continue
        if file_of(doc_id, base).exists():
            continue
        if target.delete_file_document(collection, doc_id):
            gone += 1
    return gone


@contextmanager
def _reporter(progress: bool | ProgressCallback) -> Iterator[Callable[[Progress], None]]:
    if callable(progress):
        yield progress
        return
    bar = RichProgress(enabled=progress)
    if not bar.enabled:
        yield lambda event: None
        return
    with bar:
        yield bar
