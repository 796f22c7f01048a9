"""The answer cache in this process: least recently used first out, bounded in bytes."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class MemoryAnswerCache:
    """Entries live ``ttl_s`` at most; the total of keys and values stays within
    ``max_bytes`` (an answer larger than that alone is not stored)."""

    def __init__(
        self, max_bytes: int, ttl_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # key: expiry, value
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes) -> None:
        self._drop(key)
        size = _size(key, value)
        if size > self._max_bytes:
            return
        self._entries[key] = (self._clock() + self._ttl_s, value)
        self._bytes += size
        while self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= _size(key, entry[1])


def _size(key: str, value: bytes) -> int:
    return len(key) + len(value)
