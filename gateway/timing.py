"""Per-request stage timings, reported in ``Server-Timing``, in the final chunk and, when
tracing is on, as spans under the request's span."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from gateway.tracing import record_stage, tracer


class Timings:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            with tracer.start_as_current_span(name):
                yield
        finally:
            self._add(name, (time.perf_counter() - began) * 1000)

    def add(self, name: str, ms: float) -> None:
        """A stage measured elsewhere: it ended just now and took ``ms``."""
        self._add(name, ms)
        record_stage(name, ms)

    def _add(self, name: str, ms: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + ms

    def mark(self, name: str) -> None:
        """Record the time from request arrival to now under ``name``."""
        self.stages[name] = self.elapsed_ms()
        trace.get_current_span().add_event(name)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def header(self, *, total: bool = True) -> str:
        stages = dict(self.stages)
        if total:
            stages["total"] = self.elapsed_ms()
        return ", ".join(f"{name};dur={ms:.1f}" for name, ms in stages.items())

    def as_dict(self) -> dict[str, float]:
        return {
            name: round(ms, 1) for name, ms in {**self.stages, "total": self.elapsed_ms()}.items()
        }
