"""Parity (issue 12): whatever vLLM serves directly, the gateway serves too.

Each request goes, with the real ``openai`` SDK, to the engine itself and through the
gateway (the engine's own model name, RAG off); both answers must mean the same: a schema
that validates, the named tool called, ``k`` alternatives per token, two choices, the exact
token count asked for. Never equal text: the model samples. Lengths are pinned with
``max_tokens`` plus ``ignore_eos``/``min_tokens``, or bounded by a grammar (enums), so no
test depends on how long the model talks. The last tests send the same features through
the ``docs`` alias with RAG on: the feature still works and the sources come along.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel

from tests.conftest import MODEL_NAME

pytestmark = pytest.mark.engine

WAIT_S = 300  # one request on a shared 2-core machine, behind other tests' work
VIA = ["direct", "gateway"]
CITY_QUESTION = "Which city is the capital of France? Answer in JSON."
ASK_CITY: list[ChatCompletionMessageParam] = [{"role": "user", "content": CITY_QUESTION}]
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
ASK_WEATHER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather in Paris?"}
]
# ``strict`` pins the arguments to the schema; the enum keeps the call a few tokens long.
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "London"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
CALL_WEATHER: Any = {"type": "function", "function": {"name": "get_weather"}}
TOOL_TOKENS = 96  # the Hermes envelope and the arguments take ~60 tokens
# RAG on, few passages: a short prompt is a fast prefill.
DOCS = "docs"
RAG = {"rag": {"top_k": 2}}
ASK_DOCS: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "How many events per second does one collector ingest?"}
]


def exactly(tokens: int) -> dict[str, Any]:
    """vLLM's extras that make an answer exactly ``tokens`` long (with max_tokens=tokens)."""
    return {"ignore_eos": True, "min_tokens": tokens}


class City(BaseModel):
    city: Literal["Paris", "London", "Rome"]
    capital: bool


@pytest.fixture(scope="module")
def clients(engine_url: str, gateway_url: str) -> Iterator[dict[str, openai.OpenAI]]:
    made = {
        via: openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=WAIT_S)
        for via, url in (("direct", engine_url), ("gateway", gateway_url))
    }
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(params=VIA)
def client(request: pytest.FixtureRequest, clients: dict[str, openai.OpenAI]) -> openai.OpenAI:
    return clients[request.param]


@pytest.fixture
def gateway(clients: dict[str, openai.OpenAI]) -> openai.OpenAI:
    return clients["gateway"]


def sources(obj: BaseModel) -> list[dict[str, Any]]:
    """The RAG sources a chunk or answer carries in its extra fields."""
    found = (obj.model_extra or {}).get("sources")
    assert isinstance(found, list) and found, f"no sources in {obj!r}"
    assert any("48,000" in source["text"] for source in found)
    return found


# --- structured output and tools ----------------------------------------------------------


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL_NAME, messages=ASK_CITY, response_format=City, max_tokens=48, temperature=0
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, City)
    City.model_validate(json.loads(choice.message.content or ""))


def test_named_tool_choice_returns_the_call(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=ASK_WEATHER, tools=[WEATHER_TOOL], tool_choice=CALL_WEATHER,
        max_tokens=TOOL_TOKENS, temperature=0,
    )  # fmt: skip
    assert_weather_call(completion.choices[0].message.tool_calls)


def test_named_tool_choice_streams_the_call(client: openai.OpenAI) -> None:
    # The SDK's stream helper reassembles the tool-call deltas.
    with client.chat.completions.stream(
        model=MODEL_NAME, messages=ASK_WEATHER, tools=[WEATHER_TOOL], tool_choice=CALL_WEATHER,
        max_tokens=TOOL_TOKENS, temperature=0,
    ) as stream:  # fmt: skip
        deltas = [e.chunk for e in stream if e.type == "chunk" and e.chunk.choices]
        completion = stream.get_final_completion()
    assert sum(bool(c.choices[0].delta.tool_calls) for c in deltas) > 1  # streamed, not whole
    assert_weather_call(completion.choices[0].message.tool_calls)


def assert_weather_call(calls: Any) -> None:
    assert calls, "no tool_calls"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["city"] in ("Paris", "London")


def test_a_tool_result_turn_is_answered(client: openai.OpenAI) -> None:
    arguments = json.dumps({"city": "Paris"})
    messages: list[Any] = [
        *ASK_WEATHER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees Celsius and sunny"},
    ]  # fmt: skip
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=messages, max_tokens=6, temperature=0, extra_body=exactly(6)
    )
    assert (completion.choices[0].message.content or "").strip()
    assert completion.usage is not None and completion.usage.completion_tokens == 6


# --- sampling: logprobs, n, exact lengths, logit_bias --------------------------------------


def test_logprobs_give_top_k_alternatives_per_token(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, max_tokens=4, extra_body=exactly(4),
        logprobs=True, top_logprobs=3,
    )  # fmt: skip
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [len(token.top_logprobs) for token in logprobs.content] == [3] * 4


