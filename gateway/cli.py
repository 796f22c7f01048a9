"""The ``ragserve`` command: serve the stack, ingest and search documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer
from rich.console import Console

from gateway.settings import Settings, get_settings
from gateway.store_access import GatewayClient, gateway_url

if TYPE_CHECKING:
    from ingest.report import IngestSummary
    from llm.launcher import LocalEngine
    from retrieval.evaluation.runner import EvaluationReport
    from retrieval.types import VectorStore

# Weights ship inside packages: never reach for a model hub, and keep its progress bars quiet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

app = typer.Typer(help="ragserve: retrieval-augmented LLM serving.", no_args_is_help=True)
console = Console(stderr=True)


def _prepare_model(settings: Settings) -> None:
    from llm.model_prep import is_prepared

    if is_prepared(settings.engine_model_dir):
        return
    with console.status("Preparing the bundled model (GGUF → safetensors, once)…"):
        # A child process: the conversion loads torch + transformers we don't need after.
        subprocess.run(
            [sys.executable, "-m", "llm.model_prep", str(settings.engine_model_dir)],
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _start_local_engine(settings: Settings) -> LocalEngine:
    from llm.launcher import EngineConfig, LocalEngine, parse_extra_args

    _prepare_model(settings)
    log_path = Path("data/logs/vllm.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    engine = LocalEngine(
        EngineConfig(
            model_dir=settings.engine_model_dir,
            served_model_name=settings.served_model_name,
            host=settings.engine_host,
            port=settings.engine_port,
            dtype=settings.engine_dtype,
            max_model_len=settings.engine_max_model_len,
            kv_cache_bytes=settings.engine_kv_cache_bytes,
            extra_args=parse_extra_args(settings.engine_extra_args),
        ),
        log_path=log_path,
    )
    engine.start()
    with console.status("Starting vLLM…") as status:
        took = engine.wait_ready(
            settings.engine_start_timeout_s,
            on_tick=lambda s: status.update(f"Starting vLLM… {s:.0f} s (log: {log_path})"),
        )
    console.print(f"[green]vLLM ready[/] at {engine.config.url} in {took:.1f} s")
    return engine


@app.command()
def serve(
    engine_url: Annotated[
        list[str] | None,
        typer.Option(help="Use this running vLLM server instead of starting one (repeatable)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
) -> None:
    """Serve the gateway; without an engine URL, start a local vLLM engine first."""
    import uvicorn

    from gateway.app import create_app

    settings = get_settings()
    if engine_url:
        settings.engine_urls = engine_url
    settings.host = host or settings.host
    settings.port = port or settings.port
    if settings.samples_on_first_start and settings.store_backend != "server":
        _ingest_samples_once(settings)  # a demo convenience; never on a shared Qdrant server
    engine = _start_local_engine(settings) if settings.local_engine else None
    try:
        if engine is not None:
            settings.engine_urls = [engine.config.url]
        console.print(f"Gateway on http://{settings.host}:{settings.port} (Ctrl-C stops all)")
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=int(settings.drain_timeout_s) + 10,
        )
    finally:
        if engine is not None:
            console.print("Stopping vLLM…")
            engine.stop()


SAMPLES_DIR = Path(__file__).resolve().parents[1] / "ingest" / "samples"


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    collection: Annotated[str | None, typer.Option(help="Collection (default: settings).")] = None,
    glob: Annotated[str | None, typer.Option(help="Only files matching, e.g. '*.md'.")] = None,
    prune: Annotated[
        bool, typer.Option(help="Delete stored documents under PATHS whose files are gone.")
    ] = False,
    tag: Annotated[list[str] | None, typer.Option(help="key=value, repeatable.")] = None,
    reindex: Annotated[
        bool,
        typer.Option(
            help="Build a fresh collection from PATHS alone, then switch the collection's "
            "alias to it atomically (queries never fail meanwhile)."
        ),
    ] = False,
) -> None:
    """Load, chunk, embed and store documents (idempotent, incremental)."""
    from ingest.files import parse_tags
    from ingest.reindex import ReindexAborted

    settings = get_settings()
    try:
        tags = parse_tags(tag or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tag") from exc
    if reindex and prune:
        raise typer.BadParameter("a re-index holds only PATHS already", param_hint="--prune")
    target = collection or settings.collection
    store = _local_store(settings)
    try:
        if store is None:
            summary = _ingest_through_gateway(
                _gateway(settings), paths, target, glob, prune, tags, reindex
            )
        else:
            try:
                summary = _ingest_locally(
                    settings, store, paths, target, glob, prune, tags, reindex
                )
            finally:
                store.close()
    except ReindexAborted as aborted:
        _print_summary(aborted.summary)
        console.print(f"[red]re-index aborted[/]: {aborted}")
        raise typer.Exit(1) from None
    _print_summary(summary)
    if reindex:
        console.print(f"[green]'{target}' now points at the re-indexed collection[/]")
    if summary.failed:
        raise typer.Exit(1)


def _ingest_locally(
    settings: Settings,
    store: VectorStore,
    paths: list[Path],
    collection: str,
    glob: str | None,
    prune: bool,
    tags: dict[str, str],
    reindex: bool = False,
) -> IngestSummary:
    from ingest.pipeline import ingest_paths
    from ingest.reindex import StoreTarget
    from ingest.reindex import reindex as reindex_into
    from retrieval.embedder import Embedder
    from retrieval.sparse import SparseEncoder

    with console.status("Loading the embedding model…"):
        embedder = Embedder.load(settings.embedding_model)

    def build(into: str) -> IngestSummary:
        return ingest_paths(
            paths, store=store, embedder=embedder, sparse=SparseEncoder(), collection=into,
            glob=glob, prune=prune, tags=tags, max_bytes=settings.max_upload_bytes,
            progress=True,
            on_skip=lambda path, why: console.print(f"[yellow]skipped[/] {path}: {why}"),
        )  # fmt: skip

    if not reindex:
        return build(collection)
    return reindex_into(StoreTarget(store, embedder.dimension), collection, build)


def _ingest_through_gateway(
    client: GatewayClient,
    paths: list[Path],
    collection: str,
    glob: str | None,
    prune: bool,
    tags: dict[str, str],
    reindex: bool = False,
) -> IngestSummary:
    if reindex:
        from ingest.reindex import reindex as reindex_into

        build = lambda into: _ingest_through_gateway(client, paths, into, glob, False, tags)  # noqa: E731
        return reindex_into(client, collection, build)
    import time

    from ingest.files import discover, display_path, doc_id_for, under
    from ingest.report import IngestSummary

    summary = IngestSummary()
    began = time.perf_counter()
    seen: set[str] = set()
    skip = lambda path, why: console.print(f"[yellow]skipped[/] {path}: {why}")  # noqa: E731
    for path in discover(paths, glob, skip):
        doc_id = doc_id_for(path)  # the same id a local ingest gives the file
        seen.add(doc_id)
        form = {"collection": collection, "doc_id": doc_id, "tags": json.dumps(tags)}
        form["source"] = display_path(path)
        try:
            result = client.upload(path, form)
        except SystemExit as exc:
            summary.failed += 1
            summary.failures.append((str(path), str(exc)))
            continue
        summary.count(result["status"])
        summary.chunks += result["chunks"] if result["status"] != "unchanged" else 0
        summary.warnings += [(str(path), w) for w in result.get("warnings", [])]
    if prune:
        prefixes = [doc_id_for(p) for p in paths]
        for doc in client.documents(collection)["data"]:
            doc_id = doc["id"]
            gone = doc_id not in seen and not Path(doc_id).exists()
            if gone and any(under(doc_id, prefix) for prefix in prefixes):
                client.delete_document(collection, doc_id)
                summary.deleted += 1
    summary.elapsed_s = time.perf_counter() - began
    return summary


def _print_summary(summary: IngestSummary) -> None:
    for path, warning in summary.warnings:
        console.print(f"[yellow]warning[/] {path}: {warning}")
    for path, reason in summary.failures:
        console.print(f"[red]failed[/] {path}: {reason}")
    console.print(
        f"added {summary.added}, updated {summary.updated}, skipped {summary.skipped}, "
        f"deleted {summary.deleted}, failed {summary.failed}; {summary.chunks} chunks in "
        f"{summary.elapsed_s:.1f} s ({summary.chunks_per_s:.1f} chunks/s)"
    )


def _ingest_samples_once(settings: Settings) -> None:
    """A first start on an empty store ingests the sample corpus, so RAG answers at once."""
    store = _local_store(settings)
    if store is None:
        return
    try:
        if store.list_collections():
            return
        console.print(f"Empty store: ingesting the sample corpus into '{settings.collection}'…")
        summary = _ingest_locally(
            settings, store, [SAMPLES_DIR], settings.collection, None, False, {}
        )
        _print_summary(summary)
    finally:
        store.close()


collections_app = typer.Typer(help="List or delete collections.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")


def _local_store(settings: Settings) -> VectorStore | None:
    """The store opened here, or None when a running gateway holds it."""
    from retrieval.factory import open_store
    from retrieval.types import StoreLocked

    try:
        return open_store(
            settings.store_backend,
            path=str(settings.qdrant_path),
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
        )
    except StoreLocked:
        return None


def _gateway(settings: Settings) -> GatewayClient:
    client = GatewayClient(gateway_url(settings), settings.api_key)
    console.print(f"[dim]The store is held by the gateway at {client.url}; going through it.[/]")
    return client


def _parse_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--filter") from exc
    if not isinstance(value, dict):
        raise typer.BadParameter('a JSON object, e.g. {"source": "a.md"}', param_hint="--filter")
    return value


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: Annotated[str | None, typer.Option(help="Collection (default: settings).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option(help="dense, sparse or hybrid.")] = "hybrid",
    filter: Annotated[str | None, typer.Option(help='JSON, e.g. {"tags": ["faq"]}')] = None,
    min_score: Annotated[float | None, typer.Option(help="Score floor.")] = None,
) -> None:
    """Print the passages that best match QUERY, with scores and sources."""
    from rich.table import Table

    settings = get_settings()
    if mode not in ("dense", "sparse", "hybrid"):
        raise typer.BadParameter("dense, sparse or hybrid", param_hint="--mode")
    body = {
        "query": query,
        "collection": collection or settings.collection,
        "top_k": top_k,
        "mode": mode,
        "filter": _parse_filter(filter),
        "min_score": min_score,
    }
    store = _local_store(settings)
    if store is None:
        results = _gateway(settings).search(body)["results"]
    else:
        try:
            results = anyio.run(_search_locally, settings, store, body)
        finally:
            store.close()
    table = Table(title=f"{len(results)} passages for {query!r} ({mode})")
    for column in ("#", "score", "source", "passage"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(results, start=1):
        where = (hit.get("source") or "") + (f" p.{hit['page']}" if hit.get("page") else "")
        text = " ".join(str(hit["text"]).split())
        table.add_row(str(rank), f"{hit['score']:.4f}", where, text[:400])
    Console().print(table)


async def _search_locally(
    settings: Settings, store: VectorStore, body: dict[str, Any]
) -> list[dict[str, Any]]:
    from retrieval.batching import QueryBatcher
    from retrieval.embedder import Embedder
    from retrieval.retriever import Retriever
    from retrieval.sparse import SparseEncoder
    from retrieval.types import CollectionNotFound, SearchMode

    embedder = await anyio.to_thread.run_sync(Embedder.load, settings.embedding_model)
    retriever = Retriever(QueryBatcher(embedder), SparseEncoder(), store)
    try:
        found = await retriever.retrieve(
            body["query"],
            collection=body["collection"],
            top_k=body["top_k"],
            mode=SearchMode(body["mode"]),
            flt=body["filter"],
            min_score=body["min_score"],
        )
    except CollectionNotFound as exc:
        raise SystemExit(str(exc)) from exc
    return [{"score": h.score, "text": h.text, **h.payload} for h in found.hits]


@collections_app.command("list")
def collections_list() -> None:
    """List collections and their point counts."""
    settings = get_settings()
    store = _local_store(settings)
    if store is None:
        rows = [(c["name"], c["points"]) for c in _gateway(settings).collections()["data"]]
    else:
        try:
            rows = [(name, store.count(name)) for name in store.list_collections()]
        finally:
            store.close()
    for name, points in rows:
        print(f"{name}\t{points}")


@collections_app.command("delete")
def collections_delete(
    name: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False
) -> None:
    """Delete a collection and every point in it."""
    if not yes:
        typer.confirm(f"Delete the collection '{name}' and all its points?", abort=True)
    settings = get_settings()
    store = _local_store(settings)
    if store is None:
        _gateway(settings).delete_collection(name)
    else:
        try:
            if not store.collection_exists(name):
                raise SystemExit(f"collection '{name}' does not exist")
            store.delete_collection(name)
        finally:
            store.close()
    console.print(f"Deleted the collection '{name}'.")


@app.command("eval")
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
) -> None:
    """Score dense, sparse and hybrid retrieval on a BEIR dataset (nDCG@10, recall, MRR)."""
    import tempfile

    from rich.progress import Progress

    from retrieval.embedder import Embedder
    from retrieval.evaluation.beir import DatasetError, load_beir
    from retrieval.evaluation.runner import evaluate_dataset
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
    settings = get_settings()
    with console.status("Loading the embedding model…"):
        embedder = Embedder.load(settings.embedding_model)
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
                report = evaluate_dataset(data, store, embedder, modes=modes, on_progress=advance)
            finally:
                store.close()
        except StoreError as exc:
            raise SystemExit(f"the vector store failed: {exc}") from exc
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


keys_app = typer.Typer(help="API key helpers.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("hash")
def keys_hash(secret: Annotated[str, typer.Argument(help="The API key to hash.")]) -> None:
    """Print the sha256 to put in RAGSERVE_API_KEYS (the server never stores the key)."""
    from gateway.auth import digest

    print(digest(secret))


if __name__ == "__main__":
    app()
