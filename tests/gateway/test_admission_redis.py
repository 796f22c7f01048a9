"""Admission limits shared through a real Redis server: leases, waiting, rates, fallback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
import redis

from gateway.admission import Limits, RateLimited
from gateway.admission_redis import RedisAdmission
from gateway.auth import ApiKey, digest
from tests.support.processes import free_port
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def redis_url(artifacts_dir: Path) -> Iterator[str]:
    with redis_server(artifacts_dir / "redis-admission.log") as url:
        yield url


@pytest.fixture
async def replicas(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[
    tuple[RedisAdmission, RedisAdmission]
]:  # fmt: skip
    """Two replicas' admission controllers over one Redis, under a prefix of their own."""
    limits = Limits(max_concurrent=2, queue_size=4, queue_timeout_s=3.0)
    prefix = f"test-{request.node.name}"
    a = RedisAdmission.from_url(redis_url, limits, prefix=prefix, lease_s=1.0, poll_s=0.02)
    b = RedisAdmission.from_url(redis_url, limits, prefix=prefix, lease_s=1.0, poll_s=0.02)
    yield a, b
    await a.aclose()
    await b.aclose()


def key(name: str, **limits: int) -> ApiKey:
    return ApiKey(name=name, sha256=digest(name), **limits)


async def test_the_global_limit_is_shared_and_a_waiter_gets_the_freed_slot(
    replicas: tuple[RedisAdmission, RedisAdmission],
) -> None:
    a, b = replicas
    first, second = await a.admit(None), await a.admit(None)
    admitted: list[str] = []

    async def wait_on_b() -> None:
        slot = await b.admit(None)
        admitted.append("b")
        slot.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_on_b)
        await anyio.sleep(0.3)
        assert admitted == []  # replica b waits: a holds both slots
        first.release()
    assert admitted == ["b"]
    second.release()


async def test_a_full_queue_wait_ends_in_429(
    replicas: tuple[RedisAdmission, RedisAdmission],
) -> None:
    a, b = replicas
    held = [await a.admit(None), await a.admit(None)]
    with pytest.raises(RateLimited) as refused:
        with anyio.fail_after(10):
            await b.admit(None)  # waits queue_timeout_s (3 s) for a slot, then gives up
    assert refused.value.code == "rate_limit_exceeded"
    assert refused.value.headers["Retry-After"] == "1"
    for slot in held:
        slot.release()


async def test_a_dead_replicas_slots_free_up_when_their_leases_run_out(
    replicas: tuple[RedisAdmission, RedisAdmission],
) -> None:
    a, b = replicas
    await a.admit(None)
    await a.admit(None)
    # Replica a keeps renewing: after twice the lease time its slots are still held.
    await anyio.sleep(2.0)
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.5):
            await b.admit(None)
    # Replica a dies without releasing (no renewals, no release calls).
    assert a._renewer is not None
    a._renewer.cancel()
    a._held.clear()
    with anyio.fail_after(10):  # the leases (1 s) run out, then b gets a slot (a bound)
        slot = await b.admit(None)
    slot.release()


async def test_per_key_streams_and_requests_per_minute_count_across_replicas(
    replicas: tuple[RedisAdmission, RedisAdmission],
) -> None:
    a, b = replicas
    single = key("single", max_concurrent_streams=1)
    slot = await a.admit(single)
    with pytest.raises(RateLimited, match="1 requests in flight"):
        await b.admit(single)
    slot.release()
    await anyio.sleep(0.1)  # the release reaches Redis in the background
    (await b.admit(single)).release()

    rated = key("rated", requests_per_minute=3)
    for replica in (a, b, a):
        (await replica.admit(rated)).release()
    with pytest.raises(RateLimited, match="3 requests per minute") as refused:
        await b.admit(rated)
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60


async def test_an_unreachable_redis_falls_back_to_this_replicas_own_limits() -> None:
    errors: list[int] = []
    dead = RedisAdmission.from_url(
        f"redis://127.0.0.1:{free_port()}/0",
        Limits(max_concurrent=1, queue_size=0, queue_timeout_s=0.1),
        on_backend_error=lambda: errors.append(1),
    )
    try:
        slot = await dead.admit(None)
        assert dead.active == 1 and errors == [1]
        with pytest.raises(RateLimited):  # the local limit (1) still applies
            await dead.admit(None)
        slot.release()
        assert dead.active == 0
    finally:
        await dead.aclose()


@pytest.mark.engine
def test_two_gateway_processes_share_one_keys_limits(
    engine_url: str, redis_url: str, artifacts_dir: Path
) -> None:
    import json

    import httpx

    from tests.conftest import MODEL_NAME
    from tests.support.processes import gateway_process

    secret = "shared-limits-secret"
    keys = [{"name": "shared", "sha256": digest(secret), "max_concurrent_streams": 1,
             "requests_per_minute": 4}]  # fmt: skip
    env = {
        "RAGSERVE_ENGINE_URLS": engine_url,
        "RAGSERVE_API_KEYS": json.dumps(keys),
        "RAGSERVE_REDIS_URL": redis_url,
        "RAGSERVE_REDIS_PREFIX": "two-gateways",
        "RAGSERVE_SAMPLES_ON_FIRST_START": "false",
    }
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "Count to fifty."}],
            "rag": {"enabled": False}}  # fmt: skip
    with (
        gateway_process(env, artifacts_dir / "gateway-redis-a.log") as a,
        gateway_process(env, artifacts_dir / "gateway-redis-b.log") as b,
        httpx.Client(timeout=60, headers=headers) as client,
    ):
        # A stream held open on replica a uses the key's one concurrent slot on both.
        with client.stream(
            "POST",
            f"{a}/v1/chat/completions",
            json={**body, "stream": True, "max_tokens": 200, "ignore_eos": True},
        ) as held:
            assert held.status_code == 200
            lines = held.iter_lines()
            assert next(lines).startswith("data:")
            refused = client.post(f"{b}/v1/chat/completions", json={**body, "max_tokens": 2})
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "rate_limit_exceeded"
            assert "Retry-After" in refused.headers
        # Closed on a: its lease leaves Redis (in the background), then b admits the key.
        leases = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 10
        while leases.zcard("{two-gateways}:leases:shared") and time.monotonic() < deadline:
            time.sleep(0.05)
        served = client.post(f"{b}/v1/chat/completions", json={**body, "max_tokens": 2})
        assert served.status_code == 200, served.text
        # Requests per minute: the stream, the refusal and the served request counted (3 of
        # 4, on both replicas together); one more gets in, the next is refused.
        one_more = client.post(f"{a}/v1/chat/completions", json={**body, "max_tokens": 2})
        assert one_more.status_code == 200, one_more.text
        over = client.post(f"{a}/v1/chat/completions", json={**body, "max_tokens": 2})
        assert over.status_code == 429 and "per minute" in over.json()["error"]["message"]
