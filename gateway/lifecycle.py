"""Graceful drain: on SIGTERM, stop taking work, let streams finish, then end them cleanly.

Uvicorn stops accepting connections on SIGTERM and waits for open ones. This adds what it
cannot know: ``/readyz`` turns 503 at once (load balancers stop sending), and streams still
running at the drain deadline end with an error event and ``[DONE]`` instead of a cut
connection. Requests that got in just before the listener closed are served, not refused.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType
from typing import Any

import anyio

log = logging.getLogger("ragserve.lifecycle")


class Lifecycle:
    def __init__(self, drain_timeout_s: float) -> None:
        self.drain_timeout_s = drain_timeout_s
        self.draining_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: set[anyio.CancelScope] = set()
        self.deadline_passed = False

    @property
    def draining(self) -> bool:
        return self.draining_since is not None

    def seconds_left(self) -> float | None:
        """Until in-flight streams are ended; None while not draining."""
        if self.draining_since is None:
            return None
        return max(0.0, self.draining_since + self.drain_timeout_s - time.monotonic())

    def begin_drain(self) -> None:
        """Start draining (safe from a signal handler); streams end at the deadline."""
        if self.draining_since is not None:
            return
        self.draining_since = time.monotonic()
        log.info("draining", extra={"deadline_s": self.drain_timeout_s})
        if self._loop is not None:
            self._loop.call_soon_threadsafe(
                self._loop.call_later, self.drain_timeout_s, self._end_streams
            )

    def _end_streams(self) -> None:
        self.deadline_passed = True
        for scope in list(self._streams):
            scope.cancel()

    def stream_scope(self) -> anyio.CancelScope:
        """A scope the drain deadline cancels; ``release`` it when the wait is over."""
        scope = anyio.CancelScope()
        if self.deadline_passed:
            scope.cancel()
        self._streams.add(scope)
        return scope

    def release(self, scope: anyio.CancelScope) -> None:
        self._streams.discard(scope)

    def install(self) -> None:
        """Chain a SIGTERM/SIGINT handler in front of the server's own (call in the loop)."""
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                self.begin_drain()
                if callable(previous):
                    previous(signum, frame)

            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. an embedded test server)
                return
