"""How gateways follow engine replicas that come and go (no Ray needed)."""

from __future__ import annotations

import pytest

from llm.router import Router
from llm.vllm_client import VLLMClient
from serving import engines
from serving.engines import EngineRegistry

A, B, C = "http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003"


def test_set_urls_keeps_the_state_of_replicas_that_stay() -> None:
    router = Router([VLLMClient(A), VLLMClient(B)], failure_threshold=1)
    kept = router.replicas[1]
    router.record_failure(kept)  # B's breaker is open
    kept.state.outstanding = 2
    removed = router.set_urls([B + "/v1", C], VLLMClient)
    assert [r.url for r in router.replicas] == [B, C]
    assert router.replicas[0] is kept and kept.state.open_until and kept.state.outstanding == 2
    assert [r.url for r in removed] == [A]


def test_set_urls_may_empty_the_router_and_refill_it() -> None:
    router = Router([VLLMClient(A)])
    assert [r.url for r in router.set_urls([], VLLMClient)] == [A]
    assert router.replicas == []
    router.set_urls([C], VLLMClient)
    assert [r.url for r in router.replicas] == [C]


def test_registry_forgets_a_dead_server_at_once_and_a_silent_replica_after_the_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(engines.time, "monotonic", lambda: now[0])
    # The class itself, without Ray: @serve.deployment made it a Deployment (typed as the class).
    registry = EngineRegistry.func_or_class(ttl_s=5.0)  # type: ignore[attr-defined]
    registry.report("r1", A)
    registry.report("r2", B)
    assert registry.urls() == [A, B]
    registry.report("r1", None)  # its server exited
    assert registry.urls() == [B]
    now[0] += 6.0  # r2 stopped reporting (killed, or cut off)
    assert registry.urls() == []
    registry.report("r3", C)
    assert registry.urls() == [C]
