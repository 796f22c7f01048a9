"""``ragserve eval``: score dense, sparse and hybrid retrieval on a BEIR dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from cli.stack import console
from gateway.settings import get_settings

if TYPE_CHECKING:
    from retrieval.evaluation.runner import EvaluationReport
    from retrieval.evaluation.sweep import SweepReport


def evaluate(
    dataset: Annotated[
        Path, typer.Option(help="A BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/.")
    ],
    split: Annotated[str, typer.Option(help="Score the judgements in qrels/SPLIT.tsv.")] = "test",
    mode: Annotated[
        list[str] | None, typer.Option(help="dense, sparse or hybrid; repeatable (default: all).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")] = False,
    qdrant_url: Annotated[
        str | None, typer.Option(help="Use this Qdrant server (a temporary collection).")
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=V1,V2: score every combination (rrf_k, sparse_weight, fusion, "
            "candidates, stemmer, title); repeatable."
        ),  # fmt: skip
    ] = None,
    cache: Annotated[
        bool, typer.Option(help="Keep corpus vectors under the embedding cache dir.")
    ] = True,
) -> None:
    """Score dense, sparse and hybrid retrieval on a BEIR dataset (nDCG@10, recall, MRR)."""
    import tempfile

    from rich.progress import Progress

    from retrieval._search import Fusion
    from retrieval.embedder import Embedder
    from retrieval.evaluation.beir import DatasetError, load_beir
    from retrieval.evaluation.cache import EmbeddingCache
    from retrieval.evaluation.runner import evaluate_dataset
    from retrieval.evaluation.sweep import SweepError, parse_sweep, run_sweep
    from retrieval.factory import open_store
    from retrieval.types import SearchMode, StoreError

    try:
        modes = [SearchMode(m) for m in mode or list(SearchMode)]
    except ValueError as exc:
        raise typer.BadParameter("dense, sparse or hybrid", param_hint="--mode") from exc
    try:
        data = load_beir(dataset, split)
    except DatasetError as exc:
        raise typer.BadParameter(str(exc), param_hint="--dataset") from exc
    try:
        grid = parse_sweep(sweep or [])
    except SweepError as exc:
        raise typer.BadParameter(str(exc), param_hint="--sweep") from exc
    settings = get_settings()
    with console.status("Loading the embedding model…"):
        embedder = Embedder.load(settings.embedding_model, backend=settings.embedding_backend,
                                 cache_dir=settings.embedding_cache_dir)  # fmt: skip
    vectors = EmbeddingCache(settings.embedding_cache_dir / "corpus" if cache else None)
    stemmer = None if settings.sparse_stemmer == "none" else settings.sparse_stemmer
    fusion = Fusion(settings.fusion, settings.rrf_k, settings.hybrid_sparse_weight)
    with (
        tempfile.TemporaryDirectory(prefix="ragserve-eval-") as folder,
        Progress(console=console, transient=True) as progress,
    ):
        tasks: dict[str, Any] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "indexing" if stage == "index" else f"searching ({stage})"
                tasks[stage] = progress.add_task(label, total=total)
            progress.update(tasks[stage], completed=done)

        try:
            store = open_store("server" if qdrant_url else "edge", path=folder, url=qdrant_url,
                               api_key=settings.qdrant_api_key)  # fmt: skip
            try:
                if grid:
                    swept = run_sweep(data, store, embedder, grid, split=split, cache=vectors,
                                      on_progress=advance)  # fmt: skip
                else:
                    report = evaluate_dataset(data, store, embedder, modes=modes, split=split,
                                              on_progress=advance, cache=vectors, fusion=fusion,
                                              stemmer=stemmer)  # fmt: skip
            finally:
                store.close()
        except (StoreError, SweepError) as exc:
            raise SystemExit(f"the evaluation failed: {exc}") from exc
    if grid:
        _print_sweep(swept, json_output)
        return
    if json_output:
        print(json.dumps(report.to_dict(), indent=2))
        return
    _print_evaluation(report)


def _print_evaluation(report: EvaluationReport) -> None:
    from rich.table import Table

    from retrieval.evaluation.metrics import METRIC_NAMES

    title = (f"{report.dataset}: {report.documents} documents, {report.queries} queries, "
             f"{report.embedding_model} + BM25 (indexed in {report.index_s:.0f} s)")  # fmt: skip
    table = Table(title=title)
    for column in ("mode", *METRIC_NAMES, "search s"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for result in report.results:
        values = [f"{result.metrics[name]:.4f}" for name in METRIC_NAMES]
        table.add_row(result.mode, *values, f"{result.search_s:.1f}")
    Console().print(table)


def _print_sweep(report: SweepReport, json_output: bool) -> None:
    from rich.table import Table

    from retrieval.evaluation.metrics import METRIC_NAMES

    if json_output:
        print(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(title=f"{report.dataset} ({report.split}, {report.queries} queries): sweep")
    keys = list(report.rows[0].setting) if report.rows else []
    for column in ("mode", *keys, *METRIC_NAMES):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for row in sorted(report.rows, key=lambda r: -r.metrics["ndcg@10"]):
        values = [f"{row.metrics[name]:.4f}" for name in METRIC_NAMES]
        table.add_row(row.mode, *(str(row.setting[k]) for k in keys), *values)
    Console().print(table)
    best = report.best()
    if best is not None:
        console.print(f"best hybrid by ndcg@10: {best.setting}")
