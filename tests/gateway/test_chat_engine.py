"""Chat completions end to end: the real openai SDK → gateway process → real vLLM."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from tests.conftest import MODEL_NAME

pytestmark = pytest.mark.engine

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


@pytest.fixture(scope="module")
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0)


def test_non_stream_returns_text_and_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=QUESTION, max_tokens=24, temperature=0
    )
    assert completion.object == "chat.completion"
    assert completion.model == MODEL_NAME
    choice = completion.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 10
    assert 0 < completion.usage.completion_tokens <= 24
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_stream_role_first_text_then_finish(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL_NAME, messages=QUESTION, max_tokens=24, temperature=0, stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length")
    assert all(f is None for f in finishes[:-1])
    assert len({c.id for c in chunks}) == 1


def test_include_usage_adds_a_final_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL_NAME,
            messages=QUESTION,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},  # exactly 8 tokens, however the model talks
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])


def test_every_raw_frame_is_a_valid_chunk_and_done_ends_the_stream(gateway_url: str) -> None:
    body = {"model": MODEL_NAME, "messages": QUESTION, "max_tokens": 12, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    for frame in data[:-1]:
        ChatCompletionChunk.model_validate(json.loads(frame), strict=False)


def test_max_tokens_is_honoured_with_finish_reason_length(client: openai.OpenAI) -> None:
    story: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Write a long story about a dragon."}
    ]
    exact = {"ignore_eos": True}
    for completion in (
        client.chat.completions.create(
            model=MODEL_NAME, messages=story, extra_body=exact, max_tokens=5
        ),
        client.chat.completions.create(
            model=MODEL_NAME, messages=story, extra_body=exact, max_completion_tokens=5
        ),
    ):
        assert completion.choices[0].finish_reason == "length"
        assert completion.usage is not None and completion.usage.completion_tokens == 5


def test_stop_sequence_ends_generation(client: openai.OpenAI) -> None:
    count: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Count from 1 to 20, separated by commas."}
    ]
    free = (
        client.chat.completions.create(
            model=MODEL_NAME, messages=count, max_tokens=60, temperature=0
        )
        .choices[0]
        .message.content
        or ""
    )
    assert "7" in free, free
    for stop in ("7", ["7", "zzz"]):
        stopped = client.chat.completions.create(
            model=MODEL_NAME, messages=count, max_tokens=60, temperature=0, stop=stop
        ).choices[0]
        assert stopped.finish_reason == "stop"
        assert "7" not in (stopped.message.content or "")
        assert free.startswith(stopped.message.content or "")


def test_temperature_zero_is_deterministic(client: openai.OpenAI) -> None:
    def ask() -> str:
        return (
            client.chat.completions.create(
                model=MODEL_NAME, messages=QUESTION, max_tokens=30, temperature=0
            )
            .choices[0]
            .message.content
            or ""
        )

    assert ask() == ask()


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    def ask() -> str:
        return (
            client.chat.completions.create(
                model=MODEL_NAME,
                messages=QUESTION,
                max_tokens=20,
                temperature=1.0,
                seed=7,
                top_p=0.9,
                presence_penalty=0.5,
                frequency_penalty=0.5,
            )
            .choices[0]
            .message.content
            or ""
        )

    assert ask() == ask()


def test_system_prompt_and_text_parts(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL_NAME,
        messages=[
            {"role": "system", "content": "Answer with one word."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is the capital "},
                    {"type": "text", "text": "of France?"},
                ],
            },
        ],
        max_tokens=10,
        temperature=0,
    )
    assert "Paris" in (completion.choices[0].message.content or "")


def test_eight_concurrent_streams_all_complete(gateway_url: str) -> None:
    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, str | None]:
        stream = await client.chat.completions.create(
            model=MODEL_NAME,
            stream=True,
            max_tokens=16,
            messages=[{"role": "user", "content": f"Say something about the number {i}."}],
        )
        text, finish = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return text, finish

    async def main() -> list[tuple[str, str | None]]:
        async with openai.AsyncOpenAI(
            base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0
        ) as client:
            return await asyncio.gather(*(one(client, i) for i in range(8)))

    results = asyncio.run(main())
    assert len(results) == 8
    for text, finish in results:
        assert text and finish in ("stop", "length")


def _engine_metric(engine_url: str, name: str, labels: str = "") -> float:
    total = 0.0
    for line in httpx.get(f"{engine_url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _finished_requests(engine_url: str) -> float:
    # vLLM counts natural ends here; an aborted request is counted under no reason.
    return _engine_metric(engine_url, "vllm:request_success_total")


def test_client_disconnect_aborts_the_engine_request(gateway_url: str, engine_url: str) -> None:
    finished_before = _finished_requests(engine_url)
    story: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Write a very long story about a dragon."}
    ]
    # ignore_eos: the model cannot end the story by itself before the client leaves.
    body = {"model": MODEL_NAME, "stream": True, "max_tokens": 1500, "ignore_eos": True,
            "messages": story}  # fmt: skip
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()  # kept: a dropped line iterator makes httpx close the stream
        frames = 0
        while frames < 5:
            frames += next(lines).startswith("data: ")
        assert _engine_metric(engine_url, "vllm:num_requests_running") >= 1
    # Leaving the block closes the connection: the client has gone. A deadline far below the
    # ~100 s that 1,500 tokens take here, far above any abort on a busy machine.
    deadline = time.monotonic() + 30
    while _engine_metric(engine_url, "vllm:num_requests_running") > 0:
        assert time.monotonic() < deadline, "vLLM still generating 30 s after the disconnect"
        time.sleep(0.05)
    # It stopped early without finishing by itself: aborted.
    assert _finished_requests(engine_url) == finished_before
