"""Tenants do not share vLLM's prefix cache (issue 12): the gateway sets ``cache_salt``.

The salt derives from the API key's tenant, with the client's own salt inside it, so two
tenants never hit each other's cached prefixes (no time-probing of another tenant's
prompts) and no salt a client sends can equal another tenant's. Checked on the functions
that build the engine's body, then end to end: a gateway process with two keys in front of
a RECORDING upstream, a stand-in engine that keeps every body it receives (it proves what
the gateway sends, nothing about vLLM).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.auth import ApiKey, digest
from gateway.proxy import forward_body, tenant_salt
from tests.support.processes import free_port, gateway_process

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process

MODEL = "recorded"
A_SECRET, B_SECRET = "sk-salt-tenant-a-51c2", "sk-salt-tenant-b-93e7"
KEY_A = ApiKey(name="tenant-a", sha256=digest(A_SECRET))
KEY_B = ApiKey(name="tenant-b", sha256=digest(B_SECRET))
# Names without NUL: the salt's preimage joins the name and the client's salt with one.
NAMES = st.text(min_size=1, max_size=20).filter(lambda name: "\0" not in name)
SALTS = st.none() | st.text(min_size=1, max_size=40)


# --- the functions that build the engine's body --------------------------------------------


def test_tenants_get_different_salts_and_a_tenant_always_the_same() -> None:
    assert tenant_salt(KEY_A, None) != tenant_salt(KEY_B, None)
    assert tenant_salt(KEY_A, None) == tenant_salt(KEY_A, None)  # its own cache still hits


def test_a_client_cannot_send_another_tenants_salt() -> None:
    b_salt = tenant_salt(KEY_B, None)
    assert b_salt is not None
    assert tenant_salt(KEY_A, b_salt) != b_salt
    assert tenant_salt(KEY_A, "tenant-b") != b_salt


@given(a=NAMES, b=NAMES, a_salt=SALTS, b_salt=SALTS)
def test_no_client_salt_ever_reaches_another_tenants_salt(
    a: str, b: str, a_salt: str | None, b_salt: str | None
) -> None:
    if a == b:
        return
    key_a = KEY_A.model_copy(update={"name": a})
    key_b = KEY_B.model_copy(update={"name": b})
    assert tenant_salt(key_a, a_salt) != tenant_salt(key_b, b_salt)


def test_a_tenants_own_salt_partitions_its_cache_further() -> None:
    assert tenant_salt(KEY_A, "session-1") != tenant_salt(KEY_A, "session-2")
    assert tenant_salt(KEY_A, "session-1") != tenant_salt(KEY_A, None)


def test_without_keys_the_clients_salt_passes_as_sent() -> None:
    assert tenant_salt(None, "mine") == "mine"
    assert tenant_salt(None, None) is None
    assert "cache_salt" not in forward_body({"model": "m"}, engine_model="m", key=None)


def test_forward_body_replaces_the_clients_salt_and_keeps_every_other_field() -> None:
    raw: dict[str, Any] = {
        "model": "docs", "messages": [{"role": "user", "content": "hi"}], "rag": {"top_k": 2},
        "cache_salt": tenant_salt(KEY_B, None), "tools": [{"type": "function"}],
        "logprobs": True, "top_logprobs": 3, "n": 2, "ignore_eos": True, "vllm_xargs": {"x": 1},
        "stream": True, "stream_options": {"continuous_usage_stats": True},
    }  # fmt: skip
    body = forward_body(raw, engine_model="engine", key=KEY_A)
    assert body["cache_salt"] == tenant_salt(KEY_A, tenant_salt(KEY_B, None))
    assert body["model"] == "engine" and "rag" not in body
    assert body["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}
    untouched = set(raw) - {"model", "rag", "cache_salt", "stream_options"}
    assert {name: body[name] for name in untouched} == {name: raw[name] for name in untouched}


# --- end to end: a gateway process with two keys, a recording upstream ---------------------


class RecordingUpstream:
    """A stand-in engine in a thread that answers every call briefly and keeps its body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.port = free_port()
        app = Starlette(
            routes=[
                Route("/health", self._health),
                Route("/v1/models", self._models),
                Route("/v1/chat/completions", self._record, methods=["POST"]),
                Route("/v1/completions", self._record, methods=["POST"]),
                Route("/v1/responses", self._record, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _health(self, _: Request) -> JSONResponse:
        return JSONResponse({})

    async def _models(self, _: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "max_model_len": 2048}]})

    async def _record(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        if request.url.path == "/v1/responses":
            return JSONResponse({"id": "resp_1", "object": "response", "model": MODEL,
                                 "status": "completed", "output": [], "created_at": 0})  # fmt: skip
        if body.get("stream"):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"},
                                  "finish_reason": "stop"}]}  # fmt: skip
            tail = {**chunk, "choices": [], "usage": usage}
            events = [f"data: {json.dumps(c)}\n\n" for c in (chunk, tail)] + ["data: [DONE]\n\n"]
            return Response("".join(events), media_type="text/event-stream")
        if request.url.path == "/v1/completions":
            choice: dict[str, Any] = {"index": 0, "text": "ok", "finish_reason": "stop"}
            kind = "text_completion"
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": "ok"},
                      "finish_reason": "stop"}  # fmt: skip
            kind = "chat.completion"
        return JSONResponse({"id": "c", "object": kind, "created": 0, "model": MODEL,
                             "choices": [choice], "usage": usage})  # fmt: skip

    def __enter__(self) -> RecordingUpstream:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline, "the recording upstream did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    with RecordingUpstream() as recording:
        yield recording


