"""The answer cache: which requests qualify, what the key covers, and both backends (this
process's memory with an injected clock, and a real redis-server)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway.answer_cache import (
    MemoryAnswerCache,
    RedisAnswerCache,
    answer_key,
    cacheable,
    open_answer_cache,
    passage_fingerprints,
)
from gateway.metrics import Metrics
from tests.support.processes import free_port
from tests.support.redis_server import redis_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(chunk_id: str, text: str, **shown: Any) -> dict[str, Any]:
    """A source as the RAG pipeline reports it (gateway.rag.pipeline._source)."""
    fields = {"id": 1, "title": "Guide", "source": "guide.md", "page": None, "section": None,
              "doc_id": "d1", "chunk_id": chunk_id, "score": 0.9, "text": text}  # fmt: skip
    return {**fields, **shown}


BODY: dict[str, Any] = {
    "model": "smollm2-135m-instruct",
    "messages": [{"role": "user", "content": "How do I rotate keys?"}],
    "temperature": 0,
    "max_tokens": 64,
    "rag": {"top_k": 3},
}
SOURCES = [source("c1", "Rotate keys monthly."), source("c2", "Use the CLI.")]


def key_for(
    *,
    tenant: str = "acme",
    path: str = "/v1/chat/completions",
    raw: dict[str, Any] = BODY,
    sources: list[dict[str, Any]] = SOURCES,
    engine_model: str = "",
) -> str:
    return answer_key(tenant=tenant, path=path, raw=raw, passages=passage_fingerprints(sources),
                      engine_model=engine_model)  # fmt: skip


# --- which requests qualify ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0}, True),
        ({"temperature": 0, "n": 3}, True),  # n identical answers
        ({"temperature": 0, "logprobs": True, "top_logprobs": 2}, True),
        ({"temperature": 0.7, "seed": 42}, True),  # reproducible samples
        ({"seed": 0}, True),
        ({}, False),  # the model's default temperature, usually sampled
        ({"temperature": 0.7}, False),
        ({"temperature": None}, False),
        ({"temperature": False}, False),  # JSON false is not 0
        ({"temperature": "0"}, False),
        ({"seed": True}, False),
        ({"seed": 1.5}, False),
        ({"seed": None, "temperature": 1}, False),
    ],
)
def test_only_deterministic_requests_are_cacheable(extra: dict[str, Any], expected: bool) -> None:
    raw = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    assert cacheable(raw) is expected


# --- what the key covers ------------------------------------------------------------------


def test_the_key_is_a_sha256_and_stable() -> None:
    key = key_for()
    assert len(key) == 64 and int(key, 16) >= 0
    assert key_for() == key


def test_the_order_of_json_keys_does_not_matter() -> None:
    reordered = dict(reversed(list(BODY.items())))
    reordered["rag"] = {"top_k": 3}
    assert list(reordered) != list(BODY)
    assert key_for(raw=reordered) == key_for()


def test_a_changed_passage_text_changes_the_key() -> None:
    edited = [SOURCES[0], source("c2", "Use the CLI, or the API.")]
    assert key_for(sources=edited) != key_for()


def test_a_changed_chunk_id_changes_the_key() -> None:
    moved = [SOURCES[0], source("c9", "Use the CLI.")]
    assert key_for(sources=moved) != key_for()


def test_what_the_prompt_shows_of_a_passage_is_in_the_key() -> None:
    for shown in ({"title": "Other"}, {"source": "other.md"}, {"page": 3}):
        assert key_for(sources=[SOURCES[0], source("c2", "Use the CLI.", **shown)]) != key_for()
    # What the prompt does not show (the score) leaves the key as it was.
    assert key_for(sources=[SOURCES[0], source("c2", "Use the CLI.", score=0.1)]) == key_for()


def test_passage_order_and_a_deleted_passage_change_the_key() -> None:
    assert key_for(sources=list(reversed(SOURCES))) != key_for()
    assert key_for(sources=SOURCES[:1]) != key_for()
    assert key_for(sources=[]) != key_for()


def test_tenant_path_and_engine_model_change_the_key() -> None:
    assert key_for(tenant="globex") != key_for()
    assert key_for(path="/v1/completions") != key_for()
    assert key_for(engine_model="other-model") != key_for()


@pytest.mark.parametrize(
    "change",
    [
        {"max_tokens": 65},
        {"temperature": 0.0},  # 0 and 0.0 are different bodies: a miss, never a wrong hit
        {"top_p": 0.5},
        {"seed": 7},
        {"stream": True},  # a stream's recorded bytes are not a whole answer
        {"rag": {"top_k": 4}},
        {"messages": [{"role": "user", "content": "How do I rotate key?"}]},
    ],
)
def test_any_change_to_the_body_changes_the_key(change: dict[str, Any]) -> None:
    assert key_for(raw={**BODY, **change}) != key_for()


def test_parts_cannot_shift_into_each_other() -> None:
    # The same characters split differently between tenant and chunk id must not collide.
    a = answer_key(tenant="ab", path="/p", raw={}, passages=[("c", "h")])
    b = answer_key(tenant="a", path="b/p", raw={}, passages=[("c", "h")])
    c = answer_key(tenant="ab", path="/p", raw={}, passages=[("ch", "")])
    assert len({a, b, c}) == 3


def test_a_lone_surrogate_in_a_body_still_makes_a_key() -> None:
    assert key_for(raw={**BODY, "user": "\ud800"}) != key_for()


# --- this process's memory ----------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_memory_evicts_the_least_recently_used_by_bytes() -> None:
    # Each entry: a 1-character key and a 9-byte value, 10 bytes; room for three.
    cache = MemoryAnswerCache(max_bytes=30, ttl_s=60, clock=Clock())
    for name in "abc":
        await cache.put(name, b"x" * 9)
    assert cache.size_bytes == 30
    assert await cache.get("a") == b"x" * 9  # a is now the most recently used
    await cache.put("d", b"y" * 9)
    assert await cache.get("b") is None  # b was the least recently used
    assert [await cache.get(n) for n in "acd"] == [b"x" * 9, b"x" * 9, b"y" * 9]
    # A large entry pushes out as many as it needs.
    await cache.put("e", b"z" * 19)
    assert len(cache) == 2 and cache.size_bytes == 30
    assert await cache.get("d") == b"y" * 9 and await cache.get("e") == b"z" * 19


@pytest.mark.anyio
async def test_memory_skips_an_entry_larger_than_the_whole_budget() -> None:
    cache = MemoryAnswerCache(max_bytes=30, ttl_s=60, clock=Clock())
    await cache.put("a", b"x" * 9)
    await cache.put("big", b"x" * 28)
    assert await cache.get("big") is None
    assert await cache.get("a") == b"x" * 9  # nothing was evicted for it


@pytest.mark.anyio
async def test_memory_replacing_an_entry_counts_its_bytes_once() -> None:
    cache = MemoryAnswerCache(max_bytes=100, ttl_s=60, clock=Clock())
    await cache.put("a", b"x" * 9)
    await cache.put("a", b"y" * 19)
    assert len(cache) == 1 and cache.size_bytes == 20
    assert await cache.get("a") == b"y" * 19


@pytest.mark.anyio
async def test_memory_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = MemoryAnswerCache(max_bytes=100, ttl_s=60, clock=clock)
    await cache.put("a", b"answer")
    clock.now += 59.9
    assert await cache.get("a") == b"answer"  # a read does not extend the ttl
    clock.now += 0.1
    assert await cache.get("a") is None
    assert len(cache) == 0 and cache.size_bytes == 0


@pytest.mark.anyio
async def test_without_a_redis_url_the_cache_is_in_memory() -> None:
    cache = open_answer_cache(None, max_bytes=1000, ttl_s=60)
    assert isinstance(cache, MemoryAnswerCache)
    await cache.put("k", b"v")
    assert await cache.get("k") == b"v"
    await cache.aclose()


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(artifacts_dir: Path) -> Iterator[str]:
    with redis_server(artifacts_dir / "redis-answer-cache.log") as url:
        yield url


@pytest.fixture
async def shared(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[
    RedisAnswerCache
]:  # fmt: skip
    cache = open_answer_cache(redis_url, max_bytes=0, ttl_s=30,
                              prefix=f"test-{request.node.name}:")  # fmt: skip
    assert isinstance(cache, RedisAnswerCache)
    yield cache
    await cache.aclose()


@pytest.mark.anyio
async def test_redis_stores_answers_with_an_expiry(
    shared: RedisAnswerCache, redis_url: str, request: pytest.FixtureRequest
) -> None:
    key = key_for()
    assert await shared.get(key) is None
    answer = b'data: {"choices":[]}\n\ndata: [DONE]\n\n'
    await shared.put(key, answer)
    assert await shared.get(key) == answer
    direct = redis.Redis.from_url(redis_url)
    try:
        ttl_ms = direct.pttl(f"test-{request.node.name}:{key}")
        assert isinstance(ttl_ms, int) and 0 < ttl_ms <= 30_000
    finally:
        direct.close()


@pytest.mark.anyio
async def test_two_replicas_share_answers(shared: RedisAnswerCache, redis_url: str) -> None:
    other = RedisAnswerCache(redis_url, ttl_s=30, prefix=shared._prefix)
    try:
        await shared.put("k", b"v")
        assert await other.get("k") == b"v"
    finally:
        await other.aclose()


@pytest.mark.anyio
async def test_an_unreachable_redis_is_a_miss_and_a_dropped_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    dead = RedisAnswerCache(
        f"redis://127.0.0.1:{free_port()}/0",
        ttl_s=30,
        retry_after_s=0,  # every call tries
        on_error=metrics.answer_cache_errors.inc,
    )
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.answer_cache"):
            assert await dead.get("k") is None
            await dead.put("k", b"v")
            assert await dead.get("k") is None
    finally:
        await dead.aclose()
    assert metrics.registry.get_sample_value("ragserve_answer_cache_errors_total") == 3
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # once an outage, not once a request


@pytest.mark.anyio
async def test_after_a_failure_redis_is_left_alone_for_a_while() -> None:
    clock = Clock()
    errors: list[int] = []
    dead = RedisAnswerCache(
        f"redis://127.0.0.1:{free_port()}/0",
        ttl_s=30,
        retry_after_s=5,
        on_error=lambda: errors.append(1),
        clock=clock,
    )
    try:
        assert await dead.get("k") is None
        assert errors == [1]
        clock.now += 4.9
        await dead.put("k", b"v")
        assert await dead.get("k") is None
        assert errors == [1]  # not tried
        clock.now += 0.1
        assert await dead.get("k") is None
        assert errors == [1, 1]  # tried again, failed again
    finally:
        await dead.aclose()


@pytest.mark.anyio
async def test_a_redis_that_comes_back_is_used_again(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    errors: list[int] = []
    cache = RedisAnswerCache(redis_url, ttl_s=30, prefix="test-comes-back:", retry_after_s=5,
                             on_error=lambda: errors.append(1), clock=clock)  # fmt: skip
    real_get = cache._redis.get

    async def failing_get(name: str) -> bytes | None:
        raise redis.ConnectionError("connection refused")

    try:
        await cache.put("k", b"v")
        cache._redis.get = failing_get  # type: ignore[method-assign,assignment]
        with caplog.at_level(logging.INFO, logger="gateway.answer_cache"):
            assert await cache.get("k") is None
            cache._redis.get = real_get  # type: ignore[method-assign]
            clock.now += 5
            assert await cache.get("k") == b"v"
        assert errors == [1]
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await cache.aclose()


def test_metrics_export_every_result_from_zero() -> None:
    metrics = Metrics()
    for result in ("hit", "miss", "bypass"):
        value = metrics.registry.get_sample_value(
            "ragserve_answer_cache_requests_total", {"result": result}
        )
        assert value == 0.0
