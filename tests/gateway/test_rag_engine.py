"""The RAG pipeline end to end: the openai SDK → gateway → real embedder, store and vLLM."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.conftest import MODEL_NAME

pytestmark = pytest.mark.engine

MAX_MODEL_LEN = 2048


@pytest.fixture(scope="module")
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0)


def ask(client: openai.OpenAI, question: str, **kwargs: Any) -> dict[str, Any]:
    completion: ChatCompletion = client.chat.completions.create(
        model=kwargs.pop("model", "docs"),
        messages=[{"role": "user", "content": question}],
        max_tokens=kwargs.pop("max_tokens", 24),
        temperature=0,
        **kwargs,
    )
    return completion.model_dump()


def test_alias_model_answers_with_the_source_that_holds_the_fact(client: openai.OpenAI) -> None:
    body = ask(client, "How many events per second can one collector node ingest?")
    sources = body["sources"]
    assert 1 <= len(sources) <= 5
    assert [s["id"] for s in sources] == list(range(1, len(sources) + 1))
    assert any("48,000" in s["text"] for s in sources[:3])
    holder = next(s for s in sources if "48,000" in s["text"])
    assert holder["source"].endswith("halcyon-overview.md")
    assert holder["section"] == "Architecture"
    assert body["rag"]["degraded"] is False and body["rag"]["collection"] == "docs"
    assert body["rag"]["context_tokens"] > 0
    assert body["usage"]["prompt_tokens"] > body["rag"]["context_tokens"]
    # Citations are the [n] markers the answer really used, each naming a listed source.
    assert isinstance(body["citations"], list)
    assert all(1 <= n <= len(sources) for n in body["citations"])


def test_pdf_page_numbers_travel_with_sources(client: openai.OpenAI) -> None:
    body = ask(client, "What is the name of the support team's mascot?")
    holder = next(s for s in body["sources"] if "Skarv" in s["text"])
    assert holder["page"] == 2 and holder["source"].endswith("pricing-and-support.pdf")


def test_stream_sends_sources_in_the_first_chunk_before_any_token(gateway_url: str) -> None:
    body = {
        "model": "docs",
        "stream": True,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "What does error HX-7731 mean?"}],
    }
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        header = r.headers["server-timing"]
        frames = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    # A RAG stream opens before retrieval: its header knows the checks, its end the rest.
    assert "preprocess;dur=" in header and "embed;dur=" not in header
    first = frames[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert any("HX-7731" in s["text"] for s in first["sources"])
    assert all("sources" not in f for f in frames[1:])
    final = next(f for f in frames if f["choices"] and f["choices"][0]["finish_reason"])
    assert "citations" in final
    assert {"engine_first_token", "total", "embed", "search"} <= set(final["timings"])


def test_extra_body_controls_top_k_mode_and_enabled(client: openai.OpenAI) -> None:
    two = ask(client, "Halcyon release", extra_body={"rag": {"top_k": 2, "mode": "sparse"}})
    assert len(two["sources"]) == 2 and two["rag"]["mode"] == "sparse"
    plain = ask(client, "Hello", model=MODEL_NAME)
    assert "sources" not in plain
    off = ask(client, "Hello", extra_body={"rag": {"enabled": False}})
    assert "sources" not in off
    on = ask(client, "Which release introduced delta compression?", model=MODEL_NAME,
             extra_body={"rag": {"collection": "docs"}})  # fmt: skip
    assert any("Kittiwake" in s["text"] for s in on["sources"])


def test_filters_restrict_the_sources(client: openai.OpenAI) -> None:
    only = "ingest/samples/release-notes.txt"
    body = ask(client, "What does error HX-7731 mean?",
               extra_body={"rag": {"filter": {"source": only}}})  # fmt: skip
    assert body["sources"] and all(s["source"] == only for s in body["sources"])


def test_unknown_collection_is_404_naming_the_param(gateway_url: str) -> None:
    response = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        json={
            "model": "docs",
            "messages": [{"role": "user", "content": "hi"}],
            "rag": {"collection": "nope"},
        },
        timeout=30,
    )
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "rag.collection"


def test_a_tight_token_budget_drops_passages_instead_of_failing(client: openai.OpenAI) -> None:
    # max_tokens leaves ~150 tokens of the 2048 window: most passages cannot fit. The stop
    # strings end the answer at once: the budget, not a long generation, is under test.
    roomy = ask(client, "Tell me about Halcyon retention and pricing.", max_tokens=16,
                extra_body={"rag": {"top_k": 8}})  # fmt: skip
    tight = ask(client, "Tell me about Halcyon retention and pricing.", max_tokens=1890,
                stop=[" ", "\n", "."], extra_body={"rag": {"top_k": 8}})  # fmt: skip
    assert len(tight["sources"]) < len(roomy["sources"])
    assert tight["usage"]["prompt_tokens"] + 1890 <= MAX_MODEL_LEN
    kept = [s["chunk_id"] for s in tight["sources"]]
    assert kept == [s["chunk_id"] for s in roomy["sources"]][: len(kept)]  # lowest ranks dropped


def test_upload_ask_delete_and_the_source_is_gone(gateway_url: str, client: openai.OpenAI) -> None:
    fact = "The Quillon-77 anemometer was calibrated by Perpetua Oyelaran in Svalbard."
    files = {"file": ("quillon.md", f"# Quillon\n\n{fact}\n".encode(), "text/markdown")}
    up = httpx.post(f"{gateway_url}/v1/documents", files=files,
                    data={"collection": "uploads"}, timeout=60)  # fmt: skip
    assert up.status_code == 200, up.text
    assert up.json()["status"] == "added" and up.json()["chunks"] == 1
    question = "Who calibrated the Quillon-77 anemometer?"
    rag = {"rag": {"collection": "uploads"}}
    assert "Oyelaran" in ask(client, question, extra_body=rag)["sources"][0]["text"]
    listed = httpx.get(f"{gateway_url}/v1/documents", params={"collection": "uploads"}).json()
    assert [d["id"] for d in listed["data"]] == ["quillon.md"]
    gone = httpx.delete(f"{gateway_url}/v1/documents",
                        params={"collection": "uploads", "doc_id": "quillon.md"})  # fmt: skip
    assert gone.status_code == 200 and gone.json()["chunks"] == 1
    assert ask(client, question, extra_body=rag)["sources"] == []
    again = httpx.delete(f"{gateway_url}/v1/documents",
                         params={"collection": "uploads", "doc_id": "quillon.md"})  # fmt: skip
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("name", "content", "status"),
    [
        ("../../etc/passwd.txt", b"traversal is flattened to the base name", 200),
        ("malware.exe", b"MZ\x00\x00", 415),
        ("binary.txt", b"\x00\x01\x02\x00" * 100, 400),
        ("broken.pdf", b"%PDF-1.4 not really", 400),
    ],
)
def test_upload_bad_input_is_refused_clearly(
    gateway_url: str, name: str, content: bytes, status: int
) -> None:
    response = httpx.post(f"{gateway_url}/v1/documents", files={"file": (name, content)},
                          data={"collection": "bad-uploads"}, timeout=60)  # fmt: skip
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["id"] == "passwd.txt"
    else:
        error = response.json()["error"]
        assert error["param"] == "file" and error["message"]


def test_embeddings_endpoint_with_the_openai_sdk(client: openai.OpenAI) -> None:
    from retrieval.embedder import Embedder

    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=["tide gauges", "puffin"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 384
    expected = Embedder.load().embed_queries(["tide gauges"])[0]
    assert sum(a * b for a, b in zip(result.data[0].embedding, expected, strict=True)) > 0.999
    assert result.usage.prompt_tokens > 0
    # The SDK asks for base64 by default when numpy is present; either way vectors decode.
    b64 = client.embeddings.create(model="all-MiniLM-L6-v2", input="x", encoding_format="base64")
    assert len(b64.data[0].embedding) in (384, 2048)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
