"""The gateway in-process over a replaying engine: what it forwards, what it answers.

``create_app(engine=ReplayEngine(...))`` with the real retrieval stack over a seeded
embedded store. The engine here replays recorded vLLM bytes; the parity suite
(test_parity_engine.py) proves the same features against the real vLLM.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.app import create_app
from gateway.auth import digest
from gateway.retrieval_setup import RetrievalStack, open_retrieval
from gateway.settings import Settings
from llm.types import EngineError
from tests.conftest import seed_store
from tests.support.replay_engine import MODEL, ReplayEngine, Script, pieces, recording
from tests.support.sse import sse_data

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def replay_engine() -> ReplayEngine:
    return ReplayEngine(
        streams={
            "/v1/chat/completions": lambda: Script(pieces(recording("chat.sse"), 40)),
            "/v1/completions": lambda: Script(pieces(recording("completion.sse"), 40)),
            "/v1/responses": lambda: Script(pieces(recording("response.sse"), 40)),
        },
        answers={
            "/v1/chat/completions": recording("chat.json"),
            "/v1/responses": recording("response.json"),
        },
    )


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A seeded store of this module's own (the session's is held by its gateway process),
    its retrieval stack opened once: every app below shares it."""
    path = seed_store(tmp_path_factory.mktemp("proxy-store"))
    stack = anyio.run(open_retrieval, settings_for(path))
    _STACKS[path] = stack
    yield path
    anyio.run(stack.aclose)
    del _STACKS[path]


_STACKS: dict[Path, RetrievalStack] = {}


class Gateway:
    def __init__(self, engine: ReplayEngine, settings: Settings) -> None:
        self.engine = engine
        self.app = create_app(settings, engine=engine, retrieval=_STACKS[settings.qdrant_path])

    async def __aenter__(self) -> httpx.AsyncClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gateway"
        )
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)


def settings_for(store: Path, **extra: Any) -> Settings:
    return Settings(
        engine_urls=["http://unused.invalid"],
        qdrant_path=store,
        engine_health_interval_s=0,
        **extra,
    )


def call(store: Path, engine: ReplayEngine, method: str, path: str, **kwargs: Any) -> Any:
    async def main() -> httpx.Response:
        async with Gateway(engine, settings_for(store)) as client:
            return await client.request(method, path, **kwargs)

    return anyio.run(main)


