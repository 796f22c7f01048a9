"""The answer cache as a request uses it: whether this request may read or write it,
lookups counted in the metrics, finished answers kept after the client has them."""

from __future__ import annotations

import enum
import logging

from gateway.answer_cache import AnswerCache
from gateway.answer_cache.streams import MAX_ANSWER_BYTES, RecordingStream
from gateway.metrics import Metrics
from llm.types import EventStream

log = logging.getLogger("ragserve.answer_cache")


class CacheUse(enum.Enum):
    """What a request lets the cache do, from its ``Cache-Control`` header (HTTP's words)."""

    READ_WRITE = "read-write"
    WRITE = "write"  # no-cache: answer afresh, keep the new answer
    NONE = "none"  # no-store: neither read nor keep

    @classmethod
    def from_header(cls, value: str | None) -> CacheUse:
        directives = {d.strip().lower() for d in (value or "").split(",")}
        if "no-store" in directives:
            return cls.NONE
        if "no-cache" in directives:
            return cls.WRITE
        return cls.READ_WRITE


class Answers:
    """Lookups and keeps for one gateway; ``cache`` None turns the feature off."""

    def __init__(self, cache: AnswerCache | None, metrics: Metrics) -> None:
        self._cache = cache
        self._counts = metrics.answer_cache_requests

    async def lookup(self, key: str | None, use: CacheUse) -> bytes | None:
        """The kept answer for ``key``, if this request may read one; every call counted."""
        if self._cache is None:
            return None
        if key is None or use is not CacheUse.READ_WRITE:
            self._counts.labels("bypass").inc()
            return None
        answer = await self._cache.get(key)
        self._counts.labels("hit" if answer is not None else "miss").inc()
        return answer

    def recording(self, stream: EventStream, key: str | None, use: CacheUse) -> EventStream:
        """``stream`` as is, or recorded when its answer may be kept."""
        if self._cache is None or key is None or use is CacheUse.NONE:
            return stream
        return RecordingStream(stream, key)

    async def keep_stream(self, stream: EventStream | None) -> None:
        if isinstance(stream, RecordingStream) and stream.answer is not None:
            await self.keep(stream.key, stream.answer)

    async def keep(self, key: str | None, answer: bytes, use: CacheUse = CacheUse.READ_WRITE,
                   ) -> None:  # fmt: skip
        if self._cache is None or key is None or use is CacheUse.NONE:
            return
        if len(answer) <= MAX_ANSWER_BYTES:
            await self._cache.put(key, answer)

    async def aclose(self) -> None:
        if self._cache is not None:
            await self._cache.aclose()
