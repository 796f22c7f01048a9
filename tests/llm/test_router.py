"""Replica routing over a real vLLM server plus a dead address (fault injection)."""

from __future__ import annotations

import json

import anyio
import pytest

from llm.router import Router
from llm.types import EngineCall, EngineError, EngineUnavailable
from llm.vllm_client import VLLMClient
from tests.conftest import MODEL_NAME
from tests.support.processes import free_port

pytestmark = pytest.mark.engine

HI = [{"role": "user", "content": "Say hi."}]


def chat(model: str = MODEL_NAME, max_tokens: int = 4) -> EngineCall:
    body = {"model": model, "messages": HI, "max_tokens": max_tokens, "stream": True}
    return EngineCall("/v1/chat/completions", json.dumps(body).encode())


async def generate(router: Router) -> bytes:
    stream = await router.open_stream(chat())
    try:
        return b"".join([piece async for piece in stream])
    finally:
        await stream.aclose()


def test_requests_fail_over_before_the_first_token_and_the_breaker_opens(engine_url: str) -> None:
    dead = VLLMClient(f"http://127.0.0.1:{free_port()}")
    live = VLLMClient(engine_url)

    async def main() -> None:
        router = Router([dead, live], failure_threshold=3, cooldown_s=60)
        try:
            bodies = [await generate(router) for _ in range(6)]
            assert all(body.endswith(b"data: [DONE]\n\n") for body in bodies)
            dead_state, live_state = router.replicas[0].state, router.replicas[1].state
            assert dead_state.consecutive_failures >= 3
            assert dead_state.open_until > 0  # open: no longer tried
            assert live_state.outstanding == 0 and dead_state.outstanding == 0
            assert await router.list_models() == [MODEL_NAME]
        finally:
            await router.aclose()

    anyio.run(main)


def test_least_outstanding_spreads_concurrent_streams(engine_url: str) -> None:
    async def main() -> None:
        router = Router([VLLMClient(engine_url), VLLMClient(engine_url)])
        try:
            held = [await router.open_stream(chat(max_tokens=2)) for _ in range(4)]
            assert [r.state.outstanding for r in router.replicas] == [2, 2]
            for generation in held:
                await generation.aclose()
            assert [r.state.outstanding for r in router.replicas] == [0, 0]
        finally:
            await router.aclose()

    anyio.run(main)


def test_a_bad_request_is_not_retried_and_all_dead_is_unavailable(engine_url: str) -> None:
    async def main() -> None:
        router = Router([VLLMClient(engine_url)])
        with pytest.raises(EngineError) as bad:
            await router.open_stream(chat("no-such-model"))
        assert bad.value.status == 404
        assert router.replicas[0].state.consecutive_failures == 0
        await router.aclose()
        dead = Router([VLLMClient(f"http://127.0.0.1:{free_port()}")])
        with pytest.raises(EngineUnavailable):
            await dead.open_stream(chat())
        await dead.aclose()

    anyio.run(main)


def test_active_health_checks_open_a_dead_replica_without_traffic(engine_url: str) -> None:
    async def main() -> None:
        router = Router([VLLMClient(f"http://127.0.0.1:{free_port()}"), VLLMClient(engine_url)],
                        failure_threshold=3, cooldown_s=60)  # fmt: skip
        try:
            for _ in range(3):
                await router.probe()
            dead, live = router.replicas
            assert dead.state.open_until > 0 and live.state.open_until == 0
            live.state.open_until, live.state.consecutive_failures = 1.0, 3  # as if it failed
            await router.probe()
            assert live.state.open_until == 0  # healthy again: closed by the probe
        finally:
            await router.aclose()

    anyio.run(main)
