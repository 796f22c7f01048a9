"""The engine streams the answer cache stands in for: one replayed from memory, and one
that records what the engine sends so a finished answer can be kept."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

from llm.types import EventStream

# A recording stops (and the answer is not kept) past this size: the cache holds answers,
# not novels, and Redis has no per-entry limit of its own.
MAX_ANSWER_BYTES = 4 * 1024 * 1024

_ID = re.compile(rb'"id": ?"((chatcmpl|cmpl)-[^"]+)"')


def with_fresh_id(answer: bytes) -> bytes:
    """The recorded answer under a new completion id: ids name one generation, and a
    client may rely on them being unique."""
    found = _ID.search(answer)
    if found is None:
        return answer
    old, prefix = found.group(1), found.group(2)
    return answer.replace(old, b"%s-%s" % (prefix, uuid.uuid4().hex.encode()))


class CachedStream:
    """A recorded answer served as if the engine streamed it, in one piece."""

    def __init__(self, answer: bytes) -> None:
        self._answer: bytes | None = with_fresh_id(answer)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._answer is None:
            raise StopAsyncIteration
        answer, self._answer = self._answer, None
        return answer

    def abort(self) -> None:
        self._answer = None

    def holds(self, response_id: str) -> None:
        """Nothing is stored engine-side for a replay."""

    def completed(self) -> None:
        """A replay has nothing to release."""

    async def aclose(self) -> None:
        self._answer = None


class RecordingStream:
    """The engine's stream, passed through as is, its bytes kept until it finishes."""

    def __init__(self, inner: EventStream, key: str) -> None:
        self._inner = inner
        self._iter = inner.__aiter__()
        self.key = key
        self._recorded = bytearray()
        self._overflow = False
        self.finished = False  # the reader saw the last event: the answer is whole

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        data = await self._iter.__anext__()
        if not self._overflow:
            self._recorded += data
            self._overflow = len(self._recorded) > MAX_ANSWER_BYTES
        return data

    @property
    def answer(self) -> bytes | None:
        """The whole answer, if it finished and fit."""
        return bytes(self._recorded) if self.finished and not self._overflow else None

    def abort(self) -> None:
        self._inner.abort()

    def holds(self, response_id: str) -> None:
        self._inner.holds(response_id)

    def completed(self) -> None:
        self.finished = True
        self._inner.completed()

    async def aclose(self) -> None:
        await self._inner.aclose()
