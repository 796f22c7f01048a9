"""What retrieval adds to first-token time: RAG chat vs plain chat through a running gateway.

Interleaved rounds of (a) plain chats and (b) RAG chats over the `docs` alias, on the
shared load generator; both generate a few tokens only, so first-token time dominates.
Also reads the gateway's own stage timings (Server-Timing) of the RAG requests, and
measures retrieval alone through POST /v1/search. Loopback only, bounded in count.

    python -m bench.rag_bench --gateway http://127.0.0.1:8000 --concurrency 1 16 --requests 32
"""

from __future__ import annotations

import argparse
import asyncio

import httpx

from bench.loadgen import Batch, Target, require_loopback
from bench.prompts import QUESTIONS
from bench.runner import measure
from bench.schedule import interleave
from bench.stats import median, percentile
from bench.summary import figures

GATEWAY_STAGES = ("preprocess", "embed", "search", "prompt")


async def search_ms(base: str, rounds: int) -> list[float]:
    """Embed + hybrid search as the gateway times them, one query at a time."""
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(rounds):
            body = {"query": QUESTIONS[i % len(QUESTIONS)], "collection": "docs", "top_k": 5}
            response = await client.post(f"{base}/v1/search", json=body)
            response.raise_for_status()
            timing = response.json()["timings"]
            times.append(timing["embed"] + timing["search"])
    return times


def gateway_side_ms(batches: list[Batch]) -> float:
    """The RAG stages' p50 from Server-Timing: what the gateway itself spent before the engine."""
    return median(
        [
            sum(sample.server_timing.get(stage, 0.0) for stage in GATEWAY_STAGES)
            for batch in batches
            for sample in batch.samples
            if sample.server_timing
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--plain-model", default="smollm2-135m-instruct")
    parser.add_argument("--rag-model", default="docs")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=4)
    args = parser.parse_args()
    base = require_loopback(args.gateway)
    retrieval = asyncio.run(search_ms(base, 40))
    retrieval_p50 = median(retrieval)
    print(f"retrieval alone (embed + hybrid search): p50 {retrieval_p50:.1f} ms, "
          f"p95 {percentile(retrieval, 95):.1f} ms")  # fmt: skip
    targets = [Target("plain", base, args.plain_model), Target("rag", base, args.rag_model)]
    plan = interleave([t.name for t in targets], args.concurrency, args.rounds)
    batches, _ = asyncio.run(
        measure(
            targets, plan, prompts=QUESTIONS, max_tokens=args.max_tokens,
            requests_for=lambda _: args.requests, batch_time_limit_s=600.0,
            deadline_s=600.0 * len(plan), on_batch=lambda *_: None,
        )
    )  # fmt: skip
    found = {(f.concurrency, f.target): f for f in figures(batches, ["plain", "rag"])}
    for level in args.concurrency:
        plain, rag = found[(level, "plain")].ttft_ms.p50, found[(level, "rag")].ttft_ms.p50
        rag_batches = [b for b in batches if b.target == "rag" and b.concurrency == level]
        stages = gateway_side_ms(rag_batches)
        print(f"concurrency {level}: first token p50 plain {plain:.0f} ms, RAG {rag:.0f} ms; "
              f"added {rag - plain:.0f} ms (goal <= retrieval p50 + 5 = {retrieval_p50 + 5:.1f}"
              f" ms); gateway-side RAG stages p50 {stages:.1f} ms (preprocess+embed+search+"
              "prompt); the rest is the engine reading the longer prompt")  # fmt: skip


if __name__ == "__main__":
    main()
