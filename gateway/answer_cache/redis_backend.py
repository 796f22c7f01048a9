"""The answer cache in Redis, shared by every gateway replica.

A cache must never fail a request: when Redis cannot be reached a read is a miss and a
write is dropped. Each failure is counted (``on_error``); the outage is logged when it
starts and when it ends, not once a request. After a failure Redis is left alone for
``retry_after_s``, so an unreachable server costs one timeout per period, not one per
request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")


class RedisAnswerCache:
    def __init__(
        self,
        url: str,
        ttl_s: float,
        prefix: str = "ragserve:answer:",
        *,
        timeout_s: float = 1.0,
        retry_after_s: float = 5.0,
        on_error: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._prefix = prefix
        self._retry_after_s = retry_after_s
        self._on_error = on_error
        self._clock = clock
        self._down_since: float | None = None  # set while an outage lasts

    async def get(self, key: str) -> bytes | None:
        name = self._prefix + key
        value = await self._attempt("read", lambda: self._redis.get(name))
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        name = self._prefix + key
        await self._attempt("write", lambda: self._redis.set(name, value, px=self._ttl_ms))

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _attempt(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        down_since = self._down_since
        if down_since is not None and self._clock() - down_since < self._retry_after_s:
            return None
        try:
            result = await call()
        except (RedisError, OSError) as exc:
            if down_since is None:
                log.warning(
                    "answer cache: redis unreachable (%s on a %s); serving without it, "
                    "retrying every %g s", type(exc).__name__, what, self._retry_after_s,
                )  # fmt: skip
            self._down_since = self._clock()
            if self._on_error is not None:
                self._on_error()
            return None
        if down_since is not None:
            log.info("answer cache: redis reachable again")
            self._down_since = None
        return result
