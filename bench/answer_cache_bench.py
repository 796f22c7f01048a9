"""What the answer cache saves: the same deterministic RAG questions asked twice.

Each question of the sample corpus goes once (a miss: retrieval and the engine) and then
again (a hit: retrieval, then the kept answer), streamed, temperature 0; prints first-token
and whole-answer times of both, and the gateway's own hit counters. Loopback only.

    python -m bench.answer_cache_bench --gateway http://127.0.0.1:8000 --max-tokens 64
"""

from __future__ import annotations

import argparse
import time
import uuid

import httpx

from bench.loadgen import require_loopback
from bench.prompts import QUESTIONS
from bench.stats import median


def ask(client: httpx.Client, url: str, question: str, tokens: int) -> tuple[float, float, bool]:
    """(first token ms, whole answer ms, served from the cache)."""
    body = {"model": "docs", "messages": [{"role": "user", "content": question}],
            "stream": True, "max_tokens": tokens, "temperature": 0}  # fmt: skip
    began = time.perf_counter()
    first = None
    cached = False
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if first is None and '"content":"' in line.replace('"content":""', ""):
                first = (time.perf_counter() - began) * 1000
            cached = cached or '"cached":true' in line
    assert first is not None
    return first, (time.perf_counter() - began) * 1000, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    base = require_loopback(args.gateway)
    url = f"{base}/v1/chat/completions"
    run = uuid.uuid4().hex[:8]  # a fresh run misses: no answer kept from an earlier one
    misses, hits = [], []
    with httpx.Client(timeout=300) as client:
        for question in QUESTIONS:
            asked = f"{question} (run {run})"
            miss = ask(client, url, asked, args.max_tokens)
            hit = ask(client, url, asked, args.max_tokens)
            assert not miss[2] and hit[2], "expected a miss, then a hit"
            misses.append(miss)
            hits.append(hit)
        counters = [line for line in client.get(f"{base}/metrics").text.splitlines()
                    if line.startswith("ragserve_answer_cache_requests_total{")]  # fmt: skip
    for name, runs in (("miss", misses), ("hit", hits)):
        print(
            f"{name}: first token p50 {median([r[0] for r in runs]):.0f} ms, "
            f"whole answer p50 {median([r[1] for r in runs]):.0f} ms ({len(runs)} questions)"
        )
    print("gateway counters: " + ", ".join(counters))


if __name__ == "__main__":
    main()
