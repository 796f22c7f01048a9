"""API keys, tenancy and admission control on a real gateway process and engine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.auth import digest
from tests.conftest import MODEL_NAME, seed_store
from tests.support.processes import gateway_process

pytestmark = pytest.mark.engine

ADMIN, TENANT_A, LIMITED = "admin-secret", "tenant-a-secret", "limited-secret"
SINGLE = "single-stream-secret"
KEYS = [
    {"name": "admin", "sha256": digest(ADMIN)},
    {"name": "tenant-a", "sha256": digest(TENANT_A), "collections": ["shared", "docs"],
     "filter": {"tags": ["tenant=a"]}},
    {"name": "limited", "sha256": digest(LIMITED), "requests_per_minute": 3,
     "max_concurrent_streams": 1},
    {"name": "single", "sha256": digest(SINGLE), "max_concurrent_streams": 1},
]  # fmt: skip


@pytest.fixture(scope="module")
def secured(engine_url: str, artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:  # fmt: skip
    env = {
        "RAGSERVE_ENGINE_URLS": engine_url,
        "RAGSERVE_QDRANT_PATH": str(seed_store(tmp_path_factory.mktemp("secured"))),
        "RAGSERVE_API_KEYS": json.dumps(KEYS),
        "RAGSERVE_MAX_JSON_BYTES": "20000",
        "RAGSERVE_MAX_INPUT_TOKENS": "300",
    }
    with gateway_process(env, artifacts_dir / "gateway-secured.log") as url:
        yield url


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(url: str, key: str | None, **body: object) -> httpx.Response:
    payload = {"model": MODEL_NAME, "max_tokens": 4,
               "messages": [{"role": "user", "content": "hi"}], **body}  # fmt: skip
    return httpx.post(f"{url}/v1/chat/completions", json=payload,
                      headers=auth(key) if key else {}, timeout=60)  # fmt: skip


def test_v1_needs_a_valid_key_but_health_and_metrics_do_not(secured: str) -> None:
    for key in (None, "wrong-key"):
        response = chat(secured, key)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{secured}/v1/models", timeout=10).status_code == 401
    assert httpx.get(f"{secured}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{secured}/metrics", timeout=10).status_code == 200
    assert chat(secured, ADMIN).status_code == 200
    sdk = openai.OpenAI(base_url=f"{secured}/v1", api_key=ADMIN, max_retries=0)
    assert MODEL_NAME in [m.id for m in sdk.models.list()]


def _upload(url: str, key: str, name: str, text: str, tags: dict[str, str]) -> None:
    response = httpx.post(
        f"{url}/v1/documents", headers=auth(key), timeout=60,
        files={"file": (name, text.encode())},
        data={"collection": "shared", "tags": json.dumps(tags)},
    )  # fmt: skip
    assert response.status_code == 200, response.text


def test_a_tenant_key_never_retrieves_another_tenants_chunks(secured: str) -> None:
    _upload(secured, ADMIN, "b.txt", "Tenant B's vault code is ORCHID-5513.", {"tenant": "b"})
    _upload(secured, TENANT_A, "a.txt", "Tenant A's vault code is LUPIN-2208.", {})
    attempts = [
        {"collection": "shared"},
        {"collection": "shared", "filter": {"tags": ["tenant=b"]}},
        {"collection": "shared", "filter": {"doc_id": "b.txt"}},
        {"collection": "shared", "mode": "sparse", "top_k": 50},
    ]
    for rag in attempts:
        question = [{"role": "user", "content": "What is the vault code?"}]
        response = chat(secured, TENANT_A, rag=rag, messages=question)
        assert response.status_code == 200, response.text
        texts = [s["text"] for s in response.json()["sources"]]
        assert all("ORCHID" not in t for t in texts), rag
    search = httpx.post(f"{secured}/v1/search", headers=auth(TENANT_A), timeout=30,
                        json={"query": "ORCHID-5513 vault code", "collection": "shared",
                              "filter": {"tags": ["tenant=b"]}})  # fmt: skip
    assert all("ORCHID" not in r["text"] for r in search.json()["results"])
    admin = chat(secured, ADMIN, rag={"collection": "shared", "mode": "sparse"},
                 messages=[{"role": "user", "content": "ORCHID-5513 vault code"}])  # fmt: skip
    assert any("ORCHID" in s["text"] for s in admin.json()["sources"])


def test_a_key_cannot_reach_a_collection_it_was_not_given(secured: str) -> None:
    response = chat(secured, TENANT_A, rag={"collection": "private"})
    assert response.status_code == 403
    assert response.json()["error"]["param"] == "rag.collection"
    listed = httpx.get(f"{secured}/v1/collections", headers=auth(TENANT_A), timeout=10).json()
    assert {c["name"] for c in listed["data"]} <= {"shared", "docs"}


def test_requests_per_minute_gives_429_with_retry_after(secured: str) -> None:
    statuses = [chat(secured, LIMITED).status_code for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    refused = chat(secured, LIMITED)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert chat(secured, ADMIN).status_code == 200  # other keys are unaffected


def test_body_limit_is_413_even_when_chunked_and_non_json_is_415(secured: str) -> None:
    big = chat(secured, ADMIN, messages=[{"role": "user", "content": "x" * 30000}])
    assert big.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(50):
            yield b"y" * 1000
        yield b'"}]}'

    chunked = httpx.post(f"{secured}/v1/chat/completions", content=chunks(), timeout=30,
                         headers={**auth(ADMIN), "content-type": "application/json"})  # fmt: skip
    assert chunked.status_code == 413
    assert chunked.json()["error"]["type"] == "invalid_request_error"
    text = httpx.post(f"{secured}/v1/chat/completions", content=b"hello", timeout=30,
                      headers={**auth(ADMIN), "content-type": "text/plain"})  # fmt: skip
    assert text.status_code == 415


def test_input_token_limit_is_a_400_naming_messages(secured: str) -> None:
    long = chat(secured, ADMIN, messages=[{"role": "user", "content": "tide gauge " * 200}])
    assert long.status_code == 400
    error = long.json()["error"]
    assert error["param"] == "messages" and error["code"] == "context_length_exceeded"
    assert chat(secured, ADMIN).status_code == 200


def test_concurrent_streams_per_key_are_bounded(secured: str) -> None:
    body = {"model": MODEL_NAME, "stream": True, "max_tokens": 300, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Write a long poem."}]}  # fmt: skip
    with httpx.stream("POST", f"{secured}/v1/chat/completions", json=body, timeout=60,
                      headers=auth(SINGLE)) as held:  # fmt: skip
        assert held.status_code == 200
        lines = held.iter_lines()  # kept: dropping it mid-way makes httpx close the stream
        next(lines)  # the stream is open and counted
        second = chat(secured, SINGLE)
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "rate_limit_exceeded"
        assert second.headers["retry-after"] == "1"
        assert chat(secured, ADMIN).status_code == 200  # the server as a whole is not full
    # Closing the stream frees the slot (the engine request is aborted with it).
    deadline = time.monotonic() + 5
    while (status := chat(secured, SINGLE).status_code) == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200
