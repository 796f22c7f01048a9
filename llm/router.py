"""Spread requests over several vLLM replicas.

Least-outstanding-requests routing; per-replica circuit breaker (open after
``failure_threshold`` consecutive failures, one half-open trial after ``cooldown_s``, an
upstream ``Retry-After`` honoured); a request that fails before its first byte reached the
gateway (unreachable, busy, no answer in time, or a replica that dies while the request
waits in its queue) is retried on another replica, never after (the client may have seen
text by then). Stored responses (Responses API) are served by the replica that holds them.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio

from llm.types import (
    EngineCall,
    EngineError,
    EngineLost,
    EngineTimeout,
    EngineUnavailable,
)
from llm.vllm_client import VLLMClient, VLLMStream, normalise_base_url


class ReplicaState:
    __slots__ = ("consecutive_failures", "open_until", "outstanding", "trial_in_flight")

    def __init__(self) -> None:
        self.outstanding = 0
        self.consecutive_failures = 0
        self.open_until = 0.0  # monotonic time; 0 = closed
        self.trial_in_flight = False

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
_AFFINITY_ENTRIES = 10_000


class RoutedStream:
    """A stream that releases its replica slot when it ends, and moves to another replica
    if its own fails before the first byte."""

    def __init__(self, inner: VLLMStream, replica: Replica, router: Router, call: EngineCall):
        self._inner = inner
        self._replica = replica
        self._router = router
        self._call = call
        self._released = False
        self._started = False
        self._tried = {id(replica)}

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while True:
            try:
                data = await self._inner.__anext__()
            except StopAsyncIteration:
                self._release()
                raise
            except _REPLICA_FAILURES as exc:
                self._router.record_failure(self._replica)
                if self._started:
                    self._release()
                    raise
                await self._move_on(exc)
                continue
            except EngineError:
                self._router.record_failure(self._replica)
                self._release()
                raise
            self._started = True
            return data

    async def _move_on(self, failure: EngineError) -> None:
        """Resubmit the call to a replica not tried yet; re-raise ``failure`` if none is left."""
        self._release()
        await self._inner.aclose()
        try:
            self._inner, self._replica = await self._router.submit(self._call, exclude=self._tried)
        except EngineError:
            raise failure from None
        self._tried.add(id(self._replica))
        self._released = False

    def abort(self) -> None:
        self._inner.abort()

    def holds(self, response_id: str) -> None:
        self._router.note_holder(response_id, self._replica)

    def completed(self) -> None:
        self._inner.completed()

    async def aclose(self) -> None:
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
        # Stored response id -> the replica that holds it (bounded; probing finds the rest).
        self._holders: OrderedDict[str, Replica] = OrderedDict()

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

    async def open_stream(self, call: EngineCall) -> RoutedStream:
        inner, replica = await self.submit(call)
        return RoutedStream(inner, replica, self, call)

    async def submit(
        self, call: EngineCall, exclude: set[int] | frozenset[int] = frozenset()
    ) -> tuple[VLLMStream, Replica]:
        """Start ``call`` on the least busy available replica, trying the next on failure."""
        last_error: EngineError | None = None
        for replica in await self._route(call):
            if id(replica) in exclude:
                continue
            state = replica.state
            if state.open_until:
                state.trial_in_flight = True  # half-open: this request is the trial
            state.outstanding += 1
            try:
                inner = await replica.client.open_stream(call)
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

    async def request(self, call: EngineCall) -> bytes:
        """A non-streamed call, moved to another replica if its own fails before answering."""
        last_error: EngineError | None = None
        for replica in await self._route(call):
            state = replica.state
            state.outstanding += 1
            try:
                body = await replica.client.request(call)
            except _REPLICA_FAILURES as exc:
                self.record_failure(replica, getattr(exc, "retry_after", None))
                last_error = exc
                continue
            finally:
                state.outstanding -= 1
            self.record_success(replica)
            self.remember_holder(body, replica)
            return body
        raise last_error or EngineUnavailable("every engine replica is unavailable")

    async def forward(self, method: str, call: EngineCall) -> tuple[int, bytes]:
        """A call about a stored response goes to its holder; others to the first that answers."""
        last_error: EngineError | None = None
        for replica in await self._route(call):
            try:
                status, body = await replica.client.forward(method, call)
            except EngineUnavailable as exc:
                last_error = exc
                continue
            if call.affinity is None or status != 404:
                return status, body
        if call.affinity is not None and last_error is None:
            return 404, b""
        raise last_error or EngineUnavailable("every engine replica is unavailable")

    def remember_holder(self, body: bytes | dict[str, Any], replica: Replica) -> None:
        """Note which replica holds a stored response (from its JSON body)."""
        try:
            parsed = json.loads(body) if isinstance(body, bytes) else body
        except (json.JSONDecodeError, UnicodeDecodeError):
            return
        if isinstance(parsed, dict) and parsed.get("object") == "response":
            self.note_holder(str(parsed.get("id")), replica)

    def note_holder(self, response_id: str, replica: Replica) -> None:
        self._holders[response_id] = replica
        self._holders.move_to_end(response_id)
        while len(self._holders) > _AFFINITY_ENTRIES:
            self._holders.popitem(last=False)

    async def _route(self, call: EngineCall) -> list[Replica]:
        """Replicas in the order to try: a stored response's holder alone, else least busy."""
        if call.affinity is None or len(self.replicas) == 1:
            return self._candidates()
        holder = self._holders.get(call.affinity) or await self._find_holder(call.affinity)
        return [holder] if holder is not None else self._candidates()

    async def _find_holder(self, response_id: str) -> Replica | None:
        # Another gateway process (or one that restarted) may have created it: ask around.
        for replica in self.replicas:
            try:
                status, _ = await replica.client.forward(
                    "GET", EngineCall(f"/v1/responses/{response_id}", b"")
                )
            except EngineError:
                continue
            if status == 200:
                self.note_holder(response_id, replica)
                return replica
        return None

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

    async def count_prompt_tokens(self, model: str, prompt: str) -> int:
        count: int = await self._first_ok("count_prompt_tokens", model, prompt)
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
