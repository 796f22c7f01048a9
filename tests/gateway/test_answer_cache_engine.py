"""The answer cache against the real vLLM, through the `openai` SDK: a repeated
deterministic RAG question is answered from the cache, word for word, in the same shape."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.processes import gateway_process

pytestmark = pytest.mark.engine

QUESTION: list[Any] = [{"role": "user", "content": "What does error HX-7731 mean?"}]


def test_a_repeated_question_is_answered_from_the_cache(
    engine_url: str, seeded_store: Path, artifacts_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(seeded_store, store)  # the session's gateway holds the original
    env = {"RAGSERVE_ENGINE_URLS": engine_url, "RAGSERVE_QDRANT_PATH": str(store)}
    with gateway_process(env, artifacts_dir / "gateway-answer-cache.log") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)

        def ask() -> tuple[str, dict[str, Any], dict[str, Any]]:
            stream = client.chat.completions.create(
                model="docs", messages=QUESTION, max_tokens=12, temperature=0, stream=True,
                extra_body={"min_tokens": 12},
            )  # fmt: skip
            chunks = [chunk.model_dump() for chunk in stream]
            text = "".join(c["choices"][0]["delta"].get("content") or ""
                           for c in chunks if c["choices"])  # fmt: skip
            final = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
            return text, chunks[0], final

        text, first, final = ask()
        again, first_again, final_again = ask()
        whole = client.chat.completions.create(
            model="docs", messages=QUESTION, max_tokens=12, temperature=0
        ).model_dump()
        whole_again = client.chat.completions.create(
            model="docs", messages=QUESTION, max_tokens=12, temperature=0
        ).model_dump()
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert text and again == text
    assert "cached" not in final and final_again["cached"] is True
    assert first_again["sources"] == first["sources"] and first_again["id"] != first["id"]
    assert final_again["citations"] == final["citations"]
    assert "cached" not in whole and whole_again["cached"] is True
    assert whole_again["choices"][0]["message"] == whole["choices"][0]["message"]
    assert 'ragserve_answer_cache_requests_total{result="hit"} 2.0' in metrics
    assert 'ragserve_answer_cache_requests_total{result="miss"} 2.0' in metrics
