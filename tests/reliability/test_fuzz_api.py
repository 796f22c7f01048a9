"""Fuzzing the gateway's own OpenAPI: no 5xx, every error in OpenAI's envelope.

Schemathesis generates requests from the schema the app publishes (valid and invalid:
wrong types, missing fields, odd strings, random uploads) and sends them to a real
gateway process on the real engine, with a private copy of the sample corpus.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.transport import Response
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import MODEL_NAME, SAMPLES

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Every operation of the chat, embeddings, documents, search and collections routes, with
# valid (positive) and invalid (negative) data; no negative cases exist for a route whose
# only input is a path segment.
CAMPAIGNS = [
    ("POST", "/v1/chat/completions", POSITIVE),
    ("POST", "/v1/chat/completions", NEGATIVE),
    ("POST", "/v1/embeddings", POSITIVE),
    ("POST", "/v1/embeddings", NEGATIVE),
    ("POST", "/v1/search", POSITIVE),
    ("POST", "/v1/search", NEGATIVE),
    ("GET", "/v1/collections", POSITIVE),
    ("DELETE", "/v1/collections/{name}", POSITIVE),
    ("POST", "/v1/documents", POSITIVE),
    ("POST", "/v1/documents", NEGATIVE),
    ("GET", "/v1/documents", POSITIVE),
    ("GET", "/v1/documents", NEGATIVE),
    ("DELETE", "/v1/documents", POSITIVE),
    ("DELETE", "/v1/documents", NEGATIVE),
]
# Schema-valid requests the server still refuses with a 4xx, by design: a filter's grammar,
# the file types the loaders read, a model name that is not served are not in the schema.
EXCLUDED_CHECKS: list[CheckFunction] = [positive_data_acceptance]

# A generated chat costs up to a second of engine time: cap the answers it asks for.
MAX_FUZZ_TOKENS = 4
# Examples per campaign: small in `make test`; raise it for a deeper run.
EXAMPLES = int(os.environ.get("RAGSERVE_FUZZ_EXAMPLES", "20"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def gateway_schema(own_gateway_url: str) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{own_gateway_url}/openapi.json")


def assert_openai_envelope(response: Response | httpx.Response) -> None:
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, response.text
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    assert "Traceback" not in response.text


def _token_count(value: object) -> int:
    """A valid token count (5.0 is one, as JSON Schema reads it), else 0: left as generated."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def steer(case: Case[Any], mode: GenerationMode, model: str | None) -> None:
    """Bound every chat's answer; let a share of valid cases reach the engine and embedder.

    Invalid cases keep what makes them invalid: only their answer length is capped.
    """
    body = case.body
    if not isinstance(body, dict):
        return
    if case.path == "/v1/chat/completions":
        for field in ("max_tokens", "max_completion_tokens"):
            if _token_count(body.get(field)) > MAX_FUZZ_TOKENS:
                body[field] = MAX_FUZZ_TOKENS
        if "max_tokens" not in body and "max_completion_tokens" not in body:
            body["max_tokens"] = MAX_FUZZ_TOKENS
        if mode is POSITIVE and model is not None:
            body["model"] = model
            for refused in ("tools", "tool_choice", "functions", "function_call", "logprobs"):
                body.pop(refused, None)  # each a clean 400 already; this case is for the engine
            messages = body.get("messages")
            for message in messages if isinstance(messages, list) else []:
                # The schema cannot say "content is required except for the assistant".
                if isinstance(message, dict) and message.get("content") is None:
                    message["content"] = "hello"
    if case.path == "/v1/embeddings" and mode is POSITIVE and model is not None:
        body["model"] = "all-MiniLM-L6-v2"


def test_the_published_schema_documents_the_errors_the_app_sends() -> None:
    """Validation errors are 400s in OpenAI's envelope, so no route may promise a 422."""
    app = create_app(Settings(engine_urls=["http://127.0.0.1:9"]))
    published = app.openapi()
    assert "HTTPValidationError" not in published["components"]["schemas"]
    for path, operations in published["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")) and "content" in response:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (method, path, status)


