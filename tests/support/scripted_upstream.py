"""A scripted OpenAI-compatible upstream for FAULT INJECTION only.

It streams a few chunks and then fails on cue (drops the connection, or sends an error
event, or goes silent). It proves nothing about features: the real vLLM engine does that.
Run: ``python -m tests.support.scripted_upstream --port N --fault drop|error|stall|silent|hang``.
Faults: ``drop``/``error``/``stall`` after three chunks; ``silent`` sends the response headers
and then nothing; ``hang`` never answers at all, not even with headers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


def _chunk(text: str) -> bytes:
    body = {
        "id": "x", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


def build(fault: str, model: str = "scripted") -> Starlette:
    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": model, "max_model_len": 2048}]})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({})

    async def chat(_: Request) -> StreamingResponse:
        if fault == "hang":
            await asyncio.sleep(3600)

        async def body() -> AsyncIterator[bytes]:
            if fault == "silent":
                await asyncio.sleep(3600)
            for word in ("one", " two", " three"):
                yield _chunk(word)
                await asyncio.sleep(0.05)
            if fault == "error":
                yield b'data: {"error": {"message": "engine exploded", "code": 500}}\n\n'
            elif fault == "stall":
                await asyncio.sleep(3600)
            else:  # drop: end the body without finish_reason or [DONE]
                raise RuntimeError("scripted upstream drops the connection")

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/health", health),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--fault", choices=["drop", "error", "stall", "silent", "hang"], default="drop"
    )
    parser.add_argument("--model", default="scripted", help="the model name it claims to serve")
    args = parser.parse_args()
    app = build(args.fault, args.model)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
