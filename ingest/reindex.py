"""Zero-downtime re-index: build a fresh collection beside the live one, then switch.

Queries keep reading the collection behind the alias while the new one is built; the alias
then moves in one atomic step and the old collection is dropped once no search holds it.
A build that fails, even for one file, is dropped and the alias is left alone: a re-index
that silently lost documents would be worse than a stale one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ingest.report import IngestSummary


class ReindexTarget(Protocol):
    """Where a re-index runs: a store opened here (``ingest.targets.StoreTarget``), or a
    gateway that holds one (the CLI's gateway client)."""

    def create_versioned(self, alias: str) -> str: ...

    def switch_alias(self, alias: str, collection: str) -> None: ...

    def delete_collection(self, name: str) -> None: ...


class ReindexAborted(Exception):
    def __init__(self, summary: IngestSummary) -> None:
        super().__init__(
            f"{summary.failed} file(s) failed: the new collection was dropped and the alias "
            "still points at the old one"
        )
        self.summary = summary


def reindex(
    target: ReindexTarget, alias: str, build: Callable[[str], IngestSummary]
) -> IngestSummary:
    """Run ``build(new_collection)``; on success point ``alias`` at the new collection."""
    fresh = target.create_versioned(alias)
    try:
        summary = build(fresh)
    except BaseException:
        target.delete_collection(fresh)
        raise
    if summary.failed:
        target.delete_collection(fresh)
        raise ReindexAborted(summary)
    target.switch_alias(alias, fresh)
    return summary
