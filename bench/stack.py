"""The processes a comparison runs against, started for the run and stopped after it.

(a) ``direct``: the upstream itself (the vLLM engine, or the synthetic upstream);
(b) ``ragserve``: a fresh gateway process, the engine's model name (RAG off);
(c) ``ragserve-rag``: the same gateway, the ``docs`` alias over the sample corpus (RAG on);
(d) ``litellm``: LiteLLM's proxy from its own venv, configured to the same upstream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import Target
from tests.support.processes import REPO, free_port, start_gateway, stop, wait_http

TARGET_NAMES = ("direct", "ragserve", "ragserve-rag", "litellm")
SAMPLES = REPO / "ingest" / "samples"
RAG_MODEL = "docs"  # the gateway's default alias: the collection 'docs', RAG on


@dataclass(frozen=True, slots=True)
class StackConfig:
    targets: tuple[str, ...]
    logs: Path
    upstream: str = "engine"  # "engine" (an OpenAI-compatible vLLM) or "synthetic"
    engine_url: str = "http://127.0.0.1:8100"
    engine_model: str = "smollm2-135m-instruct"
    synthetic_delay_ms: float = 20.0
    synthetic_first_token_ms: float = 0.0
    litellm_venv: Path = REPO / ".venv-litellm"
    start_timeout_s: float = 180.0


def process_tree(pid: int) -> tuple[int, ...]:
    """``pid`` and its descendants now (a server that forks workers is measured whole)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            found += process_tree(int(child))
    return tuple(found)


@contextmanager
def serving(
    process: subprocess.Popen[bytes], ready_url: str, log: Path, timeout: float
) -> Iterator[tuple[int, ...]]:
    """Wait until ``ready_url`` answers; yield the server's PIDs; stop it by its PID."""
    try:
        wait_http(ready_url, process, timeout, log)
        yield process_tree(process.pid)
    finally:
        stop(process)


def start_command(command: list[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


@contextmanager
def synthetic_upstream(config: StackConfig) -> Iterator[tuple[str, tuple[int, ...]]]:
    port = free_port()
    command = [
        sys.executable, "-m", "bench.synthetic_upstream", "--port", str(port),
        "--delay-ms", str(config.synthetic_delay_ms),
        "--first-token-ms", str(config.synthetic_first_token_ms),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log = config.logs / "synthetic-upstream.log"
    with serving(start_command(command, log, {}), url + "/health", log, 30.0) as pids:
        yield url, pids


def litellm_config(upstream_url: str, model: str) -> dict[str, Any]:
    """LiteLLM's proxy config: one ``openai/`` model at the upstream, no network calls.

    No master key, as ragserve runs here without API keys: both proxies skip auth.
    """
    return {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": f"{upstream_url}/v1",
                    "api_key": "unused",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }


@contextmanager
def litellm_proxy(
    config: StackConfig, upstream_url: str, model: str
) -> Iterator[tuple[str, tuple[int, ...]]]:
    executable = config.litellm_venv / "bin" / "litellm"
    if not executable.exists():
        raise SystemExit(
            f"{executable} is missing: python3 -m venv .venv-litellm && "
            ".venv-litellm/bin/pip install 'litellm[proxy]' (its pins clash with ours)"
        )
    settings = config.logs / "litellm-config.yaml"
    settings.write_text(json.dumps(litellm_config(upstream_url, model), indent=2))  # JSON is YAML
    port = free_port()
    command = [str(executable), "--config", str(settings), "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # the bundled price list, not GitHub's
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    url = f"http://127.0.0.1:{port}"
    log = config.logs / "litellm.log"
    process = start_command(command, log, env)
    with serving(process, url + "/health/liveliness", log, config.start_timeout_s) as pids:
        yield url, pids


@contextmanager
def ragserve_gateway(
    config: StackConfig, upstream_url: str
) -> Iterator[tuple[str, tuple[int, ...]]]:
    """A gateway process of its own, on a scratch store (never the repo's data/qdrant)."""
    port = free_port()
    env = {"RAGSERVE_ENGINE_URLS": upstream_url, "RAGSERVE_LOG_LEVEL": "warning"}
    log = config.logs / "gateway.log"
    process = start_gateway(env, log, port)
    url = f"http://127.0.0.1:{port}"
    with serving(process, url + "/readyz", log, config.start_timeout_s) as pids:
        yield url, pids


def upload_samples(gateway_url: str, collection: str = "docs") -> int:
    """The sample corpus into ``collection`` through the gateway's own documents API."""
    chunks = 0
    with httpx.Client(base_url=gateway_url, timeout=300.0) as client:
        for path in sorted(SAMPLES.iterdir()):
            with path.open("rb") as handle:
                response = client.post(
                    "/v1/documents",
                    data={"collection": collection},
                    files={"file": (path.name, handle)},
                )
            response.raise_for_status()
            chunks += int(response.json()["chunks"])
    return chunks


@contextmanager
def running_stack(config: StackConfig) -> Iterator[list[Target]]:
    """Start what ``config.targets`` needs; yield the targets in the order asked."""
    unknown = set(config.targets) - set(TARGET_NAMES)
    if unknown:
        raise ValueError(f"unknown targets {sorted(unknown)}; choose from {TARGET_NAMES}")
    config.logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        upstream_pids: tuple[int, ...] = ()  # an engine we did not start is not measured
        if config.upstream == "synthetic":
            upstream_url, upstream_pids = stack.enter_context(synthetic_upstream(config))
            model = "synthetic"
        else:
            upstream_url, model = config.engine_url, config.engine_model
        found = {"direct": Target("direct", upstream_url, model, pids=upstream_pids)}
        if {"ragserve", "ragserve-rag"} & set(config.targets):
            gateway, pids = stack.enter_context(ragserve_gateway(config, upstream_url))
            if "ragserve-rag" in config.targets:
                upload_samples(gateway)
            found["ragserve"] = Target("ragserve", gateway, model, pids=pids)
            found["ragserve-rag"] = Target("ragserve-rag", gateway, RAG_MODEL, pids=pids)
        if "litellm" in config.targets:
            litellm, pids = stack.enter_context(litellm_proxy(config, upstream_url, model))
            found["litellm"] = Target("litellm", litellm, model, pids=pids)
        yield [found[name] for name in config.targets]
