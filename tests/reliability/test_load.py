"""Sustained load through a real gateway process on a fast synthetic upstream.

The short run of ``make soak`` (tests/reliability/soak.py): 100 concurrent streams for
10 s; every stream finishes or is refused by admission control (429), nothing is left
behind afterwards. Memory growth is the soak's check (10 s is too short to judge it).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support.load import (
    SYNTHETIC_MODEL,
    Leftovers,
    chat_body,
    read_stream,
    settle,
    sustained_load,
    synthetic_stack,
)

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process


def test_100_streams_for_10_s_all_finish_and_leave_nothing_behind(artifacts_dir: Path) -> None:
    with synthetic_stack(artifacts_dir) as (upstream, gw):
        url = f"{gw.url}/v1/chat/completions"
        body = chat_body(SYNTHETIC_MODEL, max_tokens=32)
        assert asyncio.run(read_stream(url, body)).finished  # warm: imports, a pooled connection
        upstream_port = urlparse(upstream.url).port
        assert upstream_port is not None
        before = Leftovers.of(gw, upstream_port)

        report = asyncio.run(sustained_load(url, body, concurrency=100, seconds=10, watch=gw))

        after = settle(gw, upstream_port, before, timeout=10)
        summary = {**report.summary(), "before": vars(before), "after": vars(after)}
        (artifacts_dir / "load-short.json").write_text(json.dumps(summary, indent=2))
        print(f"\n{json.dumps(summary)}")
        assert not report.unexpected, report.unexpected[:10]
        assert report.statuses[200] >= 100  # the run did stream (a dead stack fails here)
        assert after.settled_back_to(before), (before, after)
