"""A corpus-aware cache of deterministic answers: in this process, or in Redis when the
gateway shares one.

``cacheable`` says which requests qualify, ``answer_key`` names their answer (tenant, body,
and the passages retrieved for it), and an ``AnswerCache`` keeps the answer's bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.answer_cache.key import KEY_FORMAT, answer_key, cacheable, passage_fingerprints
from gateway.answer_cache.memory import MemoryAnswerCache
from gateway.answer_cache.redis_backend import RedisAnswerCache

__all__ = [
    "KEY_FORMAT",
    "AnswerCache",
    "MemoryAnswerCache",
    "RedisAnswerCache",
    "answer_key",
    "cacheable",
    "open_answer_cache",
    "passage_fingerprints",
]


class AnswerCache(Protocol):
    """Answers by key. Never raises for a backend that is down: a miss, a dropped write."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def aclose(self) -> None: ...


def open_answer_cache(
    redis_url: str | None,
    max_bytes: int,
    ttl_s: float,
    *,
    prefix: str = "ragserve:answer:",
    on_error: Callable[[], None] | None = None,
) -> AnswerCache:
    """Redis when a URL is set (``max_bytes`` is then Redis's own ``maxmemory`` business),
    else this process's memory (``prefix`` and ``on_error`` are then unused)."""
    if redis_url is None:
        return MemoryAnswerCache(max_bytes, ttl_s)
    return RedisAnswerCache(redis_url, ttl_s, prefix, on_error=on_error)
