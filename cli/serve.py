"""``ragserve serve``: the gateway, and a local vLLM engine when no engine URL is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.ingest import print_summary
from cli.stack import console, say
from gateway.exposure import UnsafeBind, check_exposure
from gateway.retrieval_setup import describe_store
from gateway.settings import Settings, get_settings

if TYPE_CHECKING:
    from llm.launcher import LocalEngine

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "ingest" / "samples"


def serve(
    engine_url: Annotated[
        list[str] | None,
        typer.Option(help="Use this running vLLM server instead of starting one (repeatable)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Gateway processes sharing the port (more than one needs a Qdrant server).",
        ),
    ] = 1,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run the stack as a Ray Serve application (deploy/ray/serve.yaml; see DEPLOY.md).",
        ),
    ] = False,
) -> None:
    """Serve the gateway; without an engine URL, start a local vLLM engine first."""
    if ray:
        from serving.__main__ import main as serve_on_ray

        args = [*(["--host", host] if host else []), *(["--port", str(port)] if port else [])]
        args += [arg for url in engine_url or [] for arg in ("--engine-url", url)]
        raise SystemExit(serve_on_ray(args))
    import uvicorn

    from gateway.app import create_app

    settings = get_settings()
    if engine_url:
        settings.engine_urls = engine_url
    settings.host = host or settings.host
    settings.port = port or settings.port
    try:
        check_exposure(settings)  # before a minute of engine start-up, not after
    except UnsafeBind as exc:
        raise SystemExit(f"error: {exc}") from None
    if workers > 1 and settings.store_backend != "server":
        # The embedded stores admit one process at a time: the second worker could not
        # open it and would answer without retrieval.
        raise SystemExit(
            f"error: --workers {workers} needs a Qdrant server (RAGSERVE_QDRANT_URL): "
            f"{describe_store(settings)} can be opened by one process only"
        )
    say(f"Serving {describe_store(settings)}.")
    if settings.samples_on_first_start and settings.store_backend != "server":
        _ingest_samples_once(settings)  # a demo convenience; never on a shared Qdrant server
    engine = _start_local_engine(settings) if settings.local_engine else None
    try:
        if engine is not None:
            settings.engine_urls = [engine.config.url]
        console.print(
            f"Gateway on http://{settings.host}:{settings.port}"
            + (f" ({workers} processes)" if workers > 1 else "")
            + " (Ctrl-C stops all)"
        )
        if workers > 1:
            # Each worker builds its app from the environment: pass on what was decided here.
            os.environ["RAGSERVE_ENGINE_URLS"] = ",".join(settings.engine_urls)
            os.environ["RAGSERVE_HOST"] = settings.host
            os.environ["RAGSERVE_PORT"] = str(settings.port)
        uvicorn.run(
            create_app(settings) if workers == 1 else "gateway.app:create_app",
            factory=workers > 1,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=int(settings.drain_timeout_s) + 10,
            # A worker loading torch and the embedder can miss uvicorn's 5 s pings on a busy
            # machine and be killed in a loop; give it a minute.
            timeout_worker_healthcheck=60,
        )
    finally:
        if engine is not None:
            console.print("Stopping vLLM…")
            engine.stop()


def _ingest_samples_once(settings: Settings) -> None:
    """A first start on an empty store ingests the sample corpus, so RAG answers at once."""
    from gateway.retrieval_setup import load_embedder, sparse_encoder, store_exists
    from ingest.pipeline import ingest_paths
    from ingest.targets import StoreTarget
    from retrieval.factory import open_store
    from retrieval.types import StoreLocked

    if store_exists(settings):
        return
    try:
        store = open_store(settings.store_backend, path=str(settings.qdrant_path))
    except StoreLocked:
        return  # another gateway serves it
    try:
        console.print(
            f"New store at {settings.qdrant_path}: ingesting the sample corpus into "
            f"'{settings.collection}'…"
        )
        with console.status("Loading the embedding model…"):
            embedder = load_embedder(settings)
        target = StoreTarget(
            store, embedder, sparse_encoder(settings), max_bytes=settings.max_upload_bytes
        )
        # Named from the package root (ingest/samples/...), wherever the code is installed.
        summary = ingest_paths([SAMPLES_DIR], target, collection=settings.collection,
                               base=SAMPLES_DIR.parents[1], progress=True)  # fmt: skip
        print_summary(summary)
    finally:
        store.close()


def _prepare_model(settings: Settings) -> None:
    from llm.model_prep import is_prepared

    if is_prepared(settings.engine_model_dir):
        return
    with console.status(f"Preparing the bundled model in {settings.engine_model_dir} (once)…"):
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
    log_path = settings.data_dir / "logs" / "vllm.log"
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
