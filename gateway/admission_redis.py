"""Admission control shared by every gateway replica through Redis.

Each held slot is a lease: a member of a sorted set scored by its expiry time (Redis's own
clock, so replicas' clocks don't matter). Holders renew their leases in the background, so
a replica that dies frees its slots when the leases run out instead of leaking them. One Lua
script checks and takes a slot atomically; the keys share a hash tag so the script also runs
on Redis Cluster. Requests per minute are a sliding window of admission times per API key.

Waiting for a global slot polls (other replicas' releases are not signalled) and the bound
on waiters is per replica. When Redis cannot be reached the gateway falls back to its
in-process limits rather than refusing every request; the error is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.admission import Limits, LocalAdmission, RateLimited, Slot
from gateway.auth import ApiKey

log = logging.getLogger(__name__)

# KEYS: global leases, this key's leases, this key's admission times.
# ARGV: member, lease ms, global limit, key limit (-1: none), rpm (-1: none), check rate (1/0).
# Returns {verdict, retry_after_ms}: ok | rate | key | full.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, lease = ARGV[1], tonumber(ARGV[2])
local global_limit, key_limit, rpm = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if rpm >= 0 and ARGV[6] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[3]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {'rate', tonumber(oldest[2]) + 60000 - now}
  end
  redis.call('ZADD', KEYS[3], now, member)
  redis.call('PEXPIRE', KEYS[3], 61000)
end
if key_limit >= 0 and redis.call('ZCARD', KEYS[2]) >= key_limit then
  return {'key', 1000}
end
if redis.call('ZCARD', KEYS[1]) >= global_limit then
  return {'full', 0}
end
redis.call('ZADD', KEYS[1], now + lease, member)
redis.call('PEXPIRE', KEYS[1], lease * 2)
if key_limit >= 0 then
  redis.call('ZADD', KEYS[2], now + lease, member)
  redis.call('PEXPIRE', KEYS[2], lease * 2)
end
return {'ok', 0}
"""

# KEYS: global leases, key leases. ARGV: lease ms, members... Extends live leases only.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
  redis.call('ZADD', KEYS[2], 'XX', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 1
"""


@dataclass(frozen=True)
class _Lease:
    member: str
    key_name: str


class RedisAdmission:
    def __init__(
        self,
        client: aioredis.Redis,
        limits: Limits,
        *,
        prefix: str = "ragserve",
        lease_s: float = 30.0,
        poll_s: float = 0.05,
        on_backend_error: Callable[[], None] | None = None,
    ) -> None:
        self._redis = client
        self._limits = limits
        self._tag = "{" + prefix + "}"  # one hash slot for every key the scripts touch
        self._lease_ms = int(lease_s * 1000)
        self._poll_s = poll_s
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, _Lease] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._waiting = 0
        self._fallback = LocalAdmission(limits)
        self._on_backend_error = on_backend_error
        self._renewer: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, limits: Limits, **kwargs: Any) -> RedisAdmission:
        client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return cls(client, limits, **kwargs)

    @property
    def active(self) -> int:
        return len(self._held) + self._fallback.active

    def _keys(self, key_name: str) -> list[str]:
        return [
            f"{self._tag}:leases",
            f"{self._tag}:leases:{key_name}",
            f"{self._tag}:admitted:{key_name}",
        ]

    async def admit(self, key: ApiKey | None) -> Slot:
        self._ensure_renewer()
        name = key.name if key else ""
        member = uuid.uuid4().hex
        args: list[str | int] = [
            member,
            self._lease_ms,
            self._limits.max_concurrent,
            -1 if key is None or key.max_concurrent_streams is None else key.max_concurrent_streams,
            -1 if key is None or key.requests_per_minute is None else key.requests_per_minute,
        ]
        try:
            verdict, retry_ms = await self._try(name, [*args, 1])
            if verdict == "full":
                await self._wait_for_slot(name, [*args, 0])
            elif verdict != "ok":
                raise _refusal(verdict, retry_ms, key)
        except RedisError as exc:
            return await self._degrade(exc, key)
        self._held[member] = _Lease(member, name)
        return Slot(lambda: self._release(member))

    async def _try(self, name: str, args: list[str | int]) -> tuple[str, int]:
        verdict, retry_ms = await self._acquire(keys=self._keys(name), args=args)
        return (verdict.decode() if isinstance(verdict, bytes) else str(verdict)), int(retry_ms)

    async def _wait_for_slot(self, name: str, args: list[str | int]) -> None:
        if self._waiting >= self._limits.queue_size:
            raise RateLimited("the server is at capacity; try again shortly", retry_after=1)
        self._waiting += 1
        try:
            with anyio.fail_after(self._limits.queue_timeout_s):
                # Polling, not an event: the slot frees up in another process.
                while (await self._try(name, args))[0] == "full":  # noqa: ASYNC110
                    await anyio.sleep(self._poll_s)
        except TimeoutError:
            raise RateLimited(
                "the server is at capacity; try again shortly", retry_after=1
            ) from None
        finally:
            self._waiting -= 1

    async def _degrade(self, exc: RedisError, key: ApiKey | None) -> Slot:
        log.warning("redis unreachable (%s); using this replica's own limits", type(exc).__name__)
        if self._on_backend_error is not None:
            self._on_backend_error()
        return await self._fallback.admit(key)

    def _release(self, member: str) -> None:
        lease = self._held.pop(member, None)
        if lease is None:
            return
        task = asyncio.get_running_loop().create_task(self._forget(lease))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _forget(self, lease: _Lease) -> None:
        global_key, key_leases, _ = self._keys(lease.key_name)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(global_key, lease.member)
                pipe.zrem(key_leases, lease.member)
                await pipe.execute()
        except RedisError as exc:  # the lease runs out on its own
            log.warning("could not release an admission lease: %s", type(exc).__name__)

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        interval = self._lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            await self.renew()

    async def renew(self) -> None:
        """Extend every lease this replica holds (runs every third of the lease time)."""
        by_key: dict[str, list[str]] = {}
        for lease in list(self._held.values()):
            by_key.setdefault(lease.key_name, []).append(lease.member)
        for name, members in by_key.items():
            global_key, key_leases, _ = self._keys(name)
            try:
                await self._renew(keys=[global_key, key_leases], args=[self._lease_ms, *members])
            except RedisError as exc:
                log.warning("could not renew admission leases: %s", type(exc).__name__)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        for member in list(self._held):
            self._release(member)
        if self._pending:
            await asyncio.wait(self._pending, timeout=2.0)
        await self._redis.aclose()


def _refusal(verdict: str, retry_ms: int, key: ApiKey | None) -> RateLimited:
    assert key is not None  # only keys carry their own limits
    if verdict == "rate":
        return RateLimited(
            f"this API key is limited to {key.requests_per_minute} requests per minute",
            retry_after=max(retry_ms, 1) / 1000,
        )
    return RateLimited(
        f"this API key already has {key.max_concurrent_streams} requests in flight",
        retry_after=1,
    )
