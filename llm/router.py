"""Spread requests over several vLLM replicas.

Least-outstanding-requests routing; per-replica circuit breaker (open after
``failure_threshold`` consecutive failures, one half-open trial after ``cooldown_s``, an
upstream ``Retry-After`` honoured); a request that fails before its first token (unreachable,
busy, no answer in time, or a replica that dies while the request waits in its queue) is
retried on another replica, never after its first token (the client has seen text by then).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from llm.types import (
    Delta,
    EngineError,
    EngineLost,
    EngineTimeout,
    EngineUnavailable,
    Generation,
    GenerationParams,
)
from llm.vllm_client import VLLMClient, VLLMGeneration, normalise_base_url


@dataclass
class ReplicaState:
    outstanding: int = 0
    consecutive_failures: int = 0
    open_until: float = 0.0  # monotonic time; 0 = closed
    trial_in_flight: bool = False

    def available(self, now: float) -> bool:
        if self.open_until == 0.0:
            return True
        return now >= self.open_until and not self.trial_in_flight


class Replica:
    def __init__(self, client: VLLMClient) -> None:
        self.client = client
        self.state = ReplicaState()

    @property
    def url(self) -> str:
        return self.client.base_url


# Failures that say nothing about the request itself: another replica may well serve it.
_REPLICA_FAILURES = (EngineUnavailable, EngineTimeout, EngineLost)


@dataclass(frozen=True)
class ChatCall:
    model: str
    messages: list[dict[str, Any]]
    params: GenerationParams


class RoutedGeneration:
    """A generation that releases its replica slot when it ends, and moves to another
    replica if its own fails before the first token."""

    def __init__(
        self, inner: VLLMGeneration, replica: Replica, router: Router, call: ChatCall
    ) -> None:
        self._inner = inner
        self._replica = replica
        self._router = router
        self._call = call
        self._released = False
        self._iter = self._deltas()

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._iter

    async def _deltas(self) -> AsyncGenerator[Delta, None]:
        tried = {id(self._replica)}
        try:
            while True:
                started = False
                try:
                    async for delta in self._inner:
                        started = True
                        yield delta
                    return
                except _REPLICA_FAILURES as exc:
                    self._router.record_failure(self._replica)
                    if started:
                        raise
                    await self._move_on(tried, exc)
                except EngineError:
                    self._router.record_failure(self._replica)
                    raise
        finally:
            self._release()

    async def _move_on(self, tried: set[int], failure: EngineError) -> None:
        """Resubmit the call to a replica not tried yet; re-raise ``failure`` if none is left."""
        self._release()
        await self._inner.aclose()
        try:
            self._inner, self._replica = await self._router.submit(self._call, exclude=tried)
        except EngineError:
            raise failure from None
        tried.add(id(self._replica))
        self._released = False

    async def aclose(self) -> None:
        await self._iter.aclose()
        await self._inner.aclose()
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._replica.state.outstanding -= 1


class Router:
    """An ``Engine`` over several replicas of the same models."""

    def __init__(
        self,
        clients: Sequence[VLLMClient],
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 10.0,
    ) -> None:
        if not clients:
            raise ValueError("at least one engine URL is needed")
        self.replicas = [Replica(c) for c in clients]
        self._threshold = failure_threshold
        self._cooldown = cooldown_s

    def set_urls(
        self, urls: Sequence[str], make_client: Callable[[str], VLLMClient]
    ) -> list[Replica]:
        """Serve exactly ``urls`` (replicas that come and go, e.g. on Ray Serve): keep the
        replicas still listed with their state, add new ones, return the removed ones (close
        their clients once idle: streams in flight still hold them). An empty list is allowed."""
        current = {replica.url: replica for replica in self.replicas}
        wanted = dict.fromkeys(normalise_base_url(url) for url in urls)
        self.replicas = [current.get(url) or Replica(make_client(url)) for url in wanted]
        return [replica for url, replica in current.items() if url not in wanted]

    def _candidates(self) -> list[Replica]:
        now = time.monotonic()
        ready = [r for r in self.replicas if r.state.available(now)]
        return sorted(ready, key=lambda r: r.state.outstanding)

    def record_failure(self, replica: Replica, retry_after: float | None = None) -> None:
        state = replica.state
        state.consecutive_failures += 1
        state.trial_in_flight = False
        if state.consecutive_failures >= self._threshold or state.open_until:
            state.open_until = time.monotonic() + max(self._cooldown, retry_after or 0.0)

    def record_success(self, replica: Replica) -> None:
        replica.state.consecutive_failures = 0
        replica.state.open_until = 0.0
        replica.state.trial_in_flight = False

    async def start_chat(
        self, model: str, messages: list[dict[str, Any]], params: GenerationParams
    ) -> Generation:
        call = ChatCall(model, messages, params)
        inner, replica = await self.submit(call)
        return RoutedGeneration(inner, replica, self, call)

    async def submit(
        self, call: ChatCall, exclude: set[int] | frozenset[int] = frozenset()
    ) -> tuple[VLLMGeneration, Replica]:
        """Start ``call`` on the least busy available replica, trying the next on failure."""
        last_error: EngineError | None = None
        for replica in self._candidates():
            if id(replica) in exclude:
                continue
            state = replica.state
            if state.open_until:
                state.trial_in_flight = True  # half-open: this request is the trial
            state.outstanding += 1
            try:
                inner = await replica.client.start_chat(call.model, call.messages, call.params)
            except (EngineUnavailable, EngineTimeout) as exc:
                # A replica that is down, busy, or accepts and never answers.
                state.outstanding -= 1
                self.record_failure(replica, getattr(exc, "retry_after", None))
                last_error = exc
                continue  # nothing was sent to the client yet: try the next replica
            except EngineError:
                state.outstanding -= 1
                state.trial_in_flight = False
                raise  # the request itself is bad (400/404): another replica won't help
            self.record_success(replica)
            return inner, replica
        raise last_error or EngineUnavailable("every engine replica is unavailable")

    async def _first_ok(self, method: str, *args: Any) -> Any:
        last_error: EngineError | None = None
        for replica in self._candidates() or self.replicas:
            try:
                return await getattr(replica.client, method)(*args)
            except EngineUnavailable as exc:
                last_error = exc
        raise last_error or EngineUnavailable("every engine replica is unavailable")

    async def list_models(self) -> list[str]:
        models: list[str] = await self._first_ok("list_models")
        return models

    async def max_model_len(self, model: str) -> int | None:
        length: int | None = await self._first_ok("max_model_len", model)
        return length

    async def count_chat_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        count: int = await self._first_ok("count_chat_tokens", model, messages)
        return count

    async def probe(self) -> None:
        """One round of active health checks: failing replicas open, recovered ones close."""
        for replica in self.replicas:
            if await replica.client.is_ready():
                if replica.state.open_until or replica.state.consecutive_failures:
                    self.record_success(replica)
            else:
                self.record_failure(replica)

    async def run_health_checks(self, interval_s: float) -> None:
        """Probe every ``interval_s`` until cancelled (run it as a background task)."""
        while True:
            await self.probe()
            await anyio.sleep(interval_s)

    async def is_ready(self) -> bool:
        for replica in self.replicas:
            if await replica.client.is_ready():
                return True
        return False

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.client.aclose()
