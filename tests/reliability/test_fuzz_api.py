"""Fuzzing the gateway's own OpenAPI: no 5xx, every error in OpenAI's envelope.

Schemathesis generates requests from the schema the app publishes (valid and invalid:
wrong types, missing fields, odd strings, random uploads) and sends them to a real
gateway process on the real engine, with a private copy of the sample corpus.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.core.transport import Response
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import MODEL_NAME

pytestmark = pytest.mark.engine

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
EXCLUDED_CHECKS = [positive_data_acceptance]

# A generated chat costs up to a second of engine time: cap the answers it asks for.
MAX_FUZZ_TOKENS = 8
# Examples per campaign: small in `make test`; raise it for a deeper run.
FUZZ = settings(
    max_examples=int(os.environ.get("RAGSERVE_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def gateway_schema(own_gateway_url: str) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{own_gateway_url}/openapi.json")


def assert_openai_envelope(response: Response) -> None:
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, response.text
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    assert "Traceback" not in response.text


def steer(case: Case, model: str | None, filename: str | None) -> None:
    """Make a share of the cases reach the engine and the loaders, at a bounded cost."""
    body = case.body
    if case.path == "/v1/chat/completions" and isinstance(body, dict):
        if model is not None:
            body["model"] = model
        for field in ("max_tokens", "max_completion_tokens"):
            if isinstance(body.get(field), int) and body[field] > MAX_FUZZ_TOKENS:
                body[field] = MAX_FUZZ_TOKENS
        if "max_tokens" not in body and "max_completion_tokens" not in body:
            body["max_tokens"] = MAX_FUZZ_TOKENS
    if case.path == "/v1/embeddings" and isinstance(body, dict) and model is not None:
        body["model"] = "all-MiniLM-L6-v2"
    if case.path == "/v1/documents" and case.method == "POST" and isinstance(body, dict):
        if filename is not None and isinstance(body.get("file"), bytes):
            body["file"] = (filename, body["file"])


@pytest.mark.parametrize(("method", "path", "mode"), CAMPAIGNS)
def test_no_server_error_and_every_error_is_an_openai_error(
    gateway_schema: BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = gateway_schema[path][method]

    @FUZZ
    @given(
        case=operation.as_strategy(generation_mode=mode),
        model=st.none() | st.sampled_from([MODEL_NAME, "docs"]),
        filename=st.none() | st.sampled_from(["a.txt", "b.md", "c.html", "d.pdf", "e.docx"]),
    )
    def fuzz(case: Case, model: str | None, filename: str | None) -> None:
        steer(case, model, filename)
        response = case.call(timeout=60)
        case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_openai_envelope(response)

    fuzz()
