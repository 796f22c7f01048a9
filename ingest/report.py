"""What an ingest run did (``IngestSummary``) and how it is shown while it runs.

Progress is a rich bar (files, chunks, chunks/s) on an interactive terminal, nothing
otherwise; a callable receives ``Progress`` events instead, for callers with their own UI.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

Status = Literal["added", "updated", "unchanged", "empty"]


class Failure(NamedTuple):
    path: str
    reason: str


class Note(NamedTuple):
    path: str
    message: str


@dataclass
class IngestSummary:
    """Counts per outcome; ``chunks`` counts chunks embedded and written in this run."""

    added: int = 0
    updated: int = 0
    skipped: int = 0  # unchanged, empty, or the same document given twice
    deleted: int = 0
    failed: int = 0
    chunks: int = 0
    elapsed_s: float = 0.0
    # Plain (path, text) pairs: callers build them too; ours are the named tuples below.
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def files(self) -> int:
        return self.added + self.updated + self.skipped + self.failed

    def count(self, status: Status) -> None:
        if status == "added":
            self.added += 1
        elif status == "updated":
            self.updated += 1
        else:
            self.skipped += 1

    def fail(self, path: str, reason: str) -> None:
        self.failed += 1
        self.failures.append(Failure(path, reason))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Note(path, message))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunks_per_s"] = round(self.chunks_per_s, 2)
        data["failures"] = [{"path": p, "reason": r} for p, r in self.failures]
        data["warnings"] = [{"path": p, "message": m} for p, m in self.warnings]
        return data

    def line(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, skipped {self.skipped}, "
            f"deleted {self.deleted}, failed {self.failed}; {self.chunks} chunks in "
            f"{self.elapsed_s:.1f} s ({self.chunks_per_s:.1f} chunks/s)"
        )

    def table(self) -> Table:
        from rich.table import Table

        table = Table(title="Ingest", show_header=True, header_style="bold")
        for name in ("added", "updated", "skipped", "deleted", "failed", "chunks"):
            table.add_column(name, justify="right")
        table.add_column("chunks/s", justify="right")
        table.add_row(
            *(str(getattr(self, n)) for n in ("added", "updated", "skipped", "deleted",
                                              "failed", "chunks")),
            f"{self.chunks_per_s:.1f}",
        )  # fmt: skip
        return table

    def render(self, console: Console | None = None) -> None:
        """Print warnings, failures and the counts table (to stderr by default)."""
        from rich.console import Console
        from rich.markup import escape

        out = console or Console(stderr=True)
        for path, message in self.warnings:
            out.print(f"[yellow]warning[/] {escape(path)}: {escape(message)}")
        for path, reason in self.failures:
            out.print(f"[red]failed[/] {escape(path)}: {escape(reason)}")
        out.print(self.table())
        out.print(self.line())


@dataclass(frozen=True, slots=True)
class Progress:
    """Sent after each file and each written batch."""

    files_done: int
    files_total: int
    chunks: int
    elapsed_s: float
    path: str | None = None  # the file just finished, if any

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.elapsed_s if self.elapsed_s else 0.0


ProgressCallback = Callable[[Progress], None]


class RichProgress:
    """A rich progress bar fed by ``Progress`` events; a no-op when disabled."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        console = console or Console(stderr=True)
        self.enabled = enabled and console.is_terminal and sys.stderr.isatty()
        self._bar = Bar(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("files  {task.fields[chunks]} chunks  {task.fields[rate]:.1f} chunks/s"),
            TimeElapsedColumn(), console=console, disable=not self.enabled, transient=False,
        )  # fmt: skip
        self._task = self._bar.add_task("Ingesting", total=None, chunks=0, rate=0.0)
        self._began = time.perf_counter()

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, event: Progress) -> None:
        self._bar.update(
            self._task, total=event.files_total, completed=event.files_done,
            chunks=event.chunks, rate=event.chunks_per_s,
        )  # fmt: skip
