"""Streaming throughput and first-token time: vLLM directly vs through the gateway.

A bounded load generator (loopback only): each target gets ``--requests`` streamed chat
completions at each concurrency level, the targets interleaved round by round so machine
noise hits both alike. Prints medians and the gateway/direct ratios.

    python bench/stream_bench.py --direct http://127.0.0.1:8100 \
        --gateway http://127.0.0.1:8000 --concurrency 1 8 --requests 8 --max-tokens 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Run:
    ttft_ms: list[float] = field(default_factory=list)
    tokens: int = 0
    wall_s: float = 0.0
    errors: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0


async def one_stream(client: httpx.AsyncClient, url: str, body: dict, run: Run) -> None:
    began = time.perf_counter()
    first = None
    try:
        async with client.stream("POST", url, json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(chunk["error"])
                if chunk.get("usage"):
                    run.tokens += chunk["usage"]["completion_tokens"]
                if (
                    first is None
                    and chunk.get("choices")
                    and chunk["choices"][0]["delta"].get("content")
                ):
                    first = time.perf_counter()
                    run.ttft_ms.append((first - began) * 1000)
    except Exception:  # noqa: BLE001 - counted, the benchmark goes on
        run.errors += 1


async def measure(base: str, model: str, concurrency: int, requests: int, max_tokens: int) -> Run:
    body = {
        "model": model,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse."}],
    }
    # temperature 0: both targets generate the very same tokens, so the work is identical.
    run = Run()
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:

        async def guarded() -> None:
            async with limit:
                await one_stream(client, f"{base}/v1/chat/completions", body, run)

        began = time.perf_counter()
        await asyncio.gather(*(guarded() for _ in range(requests)))
        run.wall_s = time.perf_counter() - began
    return run


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to load {url}: benchmarks target loopback only")
    return url.rstrip("/")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--direct", required=True, help="vLLM base URL")
    parser.add_argument("--gateway", required=True, help="ragserve base URL")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=8, help="per target and level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    args = parser.parse_args()
    targets = {"direct": check_loopback(args.direct), "gateway": check_loopback(args.gateway)}
    print(f"{'target':8} {'conc':>4} {'tok/s':>8} {'ttft p50 ms':>12} {'errors':>6}")
    for concurrency in args.concurrency:
        per_target: dict[str, list[Run]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, base in targets.items():
                per_target[name].append(
                    await measure(base, args.model, concurrency, args.requests, args.max_tokens)
                )
        summary = {}
        for name, runs in per_target.items():
            tps = statistics.median(r.tokens_per_s for r in runs)
            ttft = statistics.median(t for r in runs for t in r.ttft_ms) if runs[0].ttft_ms else 0
            errors = sum(r.errors for r in runs)
            summary[name] = (tps, ttft)
            print(f"{name:8} {concurrency:>4} {tps:>8.1f} {ttft:>12.1f} {errors:>6}")
        ratio = summary["gateway"][0] / summary["direct"][0] if summary["direct"][0] else 0
        added = summary["gateway"][1] - summary["direct"][1]
        print(f"  gateway/direct tokens/s = {ratio:.3f}; added first-token time = {added:+.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
