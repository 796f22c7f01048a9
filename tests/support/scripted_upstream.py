"""A scripted OpenAI-compatible upstream for FAULT INJECTION only.

It streams a few chunks and then fails on cue (drops the connection, or sends an error
event). It proves nothing about features: the real vLLM engine does that.
Run: ``python -m tests.support.scripted_upstream --port N --fault drop|error|stall``.
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

MODEL = "scripted"


def _chunk(text: str) -> bytes:
    body = {
        "id": "x", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


def build(fault: str) -> Starlette:
    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "max_model_len": 2048}]})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({})

    async def chat(_: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
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
    parser.add_argument("--fault", choices=["drop", "error", "stall"], default="drop")
    args = parser.parse_args()
    uvicorn.run(build(args.fault), host="127.0.0.1", port=args.port, log_level="warning")
