"""The ``ragserve`` command: serve the stack, ingest and search documents."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from gateway.settings import Settings, get_settings

if TYPE_CHECKING:
    from llm.launcher import LocalEngine

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
            timeout_graceful_shutdown=10,
        )
    finally:
        if engine is not None:
            console.print("Stopping vLLM…")
            engine.stop()


if __name__ == "__main__":
    app()
