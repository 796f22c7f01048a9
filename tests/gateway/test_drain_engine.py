"""Graceful drain and rolling restarts, with real gateway processes and the real engine."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL_NAME
from tests.support.processes import free_port, start_gateway, wait_http

pytestmark = pytest.mark.engine


def stream_frames(url: str, max_tokens: int, frames: list[str], started: threading.Event) -> None:
    story = [{"role": "user", "content": "Write a very long story about a ship."}]
    # ignore_eos: each stream runs to max_tokens, however soon the model would stop.
    body = {"model": MODEL_NAME, "stream": True, "max_tokens": max_tokens, "ignore_eos": True,
            "messages": story}  # fmt: skip
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                frames.append(line[6:])
                started.set()


def refuses_connections(url: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/readyz", timeout=2)
        except httpx.ConnectError:
            return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def test_sigterm_lets_short_streams_finish_and_ends_long_ones_with_an_error_event(
    engine_url: str, artifacts_dir: Path
) -> None:
    port = free_port()
    # A deadline an 8-token answer meets even on a busy machine, and 1500 tokens never do
    # on a CPU engine (~100 s alone).
    env = {"RAGSERVE_ENGINE_URLS": engine_url, "RAGSERVE_DRAIN_TIMEOUT_S": "30"}
    process = start_gateway(env, artifacts_dir / "gateway-drain.log", port)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", process, 300, artifacts_dir / "gateway-drain.log")
    short: list[str] = []
    long: list[str] = []
    short_started, long_started = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=stream_frames, args=(url, 8, short, short_started)),
        threading.Thread(target=stream_frames, args=(url, 1500, long, long_started)),
    ]
    for thread in threads:
        thread.start()
    assert short_started.wait(60) and long_started.wait(60)
    began = time.monotonic()
    frames_at_signal = len(long)
    process.send_signal(signal.SIGTERM)
    assert refuses_connections(url, within_s=30)  # no new connections while draining
    for thread in threads:
        thread.join(60)
    process.wait(30)
    took = time.monotonic() - began

    assert short[-1] == "[DONE]", short[-3:]
    last_short = json.loads(short[-2])
    assert last_short["choices"][0]["finish_reason"] == "length"  # finished normally

    assert long[-1] == "[DONE]"
    error = json.loads(long[-2])["error"]
    assert error["code"] == "server_shutting_down" and error["type"] == "server_error"
    assert took >= 29.5, took  # ended at the 30 s deadline, not cut at once
    assert len(long) > frames_at_signal + 2  # it went on streaming while draining
    # Uvicorn re-raises the captured SIGTERM once shut down: a clean exit by that signal.
    assert process.returncode in (0, -signal.SIGTERM)


def test_rolling_restart_of_two_gateways_loses_no_request(
    engine_url: str, artifacts_dir: Path
) -> None:
    ports = [free_port(), free_port()]
    env = {"RAGSERVE_ENGINE_URLS": engine_url, "RAGSERVE_DRAIN_TIMEOUT_S": "20"}
    logs = [artifacts_dir / f"gateway-rolling-{i}.log" for i in range(2)]
    processes = [start_gateway(env, logs[i], ports[i]) for i in range(2)]
    for i, process in enumerate(processes):
        wait_http(f"http://127.0.0.1:{ports[i]}/healthz", process, 300, logs[i])

    results: list[str] = []
    stop = threading.Event()

    def client(offset: int) -> None:
        # A load balancer's behaviour: round-robin, and a refused connection (the request
        # never reached a server) goes to the other replica.
        turn = offset
        while not stop.is_set():
            for attempt in range(2):
                port = ports[(turn + attempt) % 2]
                try:
                    response = httpx.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60,
                        json={"model": MODEL_NAME, "max_tokens": 3,
                              "messages": [{"role": "user", "content": "hi"}]},
                    )  # fmt: skip
                except httpx.ConnectError:
                    continue
                results.append("ok" if response.status_code == 200 else str(response.status_code))
                break
            else:
                results.append("no replica")
            turn += 1

    clients = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for thread in clients:
        thread.start()
    for i in range(2):  # restart A, then B, while the clients keep asking
        time.sleep(2)
        processes[i].send_signal(signal.SIGTERM)
        assert processes[i].wait(60) in (0, -signal.SIGTERM)
        processes[i] = start_gateway(env, logs[i], ports[i])
        wait_http(f"http://127.0.0.1:{ports[i]}/healthz", processes[i], 300, logs[i])
    time.sleep(2)
    stop.set()
    for thread in clients:
        thread.join(90)
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert len(results) >= 10
    assert set(results) == {"ok"}, results
