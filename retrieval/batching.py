"""Dynamic micro-batching of query embeddings across concurrent requests.

Concurrent ``await batcher.embed(text)`` calls that arrive within ``window_ms`` of each other
(at most ``max_batch`` of them) share one forward pass of the model, run in a worker thread so
the event loop never blocks. Under load that turns N small forward passes into a few large
ones; alone, a query waits at most ``window_ms`` more.

Lifecycle: no start or stop. The first ``embed`` starts a drain task on the running asyncio
loop; it runs batches while queries are pending and ends as soon as none are left, so nothing
lingers between requests, across event loops (tests), or at shutdown. Each caller waits on its
own future: a cancelled caller just stops waiting (its text is dropped if the batch has not
started yet) and the others are unaffected; an exception raised by the forward pass is set on
every future of that batch. Needs asyncio (what uvicorn and the anyio tests run on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import anyio

log = logging.getLogger("ragserve.retrieval")


class QueryEmbedder(Protocol):
    def embed_queries(self, texts: list[str]) -> list[list[float]]: ...


class QueryBatcher:
    """Embed queries one call at a time, forward-passing them in shared batches."""

    def __init__(
        self,
        embedder: QueryEmbedder,
        *,
        window_ms: float = 3.0,
        max_batch: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if window_ms < 0 or max_batch < 1:
            raise ValueError("need window_ms >= 0 and max_batch >= 1")
        self._embedder = embedder
        self.window_ms = window_ms
        self.max_batch = max_batch
        self._on_batch = on_batch
        self._pending: list[tuple[str, asyncio.Future[list[float]]]] = []
        self._full: asyncio.Event | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def embed(self, text: str) -> list[float]:
        """The normalised query vector of ``text``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[float]] = loop.create_future()
        self._pending.append((text, future))
        if len(self._pending) >= self.max_batch and self._full is not None:
            self._full.set()
        if self._drain_task is None:
            self._drain_task = loop.create_task(self._drain(), name="ragserve-query-batcher")
        return await future

    async def _drain(self) -> None:
        """Run batches until nothing is pending, then end (the next ``embed`` restarts it)."""
        batch: list[tuple[str, asyncio.Future[list[float]]]] = []
        try:
            while self._pending:
                if len(self._pending) < self.max_batch:
                    self._full = asyncio.Event()
                    try:
                        async with asyncio.timeout(self.window_ms / 1000):
                            await self._full.wait()
                    except TimeoutError:
                        pass
                    self._full = None
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                # callers cancelled while waiting for the window are not embedded
                batch = [(text, fut) for text, fut in batch if not fut.done()]
                if batch:
                    await self._run(batch)
                batch = []
        except BaseException:
            # the loop is shutting down: nobody should wait for an answer that cannot come
            for _, fut in [*batch, *self._pending]:
                fut.cancel()
            self._pending.clear()
            raise
        finally:
            self._drain_task = None

    async def _run(self, batch: list[tuple[str, asyncio.Future[list[float]]]]) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(len(batch))
            except Exception:  # a metrics hook must not fail queries
                log.exception("on_batch hook failed")
        texts = [text for text, _ in batch]
        try:
            vectors = await anyio.to_thread.run_sync(self._embedder.embed_queries, texts)
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), vector in zip(batch, vectors, strict=True):
            if not fut.done():
                fut.set_result(vector)