def test_streamed_logprobs_give_top_k_alternatives_per_token(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, max_tokens=4, extra_body=exactly(4),
        logprobs=True, top_logprobs=3, stream=True,
    )  # fmt: skip
    counts = [
        len(token.top_logprobs)
        for chunk in stream
        for choice in chunk.choices
        if choice.logprobs is not None
        for token in choice.logprobs.content or []
    ]
    assert counts == [3] * 4


def test_n_2_gives_two_choices(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, n=2, max_tokens=3, seed=7, extra_body=exactly(3)
    )
    assert sorted(choice.index for choice in completion.choices) == [0, 1]
    assert all(choice.message.content for choice in completion.choices)


def test_n_2_streams_deltas_for_both_choices(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, n=2, max_tokens=3, seed=7, extra_body=exactly(3),
        stream=True,
    )  # fmt: skip
    texts, finished = stream_texts(stream)
    assert set(texts) == {0, 1} and all(texts.values())
    assert finished == {0: "length", 1: "length"}


def stream_texts(stream: Any) -> tuple[dict[int, str], dict[int, str]]:
    """Each choice's text and finish reason, from chat chunks."""
    texts: dict[int, str] = {}
    finished: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason is not None:
                finished[choice.index] = choice.finish_reason
    return texts, finished


@pytest.mark.parametrize(
    "extras",
    [{"ignore_eos": True}, {"min_tokens": 12}, exactly(12)],
    ids=["ignore_eos", "min_tokens", "both"],
)
def test_ignore_eos_and_min_tokens_are_honoured(
    client: openai.OpenAI, extras: dict[str, Any]
) -> None:
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, max_tokens=12, temperature=0, extra_body=extras
    )
    assert completion.usage is not None and completion.usage.completion_tokens == 12


def test_logit_bias_makes_the_boosted_token_win(engine_url: str, client: openai.OpenAI) -> None:
    tokenized = httpx.post(
        f"{engine_url}/tokenize",
        json={"model": MODEL_NAME, "prompt": " blue", "add_special_tokens": False},
        timeout=WAIT_S,
    ).json()
    assert len(tokenized["tokens"]) == 1
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, max_tokens=4, temperature=0,
        logit_bias={str(tokenized["tokens"][0]): 100},
    )  # fmt: skip
    assert (completion.choices[0].message.content or "").split() == ["blue"] * 4


# --- the other endpoints: completions, responses ------------------------------------------


def test_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL_NAME, prompt="The capital of France is", max_tokens=4, temperature=0,
        extra_body=exactly(4),
    )  # fmt: skip
    assert completion.object == "text_completion"
    assert completion.choices[0].text and completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 4


def test_completions_stream(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model=MODEL_NAME, prompt="The capital of France is", max_tokens=4, temperature=0,
        extra_body=exactly(4), stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_responses(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL_NAME, input="Say hello.", max_output_tokens=6, temperature=0
    )
    assert response.object == "response" and response.output_text
    assert response.usage is not None and 0 < response.usage.output_tokens <= 6


def test_responses_stream(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model=MODEL_NAME, input="Say hello.", max_output_tokens=6, temperature=0, stream=True
        )
    )
    first, last = events[0], events[-1]
    assert first.type == "response.created"
    assert last.type in ("response.completed", "response.incomplete")
    assert last.response.id == first.response.id
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and text == last.response.output_text


def test_responses_follow_up_and_retrieve(client: openai.OpenAI, engine_url: str) -> None:
    first = client.responses.create(
        model=MODEL_NAME, input="Say hello.", max_output_tokens=4, temperature=0
    )
    if httpx.get(f"{engine_url}/v1/responses/{first.id}", timeout=WAIT_S).status_code == 404:
        pytest.skip("the engine keeps no responses: VLLM_ENABLE_RESPONSES_API_STORE=1 is unset")
    follow_up = client.responses.create(
        model=MODEL_NAME, input="Again.", previous_response_id=first.id, max_output_tokens=4,
        temperature=0,
    )  # fmt: skip
    assert follow_up.output_text
    # The earlier turn is part of the follow-up's input.
    assert first.usage is not None and follow_up.usage is not None
    assert follow_up.usage.input_tokens > first.usage.input_tokens
    stored = client.responses.retrieve(first.id)
    assert stored.id == first.id and stored.output_text == first.output_text


# --- errors and usage ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("bad", [{"temperature": "x"}, {"n": 0}], ids=["temperature", "n"])
def test_a_request_the_engine_refuses_is_a_400(
    clients: dict[str, openai.OpenAI], bad: dict[str, Any], stream: bool
) -> None:
    for via, client in clients.items():
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model=MODEL_NAME, messages=HELLO, max_tokens=2, stream=stream, extra_body=bad
            )
        if via == "gateway":  # vLLM's own envelope differs; ours is OpenAI's
            error = refused.value.response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["type"] == "invalid_request_error"


