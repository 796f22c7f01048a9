"""ragserve on Ray Serve, end to end: a local Ray (2 CPUs, loopback), deploy/ray/serve.yaml
with two gateway replicas, the retrieval deployment (real embedder, embedded store) and one
engine replica running the real CPU vLLM. One Ray instance and one vLLM for the module; the
tests run in order, the last one shuts the application down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest

from serving.launch import shutdown
from tests.conftest import seed_store
from tests.serving.conftest import Stack, ray_stack, stack_config
from tests.support.processes import free_port

pytestmark = [pytest.mark.ray, pytest.mark.engine, pytest.mark.timeout(2400)]

QUESTION = "What does error HX-7731 mean?"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[Stack]:
    store = seed_store(tmp_path_factory.mktemp("ray-store"))
    config = stack_config(store, artifacts_dir / "ray", port=free_port())
    with ray_stack(config) as running:
        yield running


def until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a replica restarting: ask again
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:g} s (last error: {last!r})")


def chat_body(max_tokens: int, *, stream: bool = True) -> dict[str, Any]:
    # ignore_eos: the test never depends on how long the model talks
    return {
        "model": "docs", "stream": stream, "max_tokens": max_tokens, "ignore_eos": True,
        "messages": [{"role": "user", "content": QUESTION}],
    }  # fmt: skip


def test_openai_sdk_streams_a_rag_answer_with_sources_through_the_ray_proxy(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", timeout=120)
    stream = client.chat.completions.create(
        model="docs",
        stream=True,
        max_tokens=12,
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    sources = (chunks[0].model_extra or {}).get("sources")
    assert sources, "the first chunk carries the sources"
    assert any("HX-7731" in source["text"] for source in sources)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


def _search(client: httpx.Client, query: str) -> list[tuple[str, float]]:
    response = client.post("/v1/search", json={"query": query, "top_k": 3, "mode": "dense"})
    assert response.status_code == 200, response.text
    return [(hit["id"], hit["score"]) for hit in response.json()["results"]]


async def _search_all(url: str, queries: list[str]) -> list[list[tuple[str, float]]]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(query: str) -> list[tuple[str, float]]:
            body = {"query": query, "top_k": 3, "mode": "dense"}
            response = await client.post("/v1/search", json=body)
            assert response.status_code == 200, response.text
            return [(hit["id"], hit["score"]) for hit in response.json()["results"]]

        return await asyncio.gather(*(one(query) for query in queries))


def test_concurrent_searches_share_embedding_batches_and_match_one_by_one(stack: Stack) -> None:
    topics = ["clock skew", "collector ingest rate", "Kittiwake", "Skarv", "retention"]
    queries = [f"{topics[i % len(topics)]} question {i}" for i in range(32)]
    retrieval = stack.handle("retrieval")
    with httpx.Client(base_url=stack.url, timeout=120) as client:
        alone = [_search(client, query) for query in queries]
    before = Counter(retrieval.batch_stats.remote().result()["sizes"])
    together = asyncio.run(_search_all(stack.url, queries))
    after = Counter(retrieval.batch_stats.remote().result()["sizes"])
    sizes = after - before  # forward passes of the concurrent round: size -> count
    assert sum(size * n for size, n in sizes.items()) == 32
    assert max(sizes) > 1, f"no shared batch: {dict(sizes)}"
    for one, shared in zip(alone, together, strict=True):
        assert [hit for hit, _ in one] == [hit for hit, _ in shared]
        assert [score for _, score in one] == pytest.approx([s for _, s in shared], abs=1e-4)


def test_ray_serve_metrics_and_ragserve_metrics_are_both_reachable(stack: Stack) -> None:
    ours = httpx.get(stack.url + "/metrics", timeout=30)
    assert ours.status_code == 200 and "ragserve_requests_total" in ours.text

    def ray_metrics() -> str | None:
        text = httpx.get(stack.metrics_url + "/metrics", timeout=10).text
        wanted = ("ray_serve_num_http_requests", "ragserve_embed_batch_size_bucket")
        return text if all(name in text for name in wanted) else None

    # Ray's agent exports what replicas report every few seconds
    until(ray_metrics, 120, "Ray's Prometheus endpoint shows Serve's and the batch metrics")


def _gateway_pids(stack: Stack, count: int, timeout_s: float) -> set[int]:
    handle = stack.handle("gateway")
    seen: set[int] = set()

    def enough() -> set[int] | None:
        seen.add(handle.replica_pid.remote().result(timeout_s=10))
        return seen if len(seen) >= count else None

    result: set[int] = until(enough, timeout_s, f"{count} gateway replicas answer")
    return result


def test_a_killed_gateway_replica_comes_back_and_a_retrying_client_is_answered(
    stack: Stack,
) -> None:
    victim = min(_gateway_pids(stack, 2, 60))
    os.kill(victim, signal.SIGKILL)

    def answered() -> bool:
        body = chat_body(4, stream=False)
        response = httpx.post(stack.url + "/v1/chat/completions", json=body, timeout=60)
        return response.status_code == 200 and bool(response.json()["choices"])

    until(answered, 120, "a retrying client gets an answer")

    def replaced() -> bool:
        pids = _gateway_pids(stack, 2, 60)
        status = stack_status("gateway")
        return victim not in pids and status.get("RUNNING") == 2

    until(replaced, 300, "Ray restarts the killed gateway replica")


def stack_status(deployment: str) -> dict[str, int]:
    from ray import serve

    app = serve.status().applications["ragserve"]
    return {str(k): v for k, v in app.deployments[deployment].replica_states.items()}


async def _stream(url: str, body: dict[str, Any], started: asyncio.Event | None) -> str:
    """One streamed chat: 'done', or how it failed ('error event', 'status 503', ...)."""
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(60, read=60)) as client:
        try:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    return f"status {response.status_code}"
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if line == "data: [DONE]":
                        return "done"
                    event = json.loads(line[6:])
                    if "error" in event:
                        return "error event"
                    if started is not None and any(
                        (c.get("delta") or {}).get("content") for c in event.get("choices", [])
                    ):
                        started.set()
        except httpx.HTTPError as exc:
            return f"transport {type(exc).__name__}"
    return "cut"


async def _retrying(url: str, body: dict[str, Any], deadline: float) -> tuple[str, int]:
    """Retry a streamed chat until it completes or the deadline passes; (outcome, attempts)."""
    attempts = 0
    outcome = "never tried"
    while time.monotonic() < deadline:
        attempts += 1
        outcome = await asyncio.wait_for(_stream(url, body, None), 120)
        if outcome == "done":
            break
        await asyncio.sleep(1.0)
    return outcome, attempts


def test_killing_the_engine_mid_load_ends_every_request_and_ray_restarts_it(
    stack: Stack,
) -> None:
    engine = stack.handle("engine")
    before = engine.info.remote().result(timeout_s=30)

    async def scenario() -> tuple[list[str], list[tuple[str, int]]]:
        events = [asyncio.Event() for _ in range(4)]
        streaming = [
            asyncio.create_task(_stream(stack.url, chat_body(1000), event)) for event in events
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 300)
        os.killpg(int(before["pid"]), signal.SIGKILL)  # the server and its engine core
        deadline = time.monotonic() + 1500  # a restart on a busy machine (see conftest)
        waiting = [
            asyncio.create_task(_retrying(stack.url, chat_body(8), deadline)) for _ in range(4)
        ]
        # none hangs: streams cut mid-answer end within the token-gap bound, not never
        cut = await asyncio.wait_for(asyncio.gather(*streaming), 120)
        retried = await asyncio.wait_for(asyncio.gather(*waiting), 1600)
        return cut, retried

    cut, retried = asyncio.run(scenario())
    assert all(outcome != "done" for outcome in cut), cut  # they had 1,000 tokens to go
    assert [outcome for outcome, _ in retried] == ["done"] * 4, retried
    after = engine.info.remote().result(timeout_s=30)
    assert after["pid"] != before["pid"] and after["replica"] != before["replica"]


def test_shutdown_leaves_no_vllm_process(stack: Stack) -> None:
    info = stack.handle("engine").info.remote().result(timeout_s=30)
    server = psutil.Process(int(info["pid"]))
    family = [server, *server.children(recursive=True)]
    shutdown()

    def all_gone() -> bool:
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family)

    until(all_gone, 60, "the vLLM server and its engine core exit")
    port = info["url"].rsplit(":", 1)[1]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        assert not ("vllm.entrypoints" in cmdline and f"--port {port}" in cmdline), cmdline
