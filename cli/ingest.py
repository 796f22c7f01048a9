"""``ragserve ingest``: one ingest run, into the store opened here or through the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli.stack import Here, console, open_stack
from gateway.settings import Settings, get_settings
from ingest.files import parse_tags
from ingest.pipeline import ingest_paths
from ingest.reindex import ReindexAborted, ReindexTarget, reindex
from ingest.report import IngestSummary
from ingest.targets import IngestTarget, StoreTarget


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    collection: Annotated[str | None, typer.Option(help="Collection (default: settings).")] = None,
    glob: Annotated[str | None, typer.Option(help="Only files matching, e.g. '*.md'.")] = None,
    prune: Annotated[
        bool, typer.Option(help="Delete stored documents under PATHS whose files are gone.")
    ] = False,
    tag: Annotated[list[str] | None, typer.Option(help="key=value, repeatable.")] = None,
    reindex_: Annotated[
        bool,
        typer.Option(
            "--reindex",
            help="Build a fresh collection from PATHS alone, then switch the collection's "
            "alias to it atomically (queries never fail meanwhile).",
        ),
    ] = False,
    base: Annotated[
        Path | None,
        typer.Option(
            help="Name documents by their path relative to BASE (default: absolute paths)."
        ),
    ] = None,
) -> None:
    """Load, chunk, embed and store documents (idempotent, incremental)."""
    settings = get_settings()
    try:
        tags = parse_tags(tag or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tag") from exc
    if reindex_ and prune:
        raise typer.BadParameter("a re-index holds only PATHS already", param_hint="--prune")
    target = collection or settings.collection
    with open_stack(settings, create=True) as stack:
        # Either target does both jobs: write files, and switch a re-indexed collection in.
        writer: IngestTarget
        switcher: ReindexTarget
        if isinstance(stack, Here):
            writer = switcher = _store_target(settings, stack)
        else:
            writer = switcher = stack.client

        def build(into: str) -> IngestSummary:
            return ingest_paths(
                paths, writer, collection=into, glob=glob, prune=prune, tags=tags, base=base,
                progress=True, on_skip=_skipped,
            )  # fmt: skip

        try:
            summary = reindex(switcher, target, build) if reindex_ else build(target)
        except ReindexAborted as aborted:
            print_summary(aborted.summary)
            console.print(f"[red]re-index aborted[/]: {aborted}")
            raise typer.Exit(1) from None
    print_summary(summary)
    if reindex_:
        console.print(f"[green]'{target}' now points at the re-indexed collection[/]")
    if summary.failed:
        raise typer.Exit(1)


def _store_target(settings: Settings, stack: Here) -> StoreTarget:
    from gateway.retrieval_setup import load_embedder, sparse_encoder

    with console.status("Loading the embedding model…"):
        embedder = load_embedder(settings)  # the backend the gateway uses, same vectors
    return StoreTarget(
        stack.store, embedder, sparse_encoder(settings), max_bytes=settings.max_upload_bytes
    )


def _skipped(path: Path, why: str) -> None:
    console.print(f"[yellow]skipped[/] {escape(str(path))}: {escape(why)}")


def print_summary(summary: IngestSummary) -> None:
    for path, warning in summary.warnings:
        console.print(f"[yellow]warning[/] {escape(path)}: {escape(warning)}")
    for path, reason in summary.failures:
        console.print(f"[red]failed[/] {escape(path)}: {escape(reason)}")
    console.print(summary.line())
