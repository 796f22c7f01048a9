"""What retrieval adds to first-token time: RAG chat vs plain chat through the gateway.

For each concurrency level, interleaved rounds of (a) plain chats and (b) RAG chats over
the `docs` alias; both generate a few tokens only, so first-token time dominates. Also
reads the gateway's own stage timings (Server-Timing) for the RAG requests, and measures
retrieval alone through POST /v1/search. Loopback only, bounded in count.

    python bench/rag_bench.py --gateway http://127.0.0.1:8000 --concurrency 1 16 --requests 32
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from bench.stream_bench import check_loopback

QUESTIONS = [
    "What does error HX-7731 mean?",
    "How many events per second can one collector ingest?",
    "How long are raw readings kept?",
    "What is the support mascot called?",
    "Which release introduced delta compression?",
    "How much does the Fleet plan cost?",
    "Who founded Brightwater Instruments?",
    "How long does a gateway buffer readings offline?",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def server_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


async def first_token_ms(
    client: httpx.AsyncClient, base: str, model: str, question: str, stages: list[dict]
) -> float:
    body = {
        "model": model,
        "stream": True,
        "max_tokens": 4,
        "temperature": 0,
        "messages": [{"role": "user", "content": question}],
    }
    began = time.perf_counter()
    async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        if "server-timing" in response.headers:
            stages.append(server_timing(response.headers["server-timing"]))
        lines = response.aiter_lines()  # one iterator: the body can be read only once
        async for line in lines:
            if '"content":"' in line and '"content":""' not in line:
                took = (time.perf_counter() - began) * 1000
                break
        else:
            raise RuntimeError("no token")
        async for _ in lines:
            pass
    return took


async def level(base: str, model: str, concurrency: int, requests: int) -> tuple[list, list]:
    limit = asyncio.Semaphore(concurrency)
    stages: list[dict] = []
    async with httpx.AsyncClient(timeout=300) as client:

        async def one(i: int) -> float:
            async with limit:
                return await first_token_ms(
                    client, base, model, QUESTIONS[i % len(QUESTIONS)], stages
                )

        times = await asyncio.gather(*(one(i) for i in range(requests)))
    return list(times), stages


async def search_ms(base: str, rounds: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(rounds):
            body = {"query": QUESTIONS[i % len(QUESTIONS)], "collection": "docs", "top_k": 5}
            response = await client.post(f"{base}/v1/search", json=body)
            timing = response.json()["timings"]
            times.append(timing["embed"] + timing["search"])
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--plain-model", default="smollm2-135m-instruct")
    parser.add_argument("--rag-model", default="docs")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    base = check_loopback(args.gateway)
    retrieval = await search_ms(base, 40)
    retrieval_p50 = statistics.median(retrieval)
    print(f"retrieval alone (embed + hybrid search): p50 {retrieval_p50:.1f} ms, "
          f"p95 {pct(retrieval, 0.95):.1f} ms")  # fmt: skip
    for concurrency in args.concurrency:
        plain: list[float] = []
        rag: list[float] = []
        stages: list[dict] = []
        for _ in range(args.rounds):
            plain += (await level(base, args.plain_model, concurrency, args.requests))[0]
            times, st = await level(base, args.rag_model, concurrency, args.requests)
            rag += times
            stages += st
        added = statistics.median(rag) - statistics.median(plain)
        gateway_side = statistics.median(
            s.get("embed", 0) + s.get("search", 0) + s.get("prompt", 0) + s.get("preprocess", 0)
            for s in stages
        )
        print(f"concurrency {concurrency}: first token p50 plain {statistics.median(plain):.0f} ms,"
              f" RAG {statistics.median(rag):.0f} ms; added {added:.0f} ms "
              f"(goal <= retrieval p50 + 5 = {retrieval_p50 + 5:.1f} ms); gateway-side RAG "
              f"stages p50 {gateway_side:.1f} ms (preprocess+embed+search+prompt); the rest is "
              "the engine reading the longer prompt")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