@pytest.fixture(scope="module")
def salted_gateway(
    upstream: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    keys = [{"name": key.name, "sha256": key.sha256} for key in (KEY_A, KEY_B)]
    env = {"RAGSERVE_ENGINE_URLS": upstream.url, "RAGSERVE_API_KEYS": json.dumps(keys)}
    log = tmp_path_factory.mktemp("salt") / "gateway.log"
    with gateway_process(env, log, timeout=300) as url:
        yield url


def sent_salt(upstream: RecordingUpstream, gateway: str, secret: str, call: str,
              **extra: Any) -> str:  # fmt: skip
    """The ``cache_salt`` the engine received for one call through the gateway."""
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=secret, max_retries=0, timeout=60)
    before = len(upstream.bodies)
    with client:
        if call == "completions":
            client.completions.create(model=MODEL, prompt="hi", max_tokens=1, extra_body=extra)
        elif call == "responses":
            client.responses.create(model=MODEL, input="hi", max_output_tokens=1, extra_body=extra)
        else:
            stream = call == "chat-stream"
            answer = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=1,
                stream=stream, extra_body=extra,
            )  # fmt: skip
            if stream:
                assert list(answer)
    assert len(upstream.bodies) == before + 1
    salt = upstream.bodies[-1].get("cache_salt")
    assert isinstance(salt, str) and salt
    return salt


@pytest.mark.parametrize("call", ["chat", "chat-stream", "completions", "responses"])
def test_the_engine_gets_each_tenants_own_salt(
    upstream: RecordingUpstream, salted_gateway: str, call: str
) -> None:
    a = sent_salt(upstream, salted_gateway, A_SECRET, call)
    b = sent_salt(upstream, salted_gateway, B_SECRET, call)
    assert a != b
    assert a == tenant_salt(KEY_A, None) and b == tenant_salt(KEY_B, None)
    assert sent_salt(upstream, salted_gateway, A_SECRET, call) == a  # a tenant's cache hits
    # Tenant A names B's salt (as the engine saw it): the engine still gets A's own.
    crossed = sent_salt(upstream, salted_gateway, A_SECRET, call, cache_salt=b)
    assert crossed not in (a, b)
    assert crossed == tenant_salt(KEY_A, b)


def test_an_unknown_key_reaches_no_engine(upstream: RecordingUpstream, salted_gateway: str) -> None:
    before = len(upstream.bodies)
    answer = httpx.post(
        f"{salted_gateway}/v1/chat/completions",
        headers={"Authorization": "Bearer sk-nobody"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert answer.status_code == 401
    assert len(upstream.bodies) == before
