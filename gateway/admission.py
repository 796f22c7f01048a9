"""Admission control: concurrency per key and in all, requests per minute per key.

A request over the global concurrency limit waits in a bounded queue for a slot; a full
queue, a slow queue, or a key over its own limits gets 429 with ``Retry-After``.
``LocalAdmission`` keeps the state in this process; ``gateway.admission_redis`` keeps it in
Redis so that several gateway replicas share one set of limits.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio

from gateway.auth import ApiKey
from gateway.errors import APIError


class RateLimited(APIError):
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}


@dataclass(frozen=True)
class Limits:
    max_concurrent: int = 256
    queue_size: int = 512
    queue_timeout_s: float = 10.0


class Slot:
    """A held admission; ``release`` is idempotent (streams release from several paths).

    Synchronous on purpose: it runs in ``finally`` blocks of cancelled requests, where an
    ``await`` would be cancelled again; a backend needing I/O schedules it itself.
    """

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._on_release = on_release
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._on_release()


class Admission(Protocol):
    @property
    def active(self) -> int:
        """Slots held through this process."""
        ...

    async def admit(self, key: ApiKey | None) -> Slot: ...

    async def aclose(self) -> None: ...


class LocalAdmission:
    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._active = 0
        self._waiting = 0
        self._per_key: dict[str, int] = defaultdict(int)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._freed = anyio.Event()

    @property
    def active(self) -> int:
        return self._active

    async def admit(self, key: ApiKey | None) -> Slot:
        name = key.name if key else ""
        if key is not None:
            self._check_rate(key)
            if key.max_concurrent_streams is not None and (
                self._per_key[name] >= key.max_concurrent_streams
            ):
                raise RateLimited(
                    f"this API key already has {key.max_concurrent_streams} requests in flight",
                    retry_after=1,
                )
        if self._active >= self._limits.max_concurrent:
            await self._wait_for_slot()
        self._active += 1
        self._per_key[name] += 1
        return Slot(lambda: self._release(name))

    async def aclose(self) -> None:
        pass

    def _check_rate(self, key: ApiKey) -> None:
        if key.requests_per_minute is None:
            return
        now = time.monotonic()
        window = self._recent[key.name]
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= key.requests_per_minute:
            raise RateLimited(
                f"this API key is limited to {key.requests_per_minute} requests per minute",
                retry_after=60.0 - (now - window[0]),
            )
        window.append(now)

    async def _wait_for_slot(self) -> None:
        if self._waiting >= self._limits.queue_size:
            raise RateLimited("the server is at capacity; try again shortly", retry_after=1)
        self._waiting += 1
        try:
            with anyio.fail_after(self._limits.queue_timeout_s):
                while self._active >= self._limits.max_concurrent:
                    await self._freed.wait()
        except TimeoutError:
            raise RateLimited(
                "the server is at capacity; try again shortly", retry_after=1
            ) from None
        finally:
            self._waiting -= 1

    def _release(self, name: str) -> None:
        self._active -= 1
        self._per_key[name] -= 1
        # Wake every waiter; those that lose the race wait on the next event.
        freed, self._freed = self._freed, anyio.Event()
        freed.set()
