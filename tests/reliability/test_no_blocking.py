"""Nothing on a request's path blocks the gateway's event loop.

The gateway runs in this process (uvicorn on its own thread and loop) with blockbuster
active around the requests: file, socket, sleep, lock and similar calls made on the event
loop raise ``BlockingError``. Startup (loading the embedding model, opening the store) is
left out: it happens before blockbuster is switched on. The app would turn such an error
into a 500 or a degraded answer, so every one raised is recorded where it is created.
"""

from __future__ import annotations

import shutil
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from blockbuster import BlockBuster, BlockingError
from fastapi import FastAPI
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import MODEL_NAME
from tests.support.processes import REPO, free_port

pytestmark = pytest.mark.engine

SAMPLES = REPO / "ingest" / "samples"


class ServerThread:
    """uvicorn serving ``app`` on a thread of its own, in this process."""

    def __init__(self, app: FastAPI, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the in-process gateway did not start")
            self.thread.join(0.1)
        return self.url

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture(scope="module")
def in_process_gateway(
    engine_url: str, sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    store = shutil.copytree(sample_corpus, tmp_path_factory.mktemp("no-blocking") / "qdrant")
    settings = Settings(
        engine_urls=[engine_url],
        qdrant_path=Path(store),
        port=free_port(),
        max_input_tokens=1500,  # also exercises counting the conversation's tokens
        engine_health_interval_s=1,  # probes run on the loop during the test too
        samples_on_first_start=False,
    )
    app = create_app(settings)
    app.add_api_route("/test/blocking-canary", blocking_canary)
    with ServerThread(app, settings.port) as url:
        yield url


async def blocking_canary() -> dict[str, str]:
    """A test-only route that blocks the loop, to show the detection works."""
    time.sleep(0.001)  # noqa: ASYNC251 - the blocking call under test
    return {"status": "blocked"}


class BlockingCalls:
    """Every ``BlockingError`` raised while active, with where it was raised."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def __enter__(self) -> BlockingCalls:
        self._init = BlockingError.__init__
        calls = self

        def recording_init(error: BlockingError, func: str) -> None:
            calls.found.append(f"{func}\n{''.join(traceback.format_stack(limit=25))}")
            calls._init(error, func)

        BlockingError.__init__ = recording_init  # type: ignore[method-assign,assignment]
        self._buster = BlockBuster()
        for function in self._buster.functions.values():
            # FastAPI looks up each endpoint's source file once, on its first request, and
            # caches it (for error messages): a one-off stat, not a per-request cost.
            function.can_block_in("fastapi/routing.py", "_extract_endpoint_context")
        self._buster.activate()
        return self

    def __exit__(self, *_: object) -> None:
        self._buster.deactivate()
        BlockingError.__init__ = self._init  # type: ignore[method-assign]


@pytest.fixture
def no_blocking() -> Iterator[BlockingCalls]:
    with BlockingCalls() as calls:
        yield calls
    assert not calls.found, "blocking calls on the event loop:\n\n" + "\n\n".join(calls.found)


def test_the_event_loop_never_blocks_while_serving(
    in_process_gateway: str, no_blocking: BlockingCalls
) -> None:
    url = in_process_gateway
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
    http = httpx.Client(base_url=url, timeout=120)
    ask: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What does error HX-7731 mean?"}
    ]

    stream = client.chat.completions.create(
        model="docs",
        messages=ask,
        stream=True,
        max_tokens=16,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    first = chunks[0].model_extra or {}
    assert first["sources"] and not first["rag"]["degraded"], first
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)

    answer = client.chat.completions.create(
        model="docs", messages=ask, max_tokens=8, extra_body={"rag": {"mode": "sparse"}}
    )
    assert (answer.model_extra or {})["sources"]
    plain = client.chat.completions.create(model=MODEL_NAME, messages=ask, max_tokens=4)
    assert plain.choices[0].message.content is not None

    vectors = client.embeddings.create(model="all-MiniLM-L6-v2", input=["clock skew", "HX-7731"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 384

    found = http.post("/v1/search", json={"query": "clock skew", "top_k": 3})
    assert found.status_code == 200 and found.json()["results"], found.text

    pdf = SAMPLES / "pricing-and-support.pdf"
    notes = b"# Notes\n\nThe relay restarts nightly."
    for name, data in [("notes.md", notes), (pdf.name, pdf.read_bytes())]:
        uploaded = http.post(
            "/v1/documents",
            files={"file": (name, data)},
            data={"collection": "scratch", "tags": '{"team": "ops"}'},
        )
        assert uploaded.status_code == 200 and uploaded.json()["chunks"] > 0, uploaded.text
    listed = http.get("/v1/documents", params={"collection": "scratch"})
    assert {d["id"] for d in listed.json()["data"]} == {"notes.md", pdf.name}, listed.text
    deleted = http.delete("/v1/documents", params={"collection": "scratch", "doc_id": "notes.md"})
    assert deleted.status_code == 200, deleted.text
    assert http.get("/v1/collections").status_code == 200
    assert http.delete("/v1/collections/scratch").status_code == 200

    for path in ("/v1/models", "/readyz", "/healthz", "/metrics"):
        assert http.get(path).status_code == 200, path
    bad = http.post(
        "/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400


def test_a_blocking_call_on_the_event_loop_is_caught(in_process_gateway: str) -> None:
    with BlockingCalls() as calls:
        response = httpx.get(f"{in_process_gateway}/test/blocking-canary", timeout=30)
    assert response.status_code == 500
    assert len(calls.found) == 1 and calls.found[0].startswith("time.sleep")
    assert "blocking_canary" in calls.found[0]
