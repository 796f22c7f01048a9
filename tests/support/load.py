"""Load generation and process inspection for the reliability tests and the soak run.

The client here is a raw asyncio HTTP/1.1 client on purpose: it can drop a connection at an
exact point (mid-body, before the response, after N events) and costs little CPU, so that
hundreds of streams on a 2-core machine measure the gateway rather than the load generator.
Features are proven with the real ``openai`` SDK elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from tests.support.processes import REPO, free_port, start_gateway, stop, wait_http

# ---------------------------------------------------------------- processes and their state


@dataclass
class Process:
    """A real server process under test: its base URL and PID."""

    url: str
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def connections_to(self, port: int) -> int:
        """This process's established TCP connections to ``port`` on loopback."""
        inodes = set()
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except FileNotFoundError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        count = 0
        with open(f"/proc/{self.pid}/net/tcp") as table:
            next(table)
            for row in table:
                fields = row.split()
                remote_port = int(fields[2].split(":")[1], 16)
                established = fields[3] == "01"
                count += established and remote_port == port and fields[9] in inodes
        return count

    def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-whatever, as a crashed engine does."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()


@contextmanager
def gateway(env: Mapping[str, str], log: Path, *, timeout: float = 300.0) -> Iterator[Process]:
    """A real gateway process (see ``processes.gateway_process``), with its PID."""
    port = free_port()
    popen = start_gateway({"RAGSERVE_PORT": str(port), **env}, log, port)
    process = Process(f"http://127.0.0.1:{port}", popen)
    try:
        wait_http(process.url + "/healthz", popen, timeout, log)
        yield process
    finally:
        stop(popen)


@contextmanager
def module_server(module: str, args: list[str], log: Path, ready_path: str) -> Iterator[Process]:
    """``python -m module --port N *args``, waited for at ``ready_path``."""
    port = free_port()
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), *args],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    process = Process(f"http://127.0.0.1:{port}", popen)
    try:
        wait_http(process.url + ready_path, popen, 30.0, log)
        yield process
    finally:
        stop(popen)


