"""The soak run (``make soak``): sustained streams through a real gateway process.

500 concurrent streams for 60 s against bench's synthetic upstream (fast, so the gateway is
what is measured). Passes when every stream finishes or is refused by admission control
(429), the gateway's resident memory grows at most 5 % from the end of the warm-up to the
end of the run, and the gateway is back to idle afterwards (no open streams, no extra tasks
or descriptors). Prints the figures (p50/p99 first-token time, RSS) and writes them to
``test-artifacts/soak.json``; exits 1 on failure. Bounded: ``--seconds`` plus the last
streams' length plus start-up.

    HF_HUB_OFFLINE=1 .venv/bin/python -m tests.reliability.soak [--streams 500 --seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import urlparse

from tests.support.load import (
    SYNTHETIC_MODEL,
    Leftovers,
    chat_body,
    read_stream,
    settle,
    sustained_load,
    synthetic_stack,
)
from tests.support.processes import REPO


def soak(
    streams: int, seconds: float, warm_up_s: float, max_growth: float, artifacts: Path
) -> bool:
    artifacts.mkdir(exist_ok=True)
    with synthetic_stack(artifacts) as (upstream, gw):
        url = f"{gw.url}/v1/chat/completions"
        body = chat_body(SYNTHETIC_MODEL, max_tokens=32)
        assert asyncio.run(read_stream(url, body)).finished
        upstream_port = urlparse(upstream.url).port
        assert upstream_port is not None
        before = Leftovers.of(gw, upstream_port)

        report = asyncio.run(
            sustained_load(url, body, concurrency=streams, seconds=seconds, watch=gw)
        )

        after = settle(gw, upstream_port, before, timeout=30)
        growth = report.rss_growth(warm_up_s)
        rss = [rss for at, rss in report.rss_samples if at >= warm_up_s]
        summary = {
            **report.summary(),
            "concurrency": streams,
            "seconds": seconds,
            "rss_after_warm_up_mb": round(rss[0] / 2**20, 1) if rss else None,
            "rss_end_mb": round(rss[-1] / 2**20, 1) if rss else None,
            "rss_peak_mb": round(max(r for _, r in report.rss_samples) / 2**20, 1),
            "rss_growth": None if growth is None else round(growth, 4),
            "before": vars(before),
            "after": vars(after),
        }
    checks = {
        "only 200s and 429s": not report.unexpected,
        "streams completed": report.statuses[200] >= streams,
        f"RSS growth <= {max_growth:.0%} after warm-up": growth is not None
        and growth <= max_growth,
        "back to idle": after.settled_back_to(before),
    }
    summary["checks"] = checks
    (artifacts / "soak.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return all(checks.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=500, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warm-up", type=float, default=15.0, help="seconds before RSS counts")
    parser.add_argument("--max-growth", type=float, default=0.05)
    args = parser.parse_args()
    ok = soak(args.streams, args.seconds, args.warm_up, args.max_growth, REPO / "test-artifacts")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