@pytest.mark.engine
@pytest.mark.parametrize(("method", "path", "mode"), CAMPAIGNS)
def test_no_server_error_and_every_error_is_an_openai_error(
    gateway_schema: BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = gateway_schema[path][method]
    statuses: Counter[int] = Counter()

    # Valid chats mostly reach the engine (about a second each): half as many of those.
    engine_bound = path == "/v1/chat/completions" and mode is POSITIVE
    budget = max(1, EXAMPLES // 2) if engine_bound else EXAMPLES

    @settings(FUZZ, max_examples=budget)
    @given(
        case=operation.as_strategy(generation_mode=mode),
        model=st.sampled_from([None, MODEL_NAME, "docs"]),
    )
    def fuzz(case: Case[Any], model: str | None) -> None:
        steer(case, mode, model)
        response = case.call(timeout=60)
        statuses[response.status_code] += 1
        case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_openai_envelope(response)

    fuzz()
    print(f"{method} {path} {mode.value}: statuses {dict(sorted(statuses.items()))}")


def sample_documents() -> dict[str, bytes]:
    """One real file per loader: the samples, and a .docx made here (none ships)."""
    import docx

    made = docx.Document()
    made.add_heading("Relay", level=1)
    made.add_paragraph("The relay restarts nightly at 02:00.")
    buffer = io.BytesIO()
    made.save(buffer)
    files = {path.suffix: path.read_bytes() for path in SAMPLES.iterdir()}
    return {**files, ".docx": buffer.getvalue()}


@st.composite
def damaged(draw: st.DrawFn, originals: dict[str, bytes]) -> tuple[str, bytes]:
    """A supported file name and its bytes: intact, truncated, bit-flipped, or random."""
    suffix = draw(st.sampled_from(sorted(originals)))
    data = bytearray(originals[suffix])
    how = draw(st.sampled_from(["intact", "truncated", "flipped", "random"]))
    if how == "truncated":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "flipped":
        for _ in range(draw(st.integers(1, 20))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif how == "random":
        data = bytearray(draw(st.binary(max_size=4096)))
    return f"fuzzed{suffix}", bytes(data)


@pytest.mark.engine
def test_damaged_documents_are_indexed_or_refused_cleanly(own_gateway_url: str) -> None:
    """Loaders meet truncated, bit-flipped and random files: a 200 or a 4xx, never a 5xx."""
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(upload=damaged(sample_documents()))
    def fuzz(upload: tuple[str, bytes]) -> None:
        name, data = upload
        response = httpx.post(
            f"{own_gateway_url}/v1/documents",
            files={"file": (name, data)},
            data={"collection": "fuzzed-uploads"},
            timeout=60,
        )
        statuses[response.status_code] += 1
        assert response.status_code in (200, 400, 415), response.text
        if response.status_code == 200:
            assert response.json()["chunks"] >= 0
        else:
            assert_openai_envelope(response)

    fuzz()
    print(f"damaged uploads: statuses {dict(sorted(statuses.items()))}")


# Found by fuzzing: these were coerced (false to a 0.0 threshold, "4" to 4) and served.
HI = [{"role": "user", "content": "hi"}]
CHAT, EMBED = "/v1/chat/completions", "/v1/embeddings"
WRONG_TYPES = [
    ("/v1/search", {"query": "clock skew", "min_score": False}, "min_score"),
    ("/v1/search", {"query": "clock skew", "top_k": "3"}, "top_k"),
    (EMBED, {"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": "3"}, "dimensions"),
    (CHAT, {"model": MODEL_NAME, "messages": HI, "max_tokens": "4"}, "max_tokens"),
    (CHAT, {"model": "docs", "messages": HI, "rag": {"enabled": "no"}}, "rag.enabled"),
]


@pytest.mark.engine
@pytest.mark.parametrize(("path", "body", "param"), WRONG_TYPES)
def test_a_wrong_type_is_refused_not_coerced(
    own_gateway_url: str, path: str, body: dict[str, object], param: str
) -> None:
    response = httpx.post(f"{own_gateway_url}{path}", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert_openai_envelope(response)
    assert response.json()["error"]["param"] == param


@pytest.mark.engine
def test_an_integral_float_is_an_integer(own_gateway_url: str) -> None:
    """JSON Schema counts 3.0 as an integer; strict types must not refuse it."""
    body = {"query": "clock skew", "top_k": 3.0}
    response = httpx.post(f"{own_gateway_url}/v1/search", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 3
