"""OpenTelemetry spans from a real gateway process to a loopback OTLP/HTTP receiver."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from tests.conftest import MODEL_NAME
from tests.support.otlp_collector import ReceivedSpan, otlp_collector
from tests.support.processes import gateway_process

pytestmark = pytest.mark.engine

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def wait_for(spans: list[ReceivedSpan], name: str, timeout: float = 20.0) -> ReceivedSpan:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for span in list(spans):
            if span.name == name:
                return span
        time.sleep(0.1)
    raise AssertionError(f"no span {name!r}; got {sorted({s.name for s in spans})}")


def test_a_rag_chat_is_one_trace_with_a_span_per_stage(
    engine_url: str, seeded_store: Path, artifacts_dir: Path, tmp_path: Path
) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(seeded_store, store)  # the session's gateway holds the original
    with otlp_collector() as collector:
        env = {
            "RAGSERVE_ENGINE_URLS": engine_url,
            "RAGSERVE_QDRANT_PATH": str(store),
            "RAGSERVE_OTLP_ENDPOINT": collector.url,
            "RAGSERVE_OTEL_SERVICE_NAME": "ragserve-test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not the default 5 s
        }
        with gateway_process(env, artifacts_dir / "gateway-tracing.log") as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            stream = client.chat.completions.create(
                model="docs",
                messages=[{"role": "user", "content": "What is Halcyon?"}],
                max_tokens=8,
                stream=True,
                extra_headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
            )
            assert any(chunk.choices for chunk in stream)
            root = wait_for(collector.spans, "POST /v1/chat/completions")
            engine = wait_for(collector.spans, "vllm chat")

    # The request continues the caller's trace; every stage hangs under the request span.
    assert (root.trace_id, root.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert root.service == "ragserve-test"
    assert root.attributes["http.route"] == "/v1/chat/completions"
    assert root.attributes["http.response.status_code"] == 200
    assert {"preprocess", "engine_first_token"} <= set(root.events)
    stages = {s.name: s for s in collector.spans if s.trace_id == CALLER_TRACE}
    for name in ("embed", "search", "prompt", "vllm chat"):
        assert stages[name].parent_span_id == root.span_id, name
    assert engine.attributes["gen_ai.request.model"] == MODEL_NAME
    assert engine.attributes["ragserve.finished"] is True