def metric(base_url: str, name: str, labels: str = "") -> float:
    """Sum of a Prometheus metric's samples (those whose label text contains ``labels``)."""
    total = 0.0
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(check: Any, timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until ``check()`` was true, or None if it never was within ``timeout``."""
    began = time.monotonic()
    while True:
        if check():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            return None
        time.sleep(interval)


# ---------------------------------------------------------------- a raw streaming client


def chat_body(model: str, *, max_tokens: int, prompt: str = "Tell me a long story.") -> bytes:
    return json.dumps(
        {
            "model": model,
            "stream": True,
            "max_tokens": max_tokens,
            # Exactly max_tokens: a stream's length never depends on how the model talks.
            "ignore_eos": True,
            "messages": [{"role": "user", "content": prompt}],
        }
    ).encode()


def _request_head(url: str, length: int) -> bytes:
    parts = urlparse(url)
    return (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
        "Accept: text/event-stream\r\nConnection: close\r\n\r\n"
    ).encode()


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlparse(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


def _hang_up(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    """Close the socket: a FIN, or (``reset``) an RST as a crashed client or a NAT drop."""
    if reset:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1])


@dataclass(frozen=True)
class DropPoint:
    """Where a client hangs up: ``mid_body``, ``before_response``, or after ``events`` events."""

    where: str  # "mid_body" | "before_response" | "after_events"
    events: int = 0
    reset: bool = False


async def abandon_stream(url: str, body: bytes, point: DropPoint) -> int | None:
    """Open a chat stream and hang up at ``point``; the HTTP status if one was read."""
    reader, writer = await _connect(url)
    status = None
    try:
        writer.write(_request_head(url, len(body)))
        if point.where == "mid_body":
            writer.write(body[: len(body) // 2])
            await writer.drain()
            return None
        writer.write(body)
        await writer.drain()
        if point.where == "before_response":
            await asyncio.sleep(0.05)  # the request is in the server's hands
            return None
        status = await _status(reader)
        seen = 0
        while seen < point.events:
            line = await reader.readline()
            if not line:
                break
            seen += line.startswith(b"data: ")
        return status
    finally:
        _hang_up(writer, reset=point.reset)


@dataclass
class StreamOutcome:
    status: int
    first_token_s: float | None = None  # request sent → first text delta
    error: dict[str, Any] | None = None  # an error event inside a 200 stream
    finished: bool = False  # a finish_reason then [DONE]


async def read_stream(
    url: str, body: bytes, *, abandon_after_s: float | None = None
) -> StreamOutcome:
    """One chat stream read to its end (or hung up on after ``abandon_after_s``)."""
    reader, writer = await _connect(url)
    began = time.perf_counter()
    outcome = StreamOutcome(status=0)
    try:
        writer.write(_request_head(url, len(body)) + body)
        await writer.drain()
        async with asyncio.timeout(abandon_after_s):
            outcome.status = await _status(reader)
            if outcome.status != 200:
                return outcome
            finish = None
            while line := await reader.readline():
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    outcome.finished = finish is not None and outcome.error is None
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    outcome.error = chunk["error"]
                    continue
                for choice in chunk.get("choices", []):
                    if choice["delta"].get("content") and outcome.first_token_s is None:
                        outcome.first_token_s = time.perf_counter() - began
                    finish = choice.get("finish_reason") or finish
    except TimeoutError:
        if abandon_after_s is None:
            raise
    finally:
        _hang_up(writer, reset=False)
    return outcome


# ---------------------------------------------------------------- sustained load


@dataclass
class LoadReport:
    streams: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    error_events: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # transport errors, unfinished streams
    first_token_s: list[float] = field(default_factory=list)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)  # (elapsed s, bytes)

    def percentile(self, q: float) -> float | None:
        values = sorted(self.first_token_s)
        if not values:
            return None
        return values[min(len(values) - 1, int(q / 100 * len(values)))]

    @property
    def unexpected(self) -> list[str]:
        """Everything but finished streams and admission-control 429s."""
        bad = [f"HTTP {s} x{n}" for s, n in self.statuses.items() if s not in (200, 429)]
        bad += [f"error event {e.get('code')}: {e.get('message')}" for e in self.error_events]
        return bad + self.failures

    def rss_growth(self, warm_up_s: float) -> float | None:
        """Resident memory at the end relative to the first sample after warm-up."""
        after = [rss for at, rss in self.rss_samples if at >= warm_up_s]
        if len(after) < 2:
            return None
        return after[-1] / after[0] - 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "streams": self.streams,
            "statuses": dict(self.statuses),
            "first_token_p50_s": self.percentile(50),
            "first_token_p99_s": self.percentile(99),
            "unexpected": self.unexpected[:10],
        }


async def sustained_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    seconds: float,
    watch: Process | None = None,
    sample_every_s: float = 1.0,
) -> LoadReport:
    """``concurrency`` clients, each streaming back to back until ``seconds`` have passed.

    No client starts a stream after the deadline; those running finish (bounded by the
    stream's own length). ``watch``'s resident memory is sampled meanwhile.
    """
    report = LoadReport()
    began = time.monotonic()
    deadline = began + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            try:
                outcome = await read_stream(url, body)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                report.failures.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.1)  # a refused connection must not spin
                continue
            report.streams += 1
            report.statuses[outcome.status] += 1
            if outcome.error is not None:
                report.error_events.append(outcome.error)
            elif outcome.status == 200:
                if not outcome.finished:
                    report.failures.append("a 200 stream ended without finish_reason and [DONE]")
                if outcome.first_token_s is not None:
                    report.first_token_s.append(outcome.first_token_s)
            elif outcome.status == 429:
                await asyncio.sleep(0.2)  # as a client honouring Retry-After would, roughly

    async def sample() -> None:
        assert watch is not None
        while time.monotonic() < deadline:
            report.rss_samples.append((time.monotonic() - began, watch.rss_bytes()))
            await asyncio.sleep(sample_every_s)
        report.rss_samples.append((time.monotonic() - began, watch.rss_bytes()))

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(client())
        if watch is not None:
            group.create_task(sample())
    return report


# ---------------------------------------------------------------- the load stack


SYNTHETIC_MODEL = "synthetic"


@contextmanager
def synthetic_stack(
    logs: Path, *, delay_ms: float = 20.0, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Process, Process]]:
    """bench's synthetic upstream (fast, OpenAI-compatible) and a gateway process on it."""
    args = ["--model", SYNTHETIC_MODEL, "--delay-ms", str(delay_ms)]
    log = logs / "synthetic-upstream.log"
    with module_server("bench.synthetic_upstream", args, log, "/health") as upstream:
        gateway_env = {"RAGSERVE_ENGINE_URLS": upstream.url, **(env or {})}
        with gateway(gateway_env, logs / "gateway-load.log") as gw:
            yield upstream, gw


@dataclass(frozen=True)
class Leftovers:
    """What a gateway holds when idle: compared before and after a load run."""

    active_streams: float
    tasks: float
    fds: int  # not counting pooled keep-alive connections to the upstream

    @classmethod
    def of(cls, gw: Process, upstream_port: int) -> Leftovers:
        return cls(
            active_streams=metric(gw.url, "ragserve_active_streams"),
            tasks=metric(gw.url, "ragserve_event_loop_tasks"),
            fds=gw.open_fds() - gw.connections_to(upstream_port),
        )

    def settled_back_to(self, before: Leftovers) -> bool:
        return self.active_streams == 0 and self.tasks <= before.tasks and self.fds <= before.fds


def settle(gw: Process, upstream_port: int, before: Leftovers, timeout: float) -> Leftovers:
    """The gateway's leftovers once they are back to ``before`` (or as they are at timeout)."""
    now = Leftovers.of(gw, upstream_port)
    deadline = time.monotonic() + timeout
    while not now.settled_back_to(before) and time.monotonic() < deadline:
        time.sleep(0.2)
        now = Leftovers.of(gw, upstream_port)
    return now
