"""Micro-batched query embedding: shared forward passes, per-caller results, faults, cancels."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from retrieval.batching import QueryBatcher
from retrieval.embedder import Embedder

pytestmark = pytest.mark.anyio


async def test_concurrent_callers_share_forward_passes(embedder: Embedder) -> None:
    sizes: list[int] = []
    batcher = QueryBatcher(embedder, window_ms=5, on_batch=sizes.append)
    texts = [f"question number {i} about topic {i % 5}" for i in range(32)]
    results: dict[int, list[float]] = {}

    async def ask(i: int) -> None:
        results[i] = await batcher.embed(texts[i])

    async with anyio.create_task_group() as tg:
        for i in range(32):
            tg.start_soon(ask, i)

    assert sum(sizes) == 32
    assert len(sizes) < 32
    alone = embedder.embed_queries(texts)
    for i, vector in results.items():
        assert vector == pytest.approx(alone[i], abs=1e-5)


async def test_max_batch_caps_a_forward_pass(embedder: Embedder) -> None:
    sizes: list[int] = []
    batcher = QueryBatcher(embedder, window_ms=50, max_batch=4, on_batch=sizes.append)
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(batcher.embed, f"q{i}")
    assert sum(sizes) == 10 and max(sizes) <= 4


class ScriptedEmbedder:
    """Fault injection: fails on demand, or holds the forward pass until released."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.calls: list[list[str]] = []

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        self.started.set()
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("forward pass failed")
        return [[float(len(t))] for t in texts]


async def test_a_failed_forward_pass_reaches_every_caller() -> None:
    batcher = QueryBatcher(ScriptedEmbedder(fail=True), window_ms=5)
    errors: list[BaseException] = []

    async def ask(text: str) -> None:
        try:
            await batcher.embed(text)
        except RuntimeError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(ask, f"q{i}")
    assert len(errors) == 5 and all("forward pass failed" in str(e) for e in errors)


async def test_a_cancelled_caller_does_not_break_the_others() -> None:
    scripted = ScriptedEmbedder()
    scripted.release.clear()
    batcher = QueryBatcher(scripted, window_ms=5)
    results: dict[str, list[float]] = {}

    async def ask(text: str) -> None:
        results[text] = await batcher.embed(text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "a")
        with anyio.CancelScope() as doomed:
            tg.start_soon(ask, "bb")
            # cancelled during the forward pass: the batch runs on, its answer is dropped
            async with anyio.create_task_group() as inner:
                inner.start_soon(ask, "ccc")
                await anyio.to_thread.run_sync(scripted.started.wait, 10)
                doomed.cancel()
        scripted.release.set()
    assert results == {"a": [1.0], "bb": [2.0]}

    # cancelled while waiting for the window: it is left out of the batch
    scripted.calls.clear()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "dddd")
        with anyio.move_on_after(0.001):
            await batcher.embed("eeeee")
    assert results["dddd"] == [4.0]
    assert scripted.calls == [["dddd"]]


async def test_the_batcher_idles_without_a_task(embedder: Embedder) -> None:
    batcher = QueryBatcher(embedder)
    await batcher.embed("hello")
    await anyio.lowlevel.checkpoint()
    assert batcher._drain_task is None
