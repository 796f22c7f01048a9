"""Search, collections and embeddings routes, in-process over a seeded embedded store.

The engine is never asked here (a replaying one stands in): these routes are retrieval's.
The same routes are exercised through real processes by the CLI and reliability tests.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.app import create_app
from gateway.retrieval_setup import RetrievalStack, open_retrieval
from gateway.settings import Settings
from tests.conftest import seed_store
from tests.support.replay_engine import ReplayEngine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RetrievalStack]:
    path = seed_store(tmp_path_factory.mktemp("search-store"))
    opened = anyio.run(open_retrieval, settings(path))
    yield opened
    anyio.run(opened.aclose)


def settings(store: Path = Path("/unused")) -> Settings:
    return Settings(engine_urls=["http://unused.invalid"], qdrant_path=store,
                    engine_health_interval_s=0)  # fmt: skip


def calls(stack: RetrievalStack, *requests: tuple[str, str, dict[str, Any]]) -> list[Any]:
    """Each (method, path, httpx kwargs) through one app, in order: their responses."""

    async def main() -> list[httpx.Response]:
        app = create_app(settings(), engine=ReplayEngine(), retrieval=stack)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                return [await client.request(m, p, **kw) for m, p, kw in requests]

    return anyio.run(main)


def test_search_ranks_the_passage_that_answers(stack: RetrievalStack) -> None:
    body = {"query": "What does error HX-7731 mean?", "collection": "docs", "top_k": 3}
    (found,) = calls(stack, ("POST", "/v1/search", {"json": body}))
    assert found.status_code == 200
    result = found.json()
    assert result["object"] == "search.result" and result["mode"] == "hybrid"
    assert len(result["results"]) == 3 and "HX-7731" in result["results"][0]["text"]
    assert result["results"][0]["source"] and result["results"][0]["doc_id"]
    scores = [hit["score"] for hit in result["results"]]
    assert scores == sorted(scores, reverse=True)
    assert set(result["timings"]) == {"embed", "search"}


def test_search_refusals_are_openai_errors(stack: RetrievalStack) -> None:
    missing, bad_filter, empty = calls(
        stack,
        ("POST", "/v1/search", {"json": {"query": "x", "collection": "nowhere"}}),
        ("POST", "/v1/search", {"json": {"query": "x", "filter": {"page": {"near": 1}}}}),
        ("POST", "/v1/search", {"json": {"query": ""}}),
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"]
    assert bad_filter.status_code == 400 and bad_filter.json()["error"]["param"] == "filter"
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "query"


def test_collections_list_version_switch_and_delete(stack: RetrievalStack) -> None:
    listed, version, missing = calls(
        stack,
        ("GET", "/v1/collections", {}),
        ("POST", "/v1/collections/scratch/versions", {}),
        ("DELETE", "/v1/collections/nowhere", {}),
    )
    assert {"name": "docs", "points": listed.json()["data"][0]["points"]} in listed.json()["data"]
    assert all(c["points"] > 0 for c in listed.json()["data"] if c["name"] == "docs")
    fresh = version.json()["id"]
    assert version.status_code == 200 and fresh.startswith("scratch_")
    assert missing.status_code == 404
    switched, wrong, deleted, after = calls(
        stack,
        ("POST", "/v1/collections/scratch/switch", {"json": {"collection": fresh}}),
        ("POST", "/v1/collections/scratch/switch", {"json": {"collection": "docs"}}),
        ("DELETE", "/v1/collections/scratch", {}),
        ("GET", "/v1/collections", {}),
    )
    assert switched.json() == {"id": fresh, "object": "collection.version", "alias": "scratch"}
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "collection"
    assert deleted.json() == {"id": "scratch", "object": "collection", "deleted": True}
    assert "scratch" not in {c["name"] for c in after.json()["data"]}


def test_embeddings_as_floats_and_as_base64(stack: RetrievalStack) -> None:
    body = {"model": "all-MiniLM-L6-v2", "input": ["HX-7731", "clock drift"]}
    floats, packed, wrong = calls(
        stack,
        ("POST", "/v1/embeddings", {"json": body}),
        ("POST", "/v1/embeddings", {"json": {**body, "encoding_format": "base64"}}),
        ("POST", "/v1/embeddings", {"json": {**body, "encoding_format": "hex"}}),
    )
    data = floats.json()["data"]
    assert [d["index"] for d in data] == [0, 1] and floats.json()["usage"]["prompt_tokens"] > 0
    vector = data[0]["embedding"]
    assert len(vector) == 384 and math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-4)
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    unpacked = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(unpacked, vector, strict=True))
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "encoding_format"
