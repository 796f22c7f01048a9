"""Streaming throughput and first-token time against servers already running.

vLLM directly vs a running ragserve gateway, interleaved round by round, on the shared
load generator; prints the same report as ``python -m bench`` (which starts its own
processes and adds RAG on and LiteLLM). Loopback only, bounded in requests and time.

    python bench/stream_bench.py --direct http://127.0.0.1:8100 \
        --gateway http://127.0.0.1:8000 --concurrency 1 8 --requests 8 --max-tokens 64
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import Target
from bench.machine import load_average, machine, versions
from bench.record import RunRecord
from bench.report import markdown
from bench.runner import measure
from bench.schedule import interleave

PROMPT = "Tell me a long story about a lighthouse."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--direct", required=True, help="vLLM base URL")
    parser.add_argument("--gateway", required=True, help="ragserve base URL")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=8, help="per target and level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--batch-time-limit", type=float, default=300.0, help="seconds")
    parser.add_argument("--out", type=Path, help="save the run's JSON here")
    args = parser.parse_args()
    targets = [
        Target("direct", args.direct, args.model),
        Target("ragserve", args.gateway, args.model),
    ]
    record = RunRecord(
        name="stream-bench",
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        config={
            "upstream": "engine",
            "max_tokens": args.max_tokens,
            "rounds": args.rounds,
            "batch_time_limit": args.batch_time_limit,
        },  # fmt: skip
        machine=machine(),
        versions=versions(),
        targets=[target.name for target in targets],
    )
    plan = interleave(record.targets, args.concurrency, args.rounds)
    record.batches, record.notes = asyncio.run(
        measure(
            targets, plan, prompts=[PROMPT], max_tokens=args.max_tokens,
            requests_for=lambda _: args.requests, batch_time_limit_s=args.batch_time_limit,
            deadline_s=args.batch_time_limit * len(plan),
        )
    )  # fmt: skip
    record.machine["load_average_after"] = load_average()
    if args.out:
        record.save(args.out)
    print(markdown(record))


if __name__ == "__main__":
    main()