def test_usage_equals_the_direct_calls(clients: dict[str, openai.OpenAI]) -> None:
    chat, streamed, completed, prompt = {}, {}, {}, {}
    for via, client in clients.items():
        answer = client.chat.completions.create(
            model=MODEL_NAME, messages=HELLO, max_tokens=3, extra_body=exactly(3)
        )
        chat[via] = answer.usage
        chunks = list(
            client.chat.completions.create(
                model=MODEL_NAME,
                messages=HELLO,
                max_tokens=3,
                extra_body=exactly(3),
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        streamed[via] = chunks[-1].usage
        completion = client.completions.create(
            model=MODEL_NAME, prompt="Hello", max_tokens=3, extra_body=exactly(3)
        )
        completed[via] = completion.usage
        response = client.responses.create(model=MODEL_NAME, input="Hello", max_output_tokens=2)
        assert response.usage is not None
        prompt[via] = response.usage.input_tokens
    assert prompt["gateway"] == prompt["direct"] > 0
    for usage in (chat, streamed, completed):
        assert usage["direct"] is not None and usage["direct"].prompt_tokens > 0
        # Every field, details included (prompt_tokens_details when vLLM sends them).
        assert usage["gateway"] == usage["direct"]


# --- RAG on: the docs alias ---------------------------------------------------------------


class Verdict(BaseModel):
    answer: Literal["yes", "no"]


def test_docs_json_schema(gateway: openai.OpenAI) -> None:
    question = "Does one collector ingest 48,000 events per second? Answer in JSON."
    completion = gateway.chat.completions.parse(
        model=DOCS, messages=[{"role": "user", "content": question}], response_format=Verdict,
        max_tokens=32, temperature=0, extra_body=RAG,
    )  # fmt: skip
    assert isinstance(completion.choices[0].message.parsed, Verdict)
    sources(completion)


def test_docs_named_tool_choice_streams_the_call_after_sources(gateway: openai.OpenAI) -> None:
    with gateway.chat.completions.stream(
        model=DOCS, messages=ASK_DOCS, tools=[WEATHER_TOOL], tool_choice=CALL_WEATHER,
        max_tokens=TOOL_TOKENS, temperature=0, extra_body=RAG,
    ) as stream:  # fmt: skip
        chunks = [e.chunk for e in stream if e.type == "chunk"]
        completion = stream.get_final_completion()
    sources(chunks[0])
    assert_weather_call(completion.choices[0].message.tool_calls)


def test_docs_logprobs_and_n_2_stream(gateway: openai.OpenAI) -> None:
    stream = gateway.chat.completions.create(
        model=DOCS, messages=ASK_DOCS, n=2, max_tokens=3, extra_body={**RAG, **exactly(3)},
        logprobs=True, top_logprobs=2, stream=True,
    )  # fmt: skip
    chunks = list(stream)
    sources(chunks[0])
    texts, finished = stream_texts(chunks)
    assert set(texts) == {0, 1} and finished == {0: "length", 1: "length"}
    counts = [
        len(token.top_logprobs)
        for chunk in chunks
        for choice in chunk.choices
        if choice.logprobs is not None
        for token in choice.logprobs.content or []
    ]
    assert counts == [2] * 6


def test_docs_logprobs_and_n_2(gateway: openai.OpenAI) -> None:
    completion = gateway.chat.completions.create(
        model=DOCS, messages=ASK_DOCS, n=2, max_tokens=3, extra_body={**RAG, **exactly(3)},
        logprobs=True, top_logprobs=2,
    )  # fmt: skip
    sources(completion)
    assert sorted(choice.index for choice in completion.choices) == [0, 1]
    for choice in completion.choices:
        assert choice.logprobs is not None and choice.logprobs.content is not None
        assert [len(token.top_logprobs) for token in choice.logprobs.content] == [2] * 3


def test_docs_completions(gateway: openai.OpenAI) -> None:
    prompt = "One collector node ingests at most"
    completion = gateway.completions.create(
        model=DOCS, prompt=prompt, max_tokens=4, extra_body={**RAG, **exactly(4)}
    )
    sources(completion)
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    chunks = list(
        gateway.completions.create(
            model=DOCS,
            prompt=prompt,
            max_tokens=4,
            extra_body={**RAG, **exactly(4)},
            stream=True,
        )
    )
    sources(chunks[0])
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_docs_responses(gateway: openai.OpenAI) -> None:
    question = "How many events per second does one collector ingest?"
    response = gateway.responses.create(
        model=DOCS, input=question, max_output_tokens=4, extra_body=RAG
    )
    sources(response)
    assert response.output_text
    events = list(
        gateway.responses.create(
            model=DOCS, input=question, max_output_tokens=4, extra_body=RAG, stream=True
        )
    )
    assert events[0].type == "response.created"
    sources(events[0].response)
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert events[-1].response.output_text


# --- a client library on top of the SDK ---------------------------------------------------


def test_langchain_structured_output(clients: dict[str, openai.OpenAI]) -> None:
    from langchain_openai import ChatOpenAI

    for client in clients.values():
        llm = ChatOpenAI(
            base_url=str(client.base_url), api_key="unused", model=MODEL_NAME,
            temperature=0, max_tokens=48, max_retries=0, timeout=WAIT_S,
        )  # fmt: skip
        city = llm.with_structured_output(City, method="json_schema").invoke(CITY_QUESTION)
        assert isinstance(city, City)
