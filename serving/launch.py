"""Run deploy/ray/serve.yaml on a local Ray instance (or a running cluster), as ``serve run``
does, and wait until the application is up. Used by ``python -m serving`` and the tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ray
import yaml
from ray import serve
from ray.serve._private import api as serve_api
from ray.serve.schema import ServeDeploySchema

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "ray" / "serve.yaml"
APP_NAME = "ragserve"


class DeployError(RuntimeError):
    pass


def load_config(path: Path = CONFIG) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def start_ray(
    address: str | None = None, num_cpus: int | None = None, metrics_port: int | None = None
) -> None:
    """Connect to ``address``, or start a local instance: loopback, no dashboard; Ray's
    Prometheus metrics (Serve's and the deployments' own) on ``metrics_port``."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, namespace="serve")
    else:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _metrics_export_port=metrics_port,
            namespace="serve",
        )


def deploy(config: dict[str, Any]) -> None:
    """Start Serve with the config's HTTP options and deploy its applications (no waiting)."""
    schema = ServeDeploySchema.model_validate(config)
    # What `serve run CONFIG` does; Ray offers no public call that takes a whole config.
    client = serve_api.serve_start(
        http_options=schema.http_options.model_dump(),
        proxy_location=schema.proxy_location,
    )
    client.deploy_apps(schema, _blocking=False)


def wait_running(name: str = APP_NAME, timeout_s: float = 900.0) -> None:
    """Block until the application runs; raise if it fails or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        app = serve.status().applications.get(name)
        status = app.status if app else None
        if status == "RUNNING":
            return
        if status in ("DEPLOY_FAILED", "UNHEALTHY"):
            assert app is not None
            raise DeployError(f"{name}: {status}: {app.message}")
        time.sleep(1.0)
    raise DeployError(f"{name} not running after {timeout_s:g} s (last status: {status})")


def shutdown() -> None:
    """Delete the applications (replicas stop their vLLM servers), then stop Ray if ours."""
    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()
