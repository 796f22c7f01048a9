"""Two real vLLM servers behind one gateway; one is SIGKILLed under load.

Requests that had not received their first token when the replica died must all succeed
on the survivor (failover before the first token, including requests queued inside the
dead vLLM); requests already streaming from it get an error event in OpenAI's shape; the
breaker opens and later requests go to the survivor only.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llm.launcher import LocalEngine
from tests.conftest import MODEL_NAME, local_engine
from tests.support.processes import gateway_process

pytestmark = pytest.mark.engine

BEFORE_KILL, AFTER_KILL = 12, 6


@pytest.fixture(scope="module")
def doomed_engine(artifacts_dir: Path) -> Iterator[LocalEngine]:
    """A second vLLM server of the same model, to be killed."""
    with local_engine(artifacts_dir / "vllm-doomed.log") as engine:
        yield engine


@dataclass
class Outcome:
    status: int = 0
    first_token_at: float | None = None
    finished: bool = False
    error: dict[str, object] | None = None


def stream_chat(url: str) -> Outcome:
    outcome = Outcome()
    question = {"role": "user", "content": "Count from one to forty in words."}
    body = {"model": MODEL_NAME, "stream": True, "max_tokens": 48, "rag": {"enabled": False},
            "messages": [question]}  # fmt: skip
    with (
        httpx.Client(timeout=240) as client,
        client.stream("POST", f"{url}/v1/chat/completions", json=body) as response,
    ):
        outcome.status = response.status_code
        if response.status_code != 200:
            outcome.error = json.loads(response.read())["error"]
            return outcome
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            if "error" in chunk:
                outcome.error = chunk["error"]
                continue
            for choice in chunk.get("choices") or []:
                if choice["delta"].get("content") and outcome.first_token_at is None:
                    outcome.first_token_at = time.monotonic()
                outcome.finished = outcome.finished or choice.get("finish_reason") is not None
    return outcome


def in_flight(engine_url: str) -> float:
    text = httpx.get(f"{engine_url}/metrics", timeout=5).text
    pattern = r"^vllm:num_requests_(?:running|waiting)\{[^}]*\} ([0-9.e+]+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


def upstream_healthy(gateway_url: str, upstream: str) -> float | None:
    text = httpx.get(f"{gateway_url}/metrics", timeout=5).text
    match = re.search(
        rf'^ragserve_upstream_healthy\{{upstream="{re.escape(upstream)}"\}} ([0-9.]+)$',
        text,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else None


def seconds_until_breaker_opens(url: str, upstream: str, since: float) -> float | None:
    while time.monotonic() < since + 30:
        if upstream_healthy(url, upstream) == 0:
            return round(time.monotonic() - since, 2)
        time.sleep(0.1)
    return None


def test_killing_one_of_two_engines_under_load_fails_no_request_that_had_not_started(
    engine_url: str, doomed_engine: LocalEngine, artifacts_dir: Path
) -> None:
    doomed = doomed_engine.config.url
    env = {
        "RAGSERVE_ENGINE_URLS": f"{doomed},{engine_url}",
        "RAGSERVE_ENGINE_HEALTH_INTERVAL_S": "1",
        "RAGSERVE_SAMPLES_ON_FIRST_START": "false",
    }
    with (
        gateway_process(env, artifacts_dir / "gateway-failover.log") as url,
        ThreadPoolExecutor(BEFORE_KILL + AFTER_KILL + 1) as pool,
    ):
        before = [pool.submit(stream_chat, url) for _ in range(BEFORE_KILL)]
        deadline = time.monotonic() + 120
        while in_flight(doomed) == 0:  # least-outstanding routing sends it about half
            assert time.monotonic() < deadline, "no request reached the second engine"
            time.sleep(0.05)
        doomed_engine.kill()
        killed_at = time.monotonic()
        breaker = pool.submit(seconds_until_breaker_opens, url, doomed, killed_at)
        after = [pool.submit(stream_chat, url) for _ in range(AFTER_KILL)]
        outcomes = [f.result(timeout=300) for f in [*before, *after]]
        breaker_open_s = breaker.result(timeout=60)

    not_started = [o for o in outcomes if o.first_token_at is None or o.first_token_at > killed_at]
    cut_off = [o for o in outcomes if o not in not_started and not o.finished]
    report = {
        "requests": len(outcomes),
        "not_started_at_kill": len(not_started),
        "cut_off_mid_stream": len(cut_off),
        "breaker_open_after_s": breaker_open_s,
    }
    (artifacts_dir / "failover.json").write_text(json.dumps(report, indent=2))
    failed = [o for o in not_started if o.status != 200 or o.error or not o.finished]
    assert not failed, f"{len(failed)} requests failed that had not started: {failed[:3]}"
    for outcome in cut_off:  # streams cut off mid-way end with an OpenAI-shaped error event
        assert outcome.error is not None and {"message", "type"} <= outcome.error.keys()
    assert breaker_open_s is not None
