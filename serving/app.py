"""The application builder Ray Serve imports: ``import_path: serving.app:build_app``.

``args`` (the YAML's ``args:``) choose the shape of the stack; replicas, autoscaling,
resources and batching are the YAML's per-deployment settings, which override the defaults in
the deployment decorators. Everything else is ragserve's usual ``RAGSERVE_*`` settings, read
by each replica from its environment (the YAML's ``runtime_env.env_vars``).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel
from ray.serve import Application

from gateway.settings import Settings
from serving.engines import EngineRegistry, EngineReplica
from serving.gateway import Gateway
from serving.retrieval import Retrieval


class AppArgs(BaseModel):
    """The YAML's ``args``."""

    # Start vLLM replicas under Ray (the `engine` deployment). False: RAGSERVE_ENGINE_URLS only.
    local_engines: bool = True
    # Where engine servers listen: "127.0.0.1" on one machine; "node" (the node's address) on
    # a cluster, so gateways on other nodes reach them.
    engine_host: str = "127.0.0.1"
    # The model folder (prepared from the bundled GGUF if missing); default: the settings'.
    model_dir: str | None = None
    engine_extra_args: str = ""
    engine_log_dir: str | None = None
    engine_poll_s: float = 1.0
    # Ray Serve's HTTP address (http_options): the gateway's exposure check (no keys on a
    # non-loopback address: refuse to start) and the address told to the CLI.
    http_host: str = "127.0.0.1"
    http_port: int = 8000


def _absolute(path: str | Path) -> str:
    # replicas do not share the driver's working directory: pass absolute paths
    return str(Path(path).expanduser().resolve())


def build_app(args: dict[str, object]) -> Application:
    """The whole stack: gateway (ingress) -> retrieval, engine registry <- engine replicas."""
    options = AppArgs.model_validate(args)
    settings = Settings()
    serve_store = settings.qdrant_url is None
    retrieval = Retrieval.bind(serve_store=serve_store)  # type: ignore[attr-defined]
    registry = engines = None
    if options.local_engines:
        registry = EngineRegistry.bind()  # type: ignore[attr-defined]
        log_dir = options.engine_log_dir or os.path.join(os.getcwd(), "data", "logs")
        engines = EngineReplica.bind(  # type: ignore[attr-defined]
            registry,
            model_dir=_absolute(options.model_dir or settings.engine_model_dir),
            served_model_name=settings.served_model_name,
            host=options.engine_host,
            dtype=settings.engine_dtype,
            max_model_len=settings.engine_max_model_len,
            kv_cache_bytes=settings.engine_kv_cache_bytes,
            extra_args=options.engine_extra_args or settings.engine_extra_args,
            start_timeout_s=settings.engine_start_timeout_s,
            log_dir=_absolute(log_dir),
        )
    return Gateway.bind(  # type: ignore[attr-defined,no-any-return]
        retrieval,
        registry,
        engines,
        serve_store=serve_store,
        http_host=options.http_host,
        http_port=options.http_port,
        engine_poll_s=options.engine_poll_s,
    )
