"""A RAG stream opens at once: 200 and a comment before retrieval, keep-alives while it waits.

The gateway runs in-process under a real uvicorn on 127.0.0.1 (httpx's ASGI transport
buffers whole bodies, so it cannot show what arrives first), over the real retrieval stack
on a seeded embedded store. Retrieval and the engine's acceptance are held by events, so
the order is forced, never timed. The engine replays recorded vLLM bytes
(tests/support/replay_engine.py).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import openai
import pytest
import uvicorn
from openai.types.chat import ChatCompletionMessageParam

from gateway.app import create_app
from gateway.flow import OPENED
from gateway.retrieval_setup import RetrievalStack, open_retrieval
from gateway.settings import Settings
from llm.types import EngineError
from retrieval.retriever import Retrieval, Retriever
from retrieval.types import SearchMode
from tests.conftest import seed_store
from tests.support.replay_engine import MODEL, ReplayEngine, Script, pieces, recording
from tests.support.sse import sse_data

DEADLINE_S = 30  # generous: each wait ends on an event, this only bounds a broken gateway
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What does error HX-7731 mean?"}
]


class HeldRetriever(Retriever):
    """The real retriever, held at the start of each retrieval until ``release`` fires."""

    def __init__(self, stack: RetrievalStack) -> None:
        super().__init__(stack.batcher, stack.sparse, _store(stack))
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.done = False

    async def retrieve(
        self, query: str, *, collection: str, top_k: int, mode: SearchMode, **kw: Any
    ) -> Retrieval:
        self.started.set()
        await self.release.wait()
        result = await super().retrieve(query, collection=collection, top_k=top_k, mode=mode,
                                        **kw)  # fmt: skip
        self.done = True
        return result


async def until(check: Callable[[], bool | Awaitable[bool]]) -> None:
    """Poll ``check`` until true (what it watches has no event to wait on), within the deadline."""
    with anyio.fail_after(DEADLINE_S):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await anyio.sleep(0.01)  # polled state, bounded by the deadline


def _store(stack: RetrievalStack) -> Any:
    assert stack.store is not None
    return stack.store


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RetrievalStack]:
    path = seed_store(tmp_path_factory.mktemp("open-store"))
    opened = anyio.run(open_retrieval, Settings(engine_urls=["http://unused.invalid"],
                                                qdrant_path=path))  # fmt: skip
    yield opened
    anyio.run(opened.aclose)


def engine() -> ReplayEngine:
    return ReplayEngine(
        streams={
            "/v1/chat/completions": lambda: Script(pieces(recording("chat.sse"), 40)),
            "/v1/responses": lambda: Script(pieces(recording("response.sse"), 40)),
        }
    )


@asynccontextmanager
async def serving(
    stack: RetrievalStack, replay: ReplayEngine, retriever: Retriever | None = None, **extra: Any
) -> AsyncIterator[str]:
    """The gateway under uvicorn on a free loopback port, in this event loop."""
    settings = Settings(
        engine_urls=["http://unused.invalid"],
        qdrant_path=Path("/unused"),
        engine_health_interval_s=0,
        **extra,
    )
    retrieval = dataclasses.replace(stack, retriever=retriever or stack.retriever)
    app = create_app(settings, engine=replay, retrieval=retrieval)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        await until(lambda: server.started)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        server.should_exit = True


async def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE_S) as client:
        return await client.post(path, json=body)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "docs", "messages": QUESTION, "stream": True, **extra}


def test_a_rag_stream_opens_before_retrieval_and_keeps_alive_while_it_waits(
    stack: RetrievalStack,
) -> None:
    replay = engine()
    held = HeldRetriever(stack)

    async def main() -> None:
        async with (
            serving(stack, replay, held, stream_keepalive_s=0.05) as url,
            httpx.AsyncClient(base_url=url, timeout=DEADLINE_S) as client,
            client.stream("POST", "/v1/chat/completions", json=chat()) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            received = b""
            chunks = response.aiter_raw()
            with anyio.fail_after(DEADLINE_S):
                while b": ping" not in received:  # the opening, then a keep-alive
                    received += await chunks.__anext__()
            assert received.startswith(OPENED)
            assert held.started.is_set() and not held.done and not replay.received
            held.release.set()
            async for chunk in chunks:
                received += chunk
        events = sse_data(received.decode())
        assert events[0]["sources"] and events[0]["sources"][0]["chunk_id"]
        assert events[-1] == "[DONE]"
        assert "HX-7731" in replay.received[0]["messages"][-1]["content"]

    anyio.run(main)


def test_the_engine_accepting_late_is_inside_the_open_stream(stack: RetrievalStack) -> None:
    replay = engine()
    replay.accept = anyio.Event()

    async def main() -> None:
        async with (
            serving(stack, replay) as url,
            httpx.AsyncClient(base_url=url, timeout=DEADLINE_S) as client,
            client.stream("POST", "/v1/chat/completions", json=chat()) as response,
        ):
            chunks = response.aiter_raw()
            with anyio.fail_after(DEADLINE_S):
                first = await chunks.__anext__()
            assert response.status_code == 200 and first.startswith(OPENED)
            assert replay.accept is not None and not replay.opened
            replay.accept.set()
            rest = b"".join([chunk async for chunk in chunks])
        assert sse_data(rest.decode())[-1] == "[DONE]"

    anyio.run(main)


@pytest.mark.parametrize(
    ("extra", "status", "param"),
    [
        ({"rag": {"collection": "nowhere"}}, 404, "rag.collection"),
        ({"rag": {"filter": {"page": {"near": 3}}}}, 400, "rag.filter"),
        ({"model": "no-such-model"}, 404, "model"),
    ],
)
def test_what_is_checked_cheaply_keeps_its_status(
    stack: RetrievalStack, extra: dict[str, Any], status: int, param: str | None
) -> None:
    replay = engine()

    async def main() -> httpx.Response:
        async with serving(stack, replay) as url:
            return await post(url, "/v1/chat/completions", chat(**extra))

    response = anyio.run(main)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["param"] == param
    assert not replay.received  # nothing reached the engine


def test_a_refusal_after_the_opening_is_an_error_event_the_sdk_raises(
    stack: RetrievalStack,
) -> None:
    replay = engine()
    replay.refuse = EngineError("'logprobs' must be true", status=400, param="logprobs")

    async def main() -> tuple[str, str]:
        async with serving(stack, replay) as url:
            raw = await post(url, "/v1/chat/completions", chat(top_logprobs=2))
            sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            stream = await sdk.chat.completions.create(model="docs", messages=QUESTION, stream=True)
            with pytest.raises(openai.APIError) as raised:
                async for _ in stream:
                    pass
            await sdk.close()
            return raw.text, raised.value.message

    text, message = anyio.run(main)
    assert text.startswith(OPENED.decode())
    events = sse_data(text)
    assert events[-1] == "[DONE]"
    assert events[-2]["error"] == {"message": "'logprobs' must be true",
                                   "type": "invalid_request_error", "param": "logprobs",
                                   "code": None}  # fmt: skip
    assert "logprobs" in message


def test_a_responses_stream_fails_with_its_own_error_event(stack: RetrievalStack) -> None:
    replay = engine()
    replay.refuse = EngineError("the engine is gone", status=503)

    async def main() -> str:
        async with serving(stack, replay) as url:
            body = {"model": "docs", "input": "What does error HX-7731 mean?", "stream": True}
            return (await post(url, "/v1/responses", body)).text

    text = anyio.run(main)
    error_event = text.split("\n\n")[1]
    assert error_event.startswith("event: error\n")
    body = json.loads(error_event.split("data: ", 1)[1])
    assert body["type"] == "error" and body["sequence_number"] == 0
    assert body["error"]["type"] == "server_error"


def test_a_plain_stream_keeps_the_engines_status(stack: RetrievalStack) -> None:
    """Without retrieval there is nothing slow before the engine: its refusal stays a 400."""
    replay = engine()
    replay.refuse = EngineError("'logprobs' must be true", status=400, param="logprobs")

    async def main() -> httpx.Response:
        async with serving(stack, replay) as url:
            return await post(url, "/v1/chat/completions", chat(model=MODEL))

    response = anyio.run(main)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logprobs"


def test_a_client_gone_during_retrieval_leaves_no_work_behind(stack: RetrievalStack) -> None:
    replay = engine()
    held = HeldRetriever(stack)

    async def main() -> None:
        async with serving(stack, replay, held) as url:
            async with (
                httpx.AsyncClient(base_url=url, timeout=DEADLINE_S) as client,
                client.stream("POST", "/v1/chat/completions", json=chat()) as response,
            ):
                with anyio.fail_after(DEADLINE_S):
                    await held.started.wait()
                assert response.status_code == 200
            # The client hung up while retrieval was held: the gateway ends the stream...
            async with httpx.AsyncClient(base_url=url, timeout=DEADLINE_S) as client:

                async def no_stream_open() -> bool:
                    return "ragserve_active_streams 0.0" in (await client.get("/metrics")).text

                await until(no_stream_open)
            # ...and a retrieval that could now go on does not reach the engine.
            held.release.set()
            await anyio.lowlevel.checkpoint()
        assert not held.done and not replay.opened

    anyio.run(main)


def test_the_sdk_reads_opened_streams_of_every_endpoint(stack: RetrievalStack) -> None:
    """The opening comment and keep-alives are SSE comments: SDK parsers skip them."""
    replay = engine()

    async def main() -> tuple[list[str], list[str]]:
        async with serving(stack, replay, stream_keepalive_s=0.01) as url:
            sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            chat_stream = await sdk.chat.completions.create(
                model="docs",
                messages=QUESTION,
                stream=True,
            )
            chat_kinds: list[str] = [chunk.object async for chunk in chat_stream]
            response_stream = await sdk.responses.create(
                model="docs", input="What does error HX-7731 mean?", stream=True
            )
            response_kinds: list[str] = [event.type async for event in response_stream]
            await sdk.close()
            return chat_kinds, response_kinds

    chat_kinds, response_kinds = anyio.run(main)
    assert chat_kinds and set(chat_kinds) == {"chat.completion.chunk"}
    assert response_kinds[0] == "response.created" and response_kinds[-1] == "response.completed"
