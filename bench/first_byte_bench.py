"""When a RAG stream shows life: first byte, first event and first token, through a gateway.

Each level sends ``--requests`` streamed RAG chats over the `docs` alias through
``concurrency`` workers (closed loop), varied questions, a few tokens each, and records per
stream: the first body byte (an SSE comment when the stream opens at once), the first data
event (the sources chunk) and the first generated text. Run it against two gateways (say,
before and after a change) on the same engine. Loopback only, bounded in count and time.

    python -m bench.first_byte_bench --gateway http://127.0.0.1:8000 --concurrency 1 16
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from dataclasses import dataclass

import httpx

from bench.loadgen import require_loopback
from bench.prompts import QUESTIONS
from bench.stats import median, percentile


@dataclass
class Times:
    first_byte_ms: float
    first_event_ms: float
    first_text_ms: float


async def one_stream(client: httpx.AsyncClient, url: str, question: str, tokens: int) -> Times:
    body = {"model": "docs", "messages": [{"role": "user", "content": question}],
            "stream": True, "max_tokens": tokens, "temperature": 0}  # fmt: skip
    began = time.perf_counter()
    first_byte = first_event = first_text = None
    buffered = b""
    headers = {"Cache-Control": "no-store"}  # the engine path, not the answer cache
    async with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            now = (time.perf_counter() - began) * 1000
            first_byte = first_byte if first_byte is not None else now
            buffered += chunk
            if first_event is None and b"data: {" in buffered:
                first_event = now
            if first_text is None and b'"content":"' in buffered.replace(b'"content":""', b""):
                first_text = now
    assert first_byte is not None and first_event is not None and first_text is not None
    return Times(first_byte, first_event, first_text)


async def level(base: str, concurrency: int, requests: int, tokens: int) -> list[Times]:
    url = f"{base}/v1/chat/completions"
    questions = itertools.cycle(QUESTIONS)
    left = iter(range(requests))
    out: list[Times] = []
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            for _ in left:
                out.append(await one_stream(client, url, next(questions), tokens))

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 600)
    return out


def line(name: str, values: list[float]) -> str:
    return f"{name} p50 {median(values):.0f} ms, p90 {percentile(values, 90):.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=4)
    args = parser.parse_args()
    base = require_loopback(args.gateway)
    asyncio.run(level(base, 1, 2, args.max_tokens))  # warm: embedder, engine prefix cache
    for concurrency in args.concurrency:
        times = asyncio.run(level(base, concurrency, args.requests, args.max_tokens))
        print(f"{concurrency:>3} streams ({len(times)}): "
              + "; ".join([line("first byte", [t.first_byte_ms for t in times]),
                           line("sources event", [t.first_event_ms for t in times]),
                           line("first token", [t.first_text_ms for t in times])]))  # fmt: skip


if __name__ == "__main__":
    main()
