"""A fake engine that replays recorded vLLM bytes: in-process gateway tests only.

It stands where the real vLLM client would (the ``Engine`` protocol) and answers each call
with bytes recorded from vLLM 0.32 (tests/fixtures/vllm/), cut into pieces where a test
says, so the gateway's own handling (framing, splits, edits, errors, drain) is tested in
milliseconds. It proves nothing about vLLM itself: the parity suite does that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from llm.types import EngineCall, EngineError

RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "vllm"
MODEL = "smollm2-135m-instruct"


def recording(name: str) -> bytes:
    return (RECORDINGS / name).read_bytes()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class Script:
    """What one streamed call answers: byte pieces, then optionally a failure or a hang."""

    chunks: list[bytes]
    fail_with: EngineError | None = None
    hang: bool = False  # after the pieces, wait until aborted or closed


class ReplayStream:
    def __init__(self, script: Script) -> None:
        self._script = script
        self._next = 0
        self._stop = anyio.Event()
        self.aborted = False
        self.closed = False
        self.held: list[str] = []
        self.complete = False  # the relay saw the last event

    def __aiter__(self) -> ReplayStream:
        return self

    async def __anext__(self) -> bytes:
        await anyio.lowlevel.checkpoint()  # a real read yields to the loop
        if self.aborted or self.closed:
            raise StopAsyncIteration
        if self._next < len(self._script.chunks):
            self._next += 1
            return self._script.chunks[self._next - 1]
        if self._script.fail_with is not None:
            raise self._script.fail_with
        if self._script.hang:
            await self._stop.wait()
        raise StopAsyncIteration

    def abort(self) -> None:
        self.aborted = True
        self._stop.set()

    def holds(self, response_id: str) -> None:
        self.held.append(response_id)

    def completed(self) -> None:
        self.complete = True

    async def aclose(self) -> None:
        self.closed = True
        self._stop.set()


@dataclass
class ReplayEngine:
    """Streams answer from ``streams`` (by path), whole answers from ``answers``."""

    streams: dict[str, Callable[[], Script]] = field(default_factory=dict)
    answers: dict[str, bytes] = field(default_factory=dict)
    refuse: EngineError | None = None  # every call refused with this, before any byte
    accept: anyio.Event | None = None  # when set, streams are accepted only once it fires
    received: list[dict[str, Any]] = field(default_factory=list)
    opened: list[ReplayStream] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)

    async def open_stream(self, call: EngineCall) -> ReplayStream:
        self.received.append(json.loads(call.body))
        if self.accept is not None:
            await self.accept.wait()
        if self.refuse is not None:
            raise self.refuse
        stream = ReplayStream(self.streams[call.path]())
        self.opened.append(stream)
        return stream

    async def request(self, call: EngineCall) -> bytes:
        self.received.append(json.loads(call.body))
        if self.refuse is not None:
            raise self.refuse
        return self.answers[call.path]

    async def forward(self, method: str, call: EngineCall) -> tuple[int, bytes]:
        """A stored response: the recorded answer when its id matches, else 404."""
        self.forwarded.append(call.path)
        stored = self.answers.get("/v1/responses")
        if stored is not None and call.affinity == json.loads(stored)["id"]:
            return 200, stored
        return 404, b'{"error": {"message": "not found"}}'

    async def list_models(self) -> list[str]:
        return [MODEL]

    async def is_ready(self) -> bool:
        return True

    async def count_chat_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        return sum(len(json.dumps(m).split()) for m in messages)  # words, not tokens

    async def count_prompt_tokens(self, model: str, prompt: str) -> int:
        return len(prompt.split())

    async def max_model_len(self, model: str) -> int | None:
        return None

    async def aclose(self) -> None:
        pass
