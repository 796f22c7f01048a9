"""Follow-up turns of a RAG chat reuse vLLM's prefix cache, and the usage says so.

The passages (with their per-request nonce) go in the last user turn only, after the system
prompt and the conversation so far, so turn k+1's prompt starts with turn k's prompt up to
its last user message: the engine finds those blocks cached and reports them as
``usage.prompt_tokens_details.cached_tokens``, which the gateway passes through.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest

from gateway.rag.prompt import DEFAULT_SYSTEM_PROMPT
from tests.conftest import MODEL_NAME

pytestmark = pytest.mark.engine

FIRST_ANSWER_TOKENS = 96  # with the system prompt and the question: past a 128-token block
# The engine must answer every turn, even where a gateway keeps an answer cache.
NO_STORE = {"Cache-Control": "no-store"}


def block_size(engine_url: str) -> int:
    """The engine's KV block: prefix caching reuses whole blocks only (128 on vLLM's CPU
    build, 16 on GPUs)."""
    page = httpx.get(f"{engine_url}/metrics", timeout=30).text
    found = re.search(r'^vllm:cache_config_info\{.*?\bblock_size="(\d+)"', page, re.M)
    assert found, "the engine's /metrics has no cache_config_info"
    return int(found.group(1))


def rendered_tokens(engine_url: str, messages: list[dict[str, str]]) -> int:
    """Tokens of ``messages`` as the chat template renders them, no generation prompt."""
    body = {"model": MODEL_NAME, "messages": messages, "add_generation_prompt": False}
    response = httpx.post(f"{engine_url}/tokenize", json=body, timeout=60)
    response.raise_for_status()
    return int(response.json()["count"])


def cached(usage: dict[str, Any]) -> int:
    details = usage.get("prompt_tokens_details")
    assert details is not None, (
        "no prompt_tokens_details in the usage: the engine was started without "
        "--enable-prompt-tokens-details (llm/launcher.py adds it)"
    )
    return int(details["cached_tokens"])


def chat(gateway_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One RAG chat turn, streamed with usage; returns the answer text and the usage."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    text, usage = "", None
    with httpx.stream(
        "POST", f"{gateway_url}/v1/chat/completions", json=body, headers=NO_STORE, timeout=300
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            for choice in chunk.get("choices") or []:
                text += choice["delta"].get("content") or ""
            usage = chunk.get("usage") or usage
    assert usage is not None, "no usage chunk though include_usage was asked"
    return text, usage


def test_a_follow_up_turn_reuses_the_conversation_before_the_passages(
    gateway_url: str, engine_url: str
) -> None:
    # A salt of this test's own: no earlier request (or earlier run) shares its cache.
    common = {"model": "docs", "temperature": 0, "cache_salt": f"test-{uuid.uuid4()}"}
    u1 = {"role": "user", "content": "What does error HX-7731 mean?"}
    forced = {"max_tokens": FIRST_ANSWER_TOKENS, "min_tokens": FIRST_ANSWER_TOKENS,
              "ignore_eos": True}  # fmt: skip
    a1_text, usage1 = chat(gateway_url, {**common, **forced, "messages": [u1]})
    assert cached(usage1) == 0  # a cold cache: the figure is real, not a constant

    a1 = {"role": "assistant", "content": a1_text}
    u2 = {"role": "user", "content": "How do I fix it on a collector node?"}
    a2_text, _ = chat(gateway_url, {**common, "max_tokens": 8, "messages": [u1, a1, u2]})

    # Turn 3 starts as turn 2's prompt did, up to turn 2's last user message: the system
    # prompt, u1, a1. Every whole block of that must come from the cache.
    history = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, u1, a1]
    block = block_size(engine_url)
    reusable = rendered_tokens(engine_url, history) // block * block
    assert reusable >= block, "the shared history is shorter than one block: lengthen a1"

    a2 = {"role": "assistant", "content": a2_text}
    u3 = {"role": "user", "content": "And what causes the clock skew?"}
    turn3 = {**common, "max_tokens": 4, "messages": [u1, a1, u2, a2, u3]}
    _, usage3 = chat(gateway_url, turn3)
    assert reusable <= cached(usage3) < usage3["prompt_tokens"]

    # A whole (non-streamed) answer carries the engine's figure too.
    whole = httpx.post(
        f"{gateway_url}/v1/chat/completions", json=turn3, headers=NO_STORE, timeout=300
    )
    assert whole.status_code == 200, whole.text
    usage = whole.json()["usage"]
    assert reusable <= cached(usage) < usage["prompt_tokens"]
