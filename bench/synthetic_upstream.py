"""A fast synthetic OpenAI-compatible upstream, for LOAD GENERATION only.

It streams ``max_tokens`` copies of one token with a fixed delay between them and never
looks at the prompt, so what a proxy in front of it costs is not hidden behind a slow
model (a 135M model on two CPU cores takes ~100 ms a token; this takes ~0). It proves
nothing about features; the real vLLM engine does that.

    python -m bench.synthetic_upstream --port 8300 --delay-ms 20 --model synthetic
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

TOKEN = " tok"
MAX_MODEL_LEN = 2048


def _frame(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-synthetic", "object": "chat.completion.chunk", "created": 0,
        "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }  # fmt: skip


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    # About four characters a token, plus the chat template's few per message: an
    # estimate is all a load generator needs (the gateway sizes RAG context with it).
    text = sum(len(str(message.get("content", ""))) for message in messages)
    return text // 4 + 4 * len(messages) + 1


def build(model: str, delay_ms: float, first_token_ms: float, default_tokens: int) -> Starlette:
    token_frame = _frame(_chunk(model, {"content": TOKEN}))
    role_frame = _frame(_chunk(model, {"role": "assistant", "content": ""}))
    finish_frame = _frame(_chunk(model, {}, "length"))

    async def stream(tokens: int, prompt_tokens: int, usage: bool) -> AsyncIterator[bytes]:
        yield role_frame
        await asyncio.sleep(first_token_ms / 1000)
        for index in range(tokens):
            if index:
                await asyncio.sleep(delay_ms / 1000)
            yield token_frame
        yield finish_frame
        if usage:
            counts = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                      "total_tokens": prompt_tokens + tokens}  # fmt: skip
            yield _frame({**_chunk(model, {}), "choices": [], "usage": counts})
        yield b"data: [DONE]\n\n"

    async def chat(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or default_tokens)
        prompt_tokens = _prompt_tokens(body.get("messages") or [])
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                stream(tokens, prompt_tokens, usage), media_type="text/event-stream"
            )
        await asyncio.sleep((first_token_ms + delay_ms * max(tokens - 1, 0)) / 1000)
        return JSONResponse({
            "id": "chatcmpl-synthetic", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": TOKEN * tokens}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                      "total_tokens": prompt_tokens + tokens},
        })  # fmt: skip

    async def tokenize(request: Request) -> JSONResponse:
        body = await request.json()
        messages = body.get("messages") or [{"content": body.get("prompt", "")}]
        return JSONResponse({"count": _prompt_tokens(messages), "max_model_len": MAX_MODEL_LEN})

    async def models(_: Request) -> JSONResponse:
        card = {"id": model, "object": "model", "owned_by": "synthetic",
                "max_model_len": MAX_MODEL_LEN}  # fmt: skip
        return JSONResponse({"object": "list", "data": [card]})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/tokenize", tokenize, methods=["POST"]),
            Route("/v1/models", models),
            Route("/health", health),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="synthetic")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="between tokens")
    parser.add_argument("--first-token-ms", type=float, default=0.0, help="a simulated prefill")
    parser.add_argument("--tokens", type=int, default=64, help="when a request sets no max_tokens")
    args = parser.parse_args()
    app = build(args.model, args.delay_ms, args.first_token_ms, args.tokens)
    # Loopback only, no access log: the upstream must cost as little as it can.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
