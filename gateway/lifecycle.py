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
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("ragserve.lifecycle")


class Lifecycle:
    def __init__(self, drain_timeout_s: float) -> None:
        self.drain_timeout_s = drain_timeout_s
        self.draining_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: set[Callable[[], None]] = set()
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
        for on_deadline in list(self._watchers):
            on_deadline()

    def watch(self, on_deadline: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_deadline`` (once) when the drain deadline passes; returns an unwatch.

        One registration per stream, not a cancel scope per read: the callback aborts the
        stream's engine request, and the relay ends the stream with an error event.
        """
        if self.deadline_passed:
            on_deadline()
            return _nothing
        self._watchers.add(on_deadline)
        return lambda: self._watchers.discard(on_deadline)

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


def _nothing() -> None:
    pass
