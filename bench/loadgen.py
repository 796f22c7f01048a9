"""The bounded load generator every bench script uses: streamed chats against one target.

A batch sends ``requests`` streamed chat completions through ``concurrency`` workers
(closed loop: a worker sends its next request when its stream ends), stopped by a time
limit. Each stream records its first-token time, its mean inter-token time, its tokens
and its error, if any. Loopback targets only: this is a tool for one's own machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def require_loopback(url: str) -> str:
    """``url`` without a trailing slash; ``ValueError`` unless it names this machine."""
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"refusing to load {url}: benchmarks target loopback addresses only")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class Target:
    """Something that serves OpenAI chat completions, and how to ask it."""

    name: str
    base_url: str
    model: str
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    # The server processes behind it that this run started: their CPU time is measured.
    pids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", require_loopback(self.base_url))

    def body(self, prompt: str, max_tokens: int) -> dict[str, Any]:
        # temperature 0: every target generates the same tokens for the same prompt, so
        # targets in front of one engine do identical work.
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream_options": {"include_usage": True},
            **self.extra_body,
        }


@dataclass(slots=True)
class StreamSample:
    """One streamed request, as the client saw it (times in ms from sending it)."""

    ttft_ms: float | None = None  # the first non-empty content delta
    last_token_ms: float | None = None
    total_ms: float | None = None  # until the body ended
    tokens: int = 0  # the usage's completion tokens; content chunks if none was sent
    prompt_tokens: int | None = None
    error: str | None = None
    server_timing: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.ttft_ms is not None

    @property
    def itl_ms(self) -> float | None:
        """Mean time between tokens after the first (what vLLM's bench calls TPOT).

        Per stream rather than per chunk: a server that merges chunks under load does not
        look faster for it.
        """
        if not self.ok or self.tokens < 2 or self.last_token_ms is None or self.ttft_ms is None:
            return None
        return (self.last_token_ms - self.ttft_ms) / (self.tokens - 1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Batch:
    """``requests`` streams against one target at one concurrency level."""

    target: str
    concurrency: int
    round: int
    requests: int
    samples: list[StreamSample]
    wall_s: float
    cut_by_time_limit: int = 0  # requests in flight or never sent when time ran out
    server_cpu_s: float | None = None  # CPU time the target's own processes used meanwhile

    @property
    def tokens(self) -> int:
        return sum(sample.tokens for sample in self.samples if sample.ok)

    @property
    def tokens_per_s(self) -> float:
        """Output tokens per second of the whole batch: the throughput the clients got."""
        return self.tokens / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def errors(self) -> int:
        return sum(not sample.ok for sample in self.samples) + self.cut_by_time_limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "round": self.round,
            "requests": self.requests,
            "wall_s": self.wall_s,
            "cut_by_time_limit": self.cut_by_time_limit,
            "server_cpu_s": self.server_cpu_s,
            "samples": [sample.as_dict() for sample in self.samples],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        return cls(
            target=data["target"],
            concurrency=data["concurrency"],
            round=data["round"],
            requests=data["requests"],
            wall_s=data["wall_s"],
            cut_by_time_limit=data.get("cut_by_time_limit", 0),
            server_cpu_s=data.get("server_cpu_s"),
            samples=[StreamSample(**sample) for sample in data["samples"]],
        )


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """User + system CPU time of these processes (all their threads) so far; Linux only.

    Wall-clock overhead on a busy machine is noisy; the CPU a proxy burns per request is
    not, so the report shows both.
    """
    if not pids:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def parse_server_timing(header: str) -> dict[str, float]:
    """``embed;dur=9.1, search;dur=1.0`` → ``{"embed": 9.1, "search": 1.0}``."""
    stages = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            stages[name] = float(duration.split(";")[0])
    return stages


def _elapsed_ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000


async def stream_chat(
    client: httpx.AsyncClient, target: Target, prompt: str, max_tokens: int
) -> StreamSample:
    """Send one streamed chat and read it to the end; failures land in ``error``."""
    sample = StreamSample()
    chunks = 0
    began = time.perf_counter()
    try:
        url = f"{target.base_url}/v1/chat/completions"
        request = target.body(prompt, max_tokens)
        # Deterministic repeats are what the gateway's answer cache replays: measure the engine.
        headers = {"Cache-Control": "no-store"}
        async with client.stream("POST", url, json=request, headers=headers) as response:
            if response.status_code != 200:
                body = (await response.aread()).decode("utf-8", "replace")
                sample.error = f"HTTP {response.status_code}: {body[:300]}"
                return sample
            if "server-timing" in response.headers:
                sample.server_timing = parse_server_timing(response.headers["server-timing"])
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    sample.error = f"error event: {str(chunk['error'])[:300]}"
                    continue
                if usage := chunk.get("usage"):
                    sample.tokens = int(usage.get("completion_tokens") or 0)
                    sample.prompt_tokens = usage.get("prompt_tokens")
                choices = chunk.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    sample.last_token_ms = _elapsed_ms(began)
                    if sample.ttft_ms is None:
                        sample.ttft_ms = sample.last_token_ms
                    chunks += 1
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"[:300]
    sample.total_ms = _elapsed_ms(began)
    if sample.tokens == 0:
        sample.tokens = chunks
    if sample.error is None and sample.ttft_ms is None:
        sample.error = "the stream ended without a token"
    return sample


def new_client(max_streams: int, read_timeout_s: float) -> httpx.AsyncClient:
    """One pooled client per target for a whole run, as an application would keep one."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=10.0, read=read_timeout_s, write=30.0, pool=None),
        limits=httpx.Limits(max_connections=max_streams, max_keepalive_connections=max_streams),
    )


async def run_batch(
    client: httpx.AsyncClient,
    target: Target,
    *,
    concurrency: int,
    requests: int,
    prompts: Sequence[str],
    max_tokens: int,
    time_limit_s: float,
    round_: int = 0,
) -> Batch:
    """``requests`` streams, ``concurrency`` at a time, prompts taken in turn.

    When ``time_limit_s`` runs out, the streams in flight are cancelled and counted, with
    the ones never sent, in ``cut_by_time_limit``.
    """
    if concurrency < 1 or requests < 1 or not prompts:
        raise ValueError("a batch needs concurrency >= 1, requests >= 1 and a prompt")
    samples: list[StreamSample] = []
    indices = itertools.count()

    async def worker() -> None:
        while (index := next(indices)) < requests:
            prompt = prompts[index % len(prompts)]
            samples.append(await stream_chat(client, target, prompt, max_tokens))

    cpu_before = cpu_seconds(target.pids)
    began = time.perf_counter()
    try:
        async with asyncio.timeout(time_limit_s):
            await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
    except TimeoutError:
        pass
    wall_s = time.perf_counter() - began
    cpu_after = cpu_seconds(target.pids)
    return Batch(
        target=target.name,
        concurrency=concurrency,
        round=round_,
        requests=requests,
        samples=samples,
        wall_s=wall_s,
        cut_by_time_limit=requests - len(samples),
        server_cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    )
