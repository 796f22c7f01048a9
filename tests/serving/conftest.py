"""One Ray instance per module, loopback only, running deploy/ray/serve.yaml."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve

from serving.launch import APP_NAME, deploy, load_config, shutdown, start_ray, wait_running
from tests.support.processes import REPO, free_port

MODEL_DIR = REPO / "data/models/SmolLM2-135M-Instruct"


@dataclass
class Stack:
    url: str  # Ray Serve's HTTP proxy
    metrics_url: str  # Ray's Prometheus endpoint on this node
    config: dict[str, Any]

    def handle(self, deployment: str) -> Any:
        return serve.get_deployment_handle(deployment, app_name=APP_NAME)


def stack_config(
    store: Path,
    log_dir: Path,
    *,
    port: int,
    engine_urls: list[str] | None = None,
    gateway_replicas: int = 2,
) -> dict[str, Any]:
    """The repo's YAML with this test's port, store and (optionally) external engines."""
    config = copy.deepcopy(load_config())
    config["http_options"].update(host="127.0.0.1", port=port)
    app = config["applications"][0]
    app["args"].update(
        http_port=port,
        model_dir=str(MODEL_DIR),
        engine_log_dir=str(log_dir),
        local_engines=not engine_urls,
        engine_poll_s=0.5,
    )
    app["runtime_env"]["env_vars"].update(
        RAGSERVE_QDRANT_PATH=str(store),
        RAGSERVE_ENGINE_URLS=",".join(engine_urls or []),
        RAGSERVE_ENGINE_HEALTH_INTERVAL_S="1",
        RAGSERVE_ENGINE_COOLDOWN_S="2",
        # vLLM starts in ~1.5 min on an idle machine, but 5+ when other work shares the cores
        RAGSERVE_ENGINE_START_TIMEOUT_S="1500",
    )
    if engine_urls:  # no engine deployments to configure
        app["deployments"] = [d for d in app["deployments"] if not d["name"].startswith("engine")]
    for deployment in app["deployments"]:
        if deployment["name"] == "gateway":
            deployment.pop("autoscaling_config", None)  # a fixed count: tests kill one
            deployment["num_replicas"] = gateway_replicas
    return config


@contextmanager
def ray_stack(config: dict[str, Any], *, timeout_s: float = 1500.0) -> Iterator[Stack]:
    """A local Ray (2 CPUs, 127.0.0.1, no dashboard) serving ``config``; shut down on exit."""
    metrics_port = free_port()
    start_ray(num_cpus=2, metrics_port=metrics_port)
    try:
        deploy(config)
        wait_running(APP_NAME, timeout_s)
        port = config["http_options"]["port"]
        yield Stack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}", config)
    finally:
        shutdown()
