"""The answer cache in the request flow: deterministic answers replayed, never stale.

The gateway runs in-process (``create_app``) over the real retrieval stack on an embedded
store of this module's own, whose documents the tests change through the documents API.
The engine replays recorded vLLM bytes (tests/support/replay_engine.py) and counts the
calls it gets: a hit is a request the engine never saw.
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
from gateway.auth import ApiKey, digest
from gateway.retrieval_setup import RetrievalStack, open_retrieval
from gateway.settings import Settings
from tests.support.redis_server import redis_server
from tests.support.replay_engine import ReplayEngine, Script, pieces, recording

COLLECTION = "cache-docs"
QUESTION = "At what pressure does the Zephyr valve open?"
VALVE = "The Zephyr valve opens at 40 bar and closes again below 35 bar."


def engine(cut: bool = False) -> ReplayEngine:
    raw = recording("chat.sse")
    chunks = pieces(raw[: raw.index(b'"finish_reason":"')] if cut else raw, 60)
    return ReplayEngine(
        streams={"/v1/chat/completions": lambda: Script(list(chunks))},
        answers={"/v1/chat/completions": recording("chat.json")},
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RetrievalStack]:
    path = tmp_path_factory.mktemp("answer-cache-store")
    opened = anyio.run(open_retrieval, settings(store=path))
    yield opened
    anyio.run(opened.aclose)


def settings(store: Path = Path("/unused"), **extra: Any) -> Settings:
    return Settings(
        engine_urls=["http://unused.invalid"],
        qdrant_path=store,
        engine_health_interval_s=0,
        samples_on_first_start=False,
        **extra,
    )


def chat(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": QUESTION}],
        "rag": {"collection": COLLECTION},
        "temperature": 0,
        "stream": stream,
        **extra,
    }


class Gateway:
    """One app (one gateway process, as far as the cache knows) and its engine."""

    def __init__(self, stack: RetrievalStack, replay: ReplayEngine, **extra: Any) -> None:
        self.engine = replay
        self.app = create_app(settings(**extra), engine=replay, retrieval=stack)

    async def __aenter__(self) -> httpx.AsyncClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://gateway")
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)


async def upload(client: httpx.AsyncClient, text: str, **headers: str) -> None:
    response = await client.post(
        "/v1/documents",
        files={"file": ("valve.txt", text.encode(), "text/plain")},
        data={"collection": COLLECTION, "doc_id": "valve"},
        headers=headers,
    )
    assert response.status_code == 200, response.text


def events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in response.text.split("\n")
            if line.startswith("data: {")]  # fmt: skip


def finish(response: httpx.Response) -> dict[str, Any]:
    return next(e for e in events(response) if e["choices"] and e["choices"][0]["finish_reason"])


def text(response: httpx.Response) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events(response)
                   if e["choices"])  # fmt: skip


def counts(metrics: str) -> dict[str, float]:
    out = {}
    for line in metrics.splitlines():
        if line.startswith("ragserve_answer_cache_requests_total{"):
            result = line.split('result="')[1].split('"')[0]
            out[result] = float(line.rsplit(" ", 1)[1])
    return out


def test_a_repeated_stream_is_replayed_with_cached_true(stack: RetrievalStack) -> None:
    replay = engine()

    async def main() -> None:
        async with Gateway(stack, replay) as client:
            await upload(client, VALVE)
            first = await client.post("/v1/chat/completions", json=chat())
            second = await client.post("/v1/chat/completions", json=chat())
            metrics = (await client.get("/metrics")).text
        assert first.status_code == second.status_code == 200
        assert "cached" not in finish(first) and finish(second)["cached"] is True
        assert text(second) == text(first) and text(first)
        assert events(second)[0]["sources"] == events(first)[0]["sources"]
        assert events(second)[0]["id"] != events(first)[0]["id"]  # one id, one generation
        assert counts(metrics) == {"hit": 1.0, "miss": 1.0, "bypass": 0.0}
        assert len(replay.received) == 1

    anyio.run(main)


def test_a_repeat_never_reaches_the_engine_and_a_whole_answer_replays_too(
    stack: RetrievalStack,
) -> None:
    replay = engine()

    async def main() -> None:
        async with Gateway(stack, replay) as client:
            await upload(client, VALVE)
            streams = [await client.post("/v1/chat/completions", json=chat()) for _ in range(3)]
            wholes = [await client.post("/v1/chat/completions", json=chat(stream=False))
                      for _ in range(2)]  # fmt: skip
        assert len(replay.received) == 2  # one stream, one whole answer
        assert [finish(r).get("cached") for r in streams] == [None, True, True]
        first, again = (r.json() for r in wholes)
        assert "cached" not in first and again["cached"] is True
        assert again["choices"] == first["choices"] and again["id"] != first["id"]
        assert again["sources"] == first["sources"]

    anyio.run(main)


def test_a_changed_or_deleted_source_is_a_miss(stack: RetrievalStack) -> None:
    replay = engine()

    async def main() -> None:
        async with Gateway(stack, replay) as client:
            await upload(client, VALVE)
            await client.post("/v1/chat/completions", json=chat())
            await upload(client, VALVE.replace("40 bar", "45 bar"))  # re-ingested, new text
            changed = await client.post("/v1/chat/completions", json=chat())
            deleted = await client.delete(
                "/v1/documents", params={"doc_id": "valve", "collection": COLLECTION}
            )
            assert deleted.status_code == 200
            gone = await client.post("/v1/chat/completions", json=chat())
        assert len(replay.received) == 3
        assert "cached" not in finish(changed) and "cached" not in finish(gone)
        assert "45 bar" in replay.received[1]["messages"][-1]["content"]
        assert "bar" not in replay.received[2]["messages"][-1]["content"]  # no passage left

    anyio.run(main)


def test_sampled_requests_and_cut_streams_are_never_kept(stack: RetrievalStack) -> None:
    sampled = engine()
    cut = engine(cut=True)

    async def main() -> None:
        async with Gateway(stack, sampled) as client:
            await upload(client, VALVE)
            for _ in range(2):
                await client.post("/v1/chat/completions", json=chat(temperature=0.7))
            metrics = (await client.get("/metrics")).text
        assert len(sampled.received) == 2
        assert counts(metrics)["bypass"] == 2
        async with Gateway(stack, cut) as client:
            for _ in range(2):
                response = await client.post("/v1/chat/completions", json=chat(seed=7))
                assert events(response)[-1]["error"]  # the cut is an error event
        assert len(cut.received) == 2  # the cut answer was not kept

    anyio.run(main)


def test_tenants_never_share_answers_and_a_key_can_opt_out(stack: RetrievalStack) -> None:
    keys = [ApiKey(name=name, sha256=digest(f"sk-{name}"), **extra)
            for name, extra in (("a", {}), ("b", {}), ("c", {"answer_cache": False}))]  # fmt: skip
    replay = engine()

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer sk-{name}"}

    async def main() -> None:
        async with Gateway(stack, replay, api_keys=keys) as client:
            await upload(client, VALVE, **auth("a"))
            asked = [
                await client.post("/v1/chat/completions", json=chat(), headers=auth(name))
                for name in ("a", "b", "a", "b", "c", "c")
            ]
        assert [finish(r).get("cached") for r in asked] == [None, None, True, True, None, None]
        assert len(replay.received) == 4

    anyio.run(main)


def test_cache_control_skips_the_lookup_or_the_keep(stack: RetrievalStack) -> None:
    replay = engine()

    async def main() -> None:
        async with Gateway(stack, replay) as client:
            await upload(client, VALVE)
            body = chat(seed=11)
            no_store = await client.post("/v1/chat/completions", json=body,
                                         headers={"Cache-Control": "no-store"})  # fmt: skip
            no_cache = await client.post("/v1/chat/completions", json=body,
                                         headers={"Cache-Control": "no-cache"})  # fmt: skip
            again = await client.post("/v1/chat/completions", json=body)
        assert "cached" not in finish(no_store) and "cached" not in finish(no_cache)
        assert finish(again)["cached"] is True  # no-cache still kept its fresh answer
        assert len(replay.received) == 2

    anyio.run(main)


def test_gateways_sharing_redis_share_answers(stack: RetrievalStack, tmp_path: Path) -> None:
    first, second = engine(), engine()

    async def main(url: str) -> None:
        async with Gateway(stack, first, redis_url=url) as client:
            await upload(client, VALVE)
            await client.post("/v1/chat/completions", json=chat())
        async with Gateway(stack, second, redis_url=url) as client:
            replayed = await client.post("/v1/chat/completions", json=chat())
        assert finish(replayed)["cached"] is True
        assert len(first.received) == 1 and not second.received

    with redis_server(tmp_path / "redis.log") as url:
        anyio.run(main, url)