def test_unknown_fields_and_roles_pass_through_and_rag_changes_only_the_last_user_turn(
    store_path: Path,
) -> None:
    engine = replay_engine()
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    call_f = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    question = {"type": "text", "text": "What does error HX-7731 mean?"}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "What is the weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call_f]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "user", "content": [question, image]},
    ]
    body = {
        "model": "docs", "stream": True, "messages": messages, "tools": TOOLS,
        "tool_choice": "auto", "logprobs": True, "top_logprobs": 2, "n": 2, "ignore_eos": True,
        "min_tokens": 3, "logit_bias": {"42": 5}, "response_format": {"type": "json_object"},
        "vllm_xargs": {"a": 1}, "rag": {"top_k": 2},
    }  # fmt: skip
    response = call(store_path, engine, "POST", "/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    sent = engine.received[0]
    assert "rag" not in sent and sent["model"] == MODEL
    for name in ("tools", "tool_choice", "logprobs", "top_logprobs", "n", "ignore_eos",
                 "min_tokens", "logit_bias", "response_format", "vllm_xargs"):  # fmt: skip
        assert sent[name] == body[name], name
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"][1:4] == messages[:3]  # a grounding system prompt went first
    last = sent["messages"][4]["content"]
    assert last[0]["type"] == "text" and "<<<BEGIN CONTEXT" in last[0]["text"]
    assert last[1:] == messages[3]["content"]
    chunks = sse_data(response.text)
    assert chunks[0]["model"] == "docs" and chunks[0]["sources"]
    assert chunks[-1] == "[DONE]"


def test_whole_answer_gets_public_name_and_extras(store_path: Path) -> None:
    engine = replay_engine()
    body = {"model": "docs", "messages": [{"role": "user", "content": "HX-7731?"}]}
    response = call(store_path, engine, "POST", "/v1/chat/completions", json=body)
    assert response.status_code == 200
    answer = response.json()
    upstream = json.loads(recording("chat.json"))
    assert answer["model"] == "docs" and answer["sources"] and "citations" in answer
    assert answer["choices"] == upstream["choices"] and answer["usage"] == upstream["usage"]
    assert "Server-Timing" in response.headers


def test_engine_refusal_is_its_own_words_in_openai_shape(store_path: Path) -> None:
    engine = replay_engine()
    engine.refuse = EngineError("temperature must be a number", status=400, param="temperature")
    for stream in (True, False):
        body = {"model": MODEL, "stream": stream, "temperature": "x",
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        response = call(store_path, engine, "POST", "/v1/chat/completions", json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["message"] == "temperature must be a number"
        assert error["param"] == "temperature" and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400,
         "messages[0].role"),
        ({"model": MODEL, "messages": [{"role": "user"}]}, 400, "messages[0]"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "rag": {"top_k": 0}},
         400, "rag.top_k"),
    ],
)  # fmt: skip
def test_what_the_gateway_acts_on_is_still_validated(
    store_path: Path, body: dict[str, Any], status: int, param: str
) -> None:
    response = call(store_path, replay_engine(), "POST", "/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_completions_with_rag(store_path: Path) -> None:
    engine = replay_engine()
    body = {"model": "docs", "stream": True, "prompt": "Error HX-7731 means"}
    response = call(store_path, engine, "POST", "/v1/completions", json=body)
    assert response.status_code == 200
    assert engine.received[0]["prompt"].endswith("\n\nError HX-7731 means")
    chunks = sse_data(response.text)
    assert chunks[0]["sources"] and chunks[-1] == "[DONE]"
    refused = call(store_path, engine, "POST", "/v1/completions",
                   json={"model": "docs", "prompt": [1, 2, 3]})  # fmt: skip
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "prompt"


def test_responses_with_rag_and_unknown_ids(store_path: Path) -> None:
    engine = replay_engine()
    body = {"model": "docs", "stream": True, "input": "What does error HX-7731 mean?"}
    response = call(store_path, engine, "POST", "/v1/responses", json=body)
    assert response.status_code == 200
    sent = engine.received[0]
    assert sent["input"].startswith("<<<BEGIN CONTEXT") and sent["instructions"]
    assert "response.created" in response.text and '"sources"' in response.text
    missing = call(store_path, engine, "GET", "/v1/responses/resp_123")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "response_not_found"
    odd = call(store_path, engine, "POST", "/v1/responses/a%3Fb/cancel")
    assert odd.status_code == 400


def test_tenants_get_their_own_cache_salt(store_path: Path) -> None:
    keys = [
        {"name": "alpha", "sha256": digest("key-a")},
        {"name": "beta", "sha256": digest("key-b")},
    ]
    engine = replay_engine()

    async def main() -> None:
        async with Gateway(engine, settings_for(store_path, api_keys=keys)) as client:
            for secret, salt in [("key-a", None), ("key-b", None), ("key-b", "mine")]:
                body: dict[str, Any] = {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "x"}],
                }
                if salt:
                    body["cache_salt"] = salt
                auth = {"Authorization": f"Bearer {secret}"}
                response = await client.post("/v1/chat/completions", json=body, headers=auth)
                assert response.status_code == 200

    anyio.run(main)
    salts = [body["cache_salt"] for body in engine.received]
    assert len(set(salts)) == 3 and "mine" not in salts


def test_a_tenant_reaches_only_its_own_stored_responses(store_path: Path) -> None:
    keys = [
        {"name": "alpha", "sha256": digest("key-a")},
        {"name": "beta", "sha256": digest("key-b")},
    ]
    engine = replay_engine()
    stored = json.loads(recording("response.json"))["id"]
    alpha, beta = ({"Authorization": f"Bearer {k}"} for k in ("key-a", "key-b"))
    ask = {"model": MODEL, "input": "hi"}

    async def main() -> None:
        async with Gateway(engine, settings_for(store_path, api_keys=keys)) as client:
            created = await client.post("/v1/responses", json=ask, headers=alpha)
            assert created.status_code == 200
            mine = created.json()["id"]
            assert mine.startswith(stored + ".")  # tagged for alpha
            got = await client.get(f"/v1/responses/{mine}", headers=alpha)
            assert got.status_code == 200 and got.json()["id"] == mine
            assert engine.forwarded[-1] == f"/v1/responses/{stored}"  # the engine's own id
            for other in (mine, stored, f"{stored}.0123456789abcdef"):
                refused = await client.get(f"/v1/responses/{other}", headers=beta)
                assert refused.status_code == 404, other
                assert refused.json()["error"]["code"] == "response_not_found"
            follow = {**ask, "previous_response_id": mine}
            taken = await client.post("/v1/responses", json=follow, headers=beta)
            assert taken.status_code == 404
            continued = await client.post("/v1/responses", json=follow, headers=alpha)
            assert continued.status_code == 200
            assert engine.received[-1]["previous_response_id"] == stored

    anyio.run(main)
