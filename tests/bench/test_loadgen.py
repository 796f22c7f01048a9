"""The load generator against a real server process (the synthetic upstream, for load only)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from bench.loadgen import (
    Batch,
    StreamSample,
    Target,
    cpu_seconds,
    new_client,
    parse_server_timing,
    require_loopback,
    run_batch,
    stream_chat,
)
from tests.support.processes import free_port, python_module_process

PROMPTS = ["one", "two"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("synthetic") / "upstream.log"
    args = ["--port", str(port), "--delay-ms", "1", "--model", "synthetic"]
    with python_module_process("bench.synthetic_upstream", args, log, url + "/health"):
        yield url


def one(target: Target, max_tokens: int) -> StreamSample:
    async def go() -> StreamSample:
        async with new_client(4, 30.0) as client:
            return await stream_chat(client, target, "hello", max_tokens)

    return asyncio.run(go())


def batch(
    target: Target, *, concurrency: int, requests: int, max_tokens: int, time_limit_s: float
) -> Batch:
    async def go() -> Batch:
        async with new_client(8, 30.0) as client:
            return await run_batch(
                client, target, concurrency=concurrency, requests=requests, prompts=PROMPTS,
                max_tokens=max_tokens, time_limit_s=time_limit_s,
            )  # fmt: skip

    return asyncio.run(go())


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://example.com", "https://[::2]/"])
def test_only_loopback_targets_are_loaded(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback(url)
    with pytest.raises(ValueError, match="loopback"):
        Target("x", url, "m")


def test_loopback_urls_lose_their_trailing_slash() -> None:
    assert require_loopback("http://localhost:8000/") == "http://localhost:8000"
    assert Target("x", "http://[::1]:9/", "m").base_url == "http://[::1]:9"


def test_cpu_time_of_processes_grows_as_they_work() -> None:
    me = (os.getpid(),)
    before = cpu_seconds(me)
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn CPU, not wall time
        pass
    after = cpu_seconds(me)
    assert before is not None and after is not None and after - before >= 0.1
    assert cpu_seconds(()) is None
    assert cpu_seconds((2**22 + 12345,)) is None  # no such process


def test_server_timing_header_is_read_into_stages() -> None:
    assert parse_server_timing("embed;dur=9.1, search;dur=1.0;desc=x, bare") == {
        "embed": 9.1,
        "search": 1.0,
    }


def test_a_stream_records_first_token_inter_token_time_and_usage(upstream: str) -> None:
    sample = one(Target("direct", upstream, "synthetic"), max_tokens=7)
    assert sample.ok, sample.error
    assert sample.tokens == 7 and sample.prompt_tokens is not None
    assert sample.ttft_ms is not None and sample.last_token_ms is not None
    assert 0 < sample.ttft_ms <= sample.last_token_ms <= (sample.total_ms or 0)
    assert sample.itl_ms is not None and sample.itl_ms > 0


def test_a_batch_sends_every_request_through_its_streams(upstream: str) -> None:
    result = batch(Target("direct", upstream, "synthetic"), concurrency=3, requests=7,
                   max_tokens=4, time_limit_s=60.0)  # fmt: skip
    assert len(result.samples) == 7 and result.errors == 0
    assert result.tokens == 28 and result.tokens_per_s > 0


def test_the_time_limit_cuts_a_batch_and_counts_what_it_cut(upstream: str) -> None:
    # 5000 tokens at >= 1 ms each take >= 5 s; the limit is a tenth of that.
    result = batch(Target("direct", upstream, "synthetic"), concurrency=2, requests=5,
                   max_tokens=5000, time_limit_s=0.5)  # fmt: skip
    assert result.samples == [] and result.cut_by_time_limit == 5 and result.errors == 5
    assert result.wall_s < 5


def test_failures_are_recorded_not_raised(upstream: str) -> None:
    missing = one(Target("x", f"{upstream}/nowhere", "synthetic"), max_tokens=2)
    assert missing.error is not None and missing.error.startswith("HTTP 404")
    refused = one(Target("x", f"http://127.0.0.1:{free_port()}", "m"), max_tokens=2)
    assert not refused.ok and refused.error is not None and "ConnectError" in refused.error


def test_run_batch_refuses_an_empty_batch(upstream: str) -> None:
    with pytest.raises(ValueError):
        batch(Target("x", upstream, "m"), concurrency=0, requests=1, max_tokens=1,
              time_limit_s=1.0)  # fmt: skip


def test_the_synthetic_upstream_serves_what_a_gateway_needs(upstream: str) -> None:
    models = httpx.get(f"{upstream}/v1/models").json()["data"]
    assert models[0]["id"] == "synthetic" and models[0]["max_model_len"] > 0
    count = httpx.post(f"{upstream}/tokenize", json={"messages": [{"content": "x" * 40}]})
    assert count.json()["count"] > 10
    whole = httpx.post(f"{upstream}/v1/chat/completions",
                       json={"messages": [], "max_tokens": 3}).json()  # fmt: skip
    assert whole["usage"]["completion_tokens"] == 3
    assert whole["choices"][0]["message"]["content"] == " tok" * 3
