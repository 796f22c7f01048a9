"""Per-request stage timings, reported in ``Server-Timing`` and in the final chunk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timings:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - began) * 1000)

    def add(self, name: str, ms: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + ms

    def mark(self, name: str) -> None:
        """Record the time from request arrival to now under ``name``."""
        self.stages[name] = self.elapsed_ms()

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
