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
from tests.support.processes import REPO, free_port, gateway_process, stop, wait_http

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
    synthetic_delay_ms: float = 5.0
    synthetic_first_token_ms: float = 0.0
    litellm_venv: Path = REPO / ".venv-litellm"
    start_timeout_s: float = 180.0


@contextmanager
def command_process(
    command: list[str], log: Path, ready_url: str, *, env: Mapping[str, str], timeout: float
) -> Iterator[None]:
    """Any server process, waited on until ``ready_url`` answers, stopped by its PID."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_http(ready_url, process, timeout, log)
        yield
    finally:
        stop(process)


@contextmanager
def synthetic_upstream(config: StackConfig) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable, "-m", "bench.synthetic_upstream", "--port", str(port),
        "--delay-ms", str(config.synthetic_delay_ms),
        "--first-token-ms", str(config.synthetic_first_token_ms),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log = config.logs / "synthetic-upstream.log"
    with command_process(command, log, url + "/health", env={}, timeout=30.0):
        yield url


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
def litellm_proxy(config: StackConfig, upstream_url: str, model: str) -> Iterator[str]:
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
    with command_process(
        command, log, url + "/health/liveliness", env=env, timeout=config.start_timeout_s
    ):
        yield url


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
        if config.upstream == "synthetic":
            upstream_url, model = stack.enter_context(synthetic_upstream(config)), "synthetic"
        else:
            upstream_url, model = config.engine_url, config.engine_model
        found: dict[str, Target] = {"direct": Target("direct", upstream_url, model)}
        if {"ragserve", "ragserve-rag"} & set(config.targets):
            # A scratch store of its own (gateway_process): never the repo's data/qdrant.
            env = {"RAGSERVE_ENGINE_URLS": upstream_url, "RAGSERVE_LOG_LEVEL": "warning"}
            gateway = stack.enter_context(
                gateway_process(
                    env, config.logs / "gateway.log", ready_path="/readyz",
                    timeout=config.start_timeout_s,
                )
            )  # fmt: skip
            if "ragserve-rag" in config.targets:
                upload_samples(gateway)
            found["ragserve"] = Target("ragserve", gateway, model)
            found["ragserve-rag"] = Target("ragserve-rag", gateway, RAG_MODEL)
        if "litellm" in config.targets:
            litellm = stack.enter_context(litellm_proxy(config, upstream_url, model))
            found["litellm"] = Target("litellm", litellm, model)
        yield [found[name] for name in config.targets]
