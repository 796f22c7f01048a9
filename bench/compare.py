"""What ragserve costs a request next to vLLM directly and next to LiteLLM's proxy.

One run starts its own processes (a gateway, LiteLLM's proxy, optionally a synthetic
upstream), then streams chats at each concurrency level through (a) the upstream directly,
(b) ragserve with RAG off, (c) ragserve with RAG on, (d) LiteLLM — interleaved round by
round — and reports first-token time, inter-token time, tokens/s and errors, their medians
and their ratios to (a). Bounded in requests and time; loopback only.

    python -m bench --concurrency 1 8 64 --max-tokens 32 --rounds 2            # the engine
    python -m bench --upstream synthetic --concurrency 1 16 64 --rounds 3      # pure overhead
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.loadgen import require_loopback
from bench.machine import REPO, load_average, machine, versions
from bench.prompts import QUESTIONS
from bench.record import RunRecord
from bench.report import markdown
from bench.runner import measure
from bench.schedule import interleave
from bench.stack import TARGET_NAMES, StackConfig, running_stack

DEFAULT_LITELLM_VENV = REPO / ".venv-litellm"


def batch_size(concurrency: int, min_requests: int, waves: int) -> int:
    """Enough requests that every stream runs ``waves`` times, and never fewer than the floor."""
    return max(min_requests, waves * concurrency)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("--name", help="the run's name (default: the upstream's)")
    parser.add_argument("--upstream", choices=["engine", "synthetic"], default="engine")
    parser.add_argument("--engine-url", default="http://127.0.0.1:8100", help="a running vLLM")
    parser.add_argument("--engine-model", default="smollm2-135m-instruct")
    parser.add_argument("--targets", nargs="+", choices=TARGET_NAMES, default=list(TARGET_NAMES))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32, help="output tokens a request")
    parser.add_argument("--min-requests", type=int, default=8, help="the fewest a batch sends")
    parser.add_argument("--waves", type=int, default=1, help="requests per stream a batch")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured requests a target")
    parser.add_argument("--batch-time-limit", type=float, default=300.0, help="seconds")
    parser.add_argument("--deadline", type=float, default=3600.0, help="seconds, all batches")
    parser.add_argument(
        "--synthetic-delay-ms", type=float, default=20.0, help="between tokens (a GPU-like 50/s)"
    )
    parser.add_argument("--synthetic-first-token-ms", type=float, default=0.0)
    parser.add_argument("--litellm-venv", type=Path, default=DEFAULT_LITELLM_VENV)
    parser.add_argument("--out", type=Path, help="the JSON (default bench/results/NAME.json)")
    parser.add_argument("--plots", type=Path, help="write PNG plots here (e.g. docs/img)")
    parser.add_argument("--logs", type=Path, default=REPO / "data" / "logs" / "bench")
    args = parser.parse_args(argv)
    if "direct" not in args.targets:
        parser.error("--targets must include 'direct': every ratio is to it")
    if min(args.concurrency) < 1 or args.rounds < 1 or args.max_tokens < 1:
        parser.error("--concurrency, --rounds and --max-tokens must be positive")
    try:  # before any process is pointed at it
        args.engine_url = require_loopback(args.engine_url)
    except ValueError as exc:
        parser.error(str(exc))
    args.name = args.name or args.upstream
    args.out = args.out or REPO / "bench" / "results" / f"{args.name}.json"
    return args


def run(args: argparse.Namespace) -> RunRecord:
    config = StackConfig(
        targets=tuple(args.targets),
        logs=args.logs / args.name,
        upstream=args.upstream,
        engine_url=args.engine_url,
        engine_model=args.engine_model,
        synthetic_delay_ms=args.synthetic_delay_ms,
        synthetic_first_token_ms=args.synthetic_first_token_ms,
        litellm_venv=args.litellm_venv,
    )
    asked = {key: value for key, value in vars(args).items() if key not in {"out", "plots"}}
    record = RunRecord(
        name=args.name,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        config={key: str(v) if isinstance(v, Path) else v for key, v in asked.items()},
        machine=machine(),
        versions=versions(args.litellm_venv / "bin" / "python"),
        targets=list(args.targets),
    )
    plan = interleave(args.targets, args.concurrency, args.rounds)
    starting = time.monotonic()
    with running_stack(config) as targets:
        print(f"started {', '.join(t.name for t in targets)} in "
              f"{time.monotonic() - starting:.0f} s; {len(plan)} batches", flush=True)  # fmt: skip
        record.batches, record.notes = asyncio.run(
            measure(
                targets,
                plan,
                prompts=QUESTIONS,
                max_tokens=args.max_tokens,
                requests_for=lambda level: batch_size(level, args.min_requests, args.waves),
                batch_time_limit_s=args.batch_time_limit,
                deadline_s=args.deadline,
                warmup=args.warmup,
            )
        )
    record.machine["load_average_after"] = load_average()
    return record


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C does, so the processes this run started are stopped.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        record = run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
    record.save(args.out)
    written: list[Path] = []
    if args.plots:
        from bench.plots import plot_run

        written = plot_run(record, args.plots)
    print(markdown(record, written, REPO / "docs"))
    print(f"saved {args.out}" + "".join(f"\nplot {path}" for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
