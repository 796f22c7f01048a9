"""The relay benchmark's own logic: h2load's report, the per-token arithmetic, the replay's
bytes. No load, no timing."""

from __future__ import annotations

import json

import pytest

from bench.h2load import H2loadReport, ms, parse
from bench.relay_figures import (
    Measured,
    goals,
    hot_spots,
    marginal_us_per_token,
    per_token_us,
    prometheus_value,
    ratio,
    summarise,
)
from bench.replay_upstream import Recording, Script

TRAFFIC = (
    "traffic: 1003.75KB (1027840) total, 5.56KB (5696) headers (space savings 0.00%), "
    "970.75KB (994048) data"
)
H2LOAD_OUTPUT = f"""\
starting benchmark...
spawning thread #0: 32 total client(s). 64 total requests
Application protocol: http/1.1

finished in 2.60s, 24.59 req/s, 385.68KB/s
requests: 64 total, 64 started, 64 done, 62 succeeded, 2 failed, 2 errored, 0 timeout
status codes: 62 2xx, 0 3xx, 0 4xx, 0 5xx
{TRAFFIC}
                     min         max         mean         sd        +/- sd
time for request:      1.27s       1.31s       1.29s     19.87ms    98.44%
time for connect:      142us      3.84ms      1.99ms      1.27ms    50.00%
time to 1st byte:     2.86ms      6.38ms      4.63ms      1.22ms    50.00%
req/s           :       0.77        0.77        0.77        0.00    50.00%
"""


def report(succeeded: int = 64, duration_ms: float = 2000.0) -> H2loadReport:
    return H2loadReport(duration_ms, 64, succeeded, 64 - succeeded, 0, 0, succeeded, 0, 0,
                        None, None, None, None)  # fmt: skip


def test_h2load_durations_in_milliseconds() -> None:
    assert ms("147", "us") == pytest.approx(0.147)
    assert ms("1.07", "ms") == pytest.approx(1.07)
    assert ms("1.26", "s") == pytest.approx(1260.0)


def test_h2load_report_is_parsed() -> None:
    parsed = parse(H2LOAD_OUTPUT)
    assert parsed.duration_ms == pytest.approx(2600.0)
    assert (parsed.requests, parsed.succeeded, parsed.failed) == (64, 62, 2)
    assert parsed.errors == 2
    assert parsed.data_bytes == 994048
    assert parsed.ttfb_min_ms == pytest.approx(2.86)
    assert parsed.ttfb_mean_ms == pytest.approx(4.63)
    assert parsed.request_mean_ms == pytest.approx(1290.0)


def test_a_cut_run_is_not_a_report() -> None:
    with pytest.raises(ValueError):
        parse("starting benchmark...\nprogress: 10% done\n")


def test_tokens_count_whole_streams_only() -> None:
    run = Measured("ragserve", 64, 64, report(succeeded=60, duration_ms=2000.0), cpu_s=0.192)
    assert run.tokens == 60 * 64
    assert run.tokens_per_s == pytest.approx(60 * 64 / 2.0)
    assert run.cpu_us_per_token == pytest.approx(0.192e6 / (60 * 64))


def test_per_token_needs_cpu_and_tokens() -> None:
    assert per_token_us(None, 100) is None
    assert per_token_us(1.0, 0) is None
    assert ratio(3.0, 4.0) == 0.75 and ratio(3.0, None) is None


def test_marginal_cost_cancels_what_every_request_pays() -> None:
    # 2 ms a request (retrieval, first and last chunks) + 20 µs a token, at two lengths.
    long = Measured("rag", 64, 64, report(), cpu_s=64 * (2e-3 + 64 * 20e-6))
    short = Measured("rag", 64, 8, report(), cpu_s=64 * (2e-3 + 8 * 20e-6))
    assert marginal_us_per_token(long, short) == pytest.approx(20.0)
    assert marginal_us_per_token(short, long) is None  # not a longer stream
    assert marginal_us_per_token(long, Measured("rag", 64, 8, report())) is None


def test_prometheus_counter_by_label() -> None:
    text = (
        "# TYPE ragserve_tokens_total counter\n"
        'ragserve_tokens_total{direction="in"} 17.0\n'
        'ragserve_tokens_total{direction="out"} 1024.0\n'
    )
    assert prometheus_value(text, "ragserve_tokens_total", {"direction": "out"}) == 1024.0
    assert prometheus_value(text, "ragserve_tokens_total", {"direction": "up"}) is None


def test_hot_spots_by_self_and_total_share() -> None:
    collapsed = "main (a.py:1);relay (r.py:9) 3\nmain (a.py:1);send (s.py:4) 1\n"
    spots = hot_spots(collapsed)
    assert spots["self"][0] == ("relay (r.py:9)", 0.75)
    assert spots["total"][0] == ("main (a.py:1)", 1.0)


def test_summary_and_goals() -> None:
    runs = [
        Measured("direct", 64, 64, report(duration_ms=1000.0), cpu_s=0.05),
        Measured("ragserve", 64, 64, report(duration_ms=1250.0), cpu_s=0.08192),
    ]
    ttfb = {"direct": {"added_p50_ms": 0.0}, "ragserve": {"added_p50_ms": 0.6}}
    summary = summarise(runs, {"ragserve": 20.0, "ragserve-rag": 30.0}, ttfb, {})
    assert summary["ragserve_ratio"][64] == pytest.approx(0.8)
    assert summary["ragserve_cpu_us_per_token"][64] == pytest.approx(20.0)
    verdicts = {goal.split(" (")[0]: verdict for goal, _, verdict in goals(summary)}
    assert verdicts["gateway CPU per token ≤ 25 µs"] == "met"
    assert verdicts["tokens/s ≥ 0.97 of direct"] == "**missed**"
    assert verdicts["added TTFB p50 ≤ 1 ms"] == "met"
    assert verdicts["RAG on: per-token cost after the sources chunk = RAG off's"] == "**missed**"


def test_recording_is_vllm_chat_stream_with_usage() -> None:
    recording = Recording.load()
    assert len(recording.tokens) == 64
    assert b'"finish_reason":"length"' in recording.tokens[-1]
    assert b'"completion_tokens":64' in recording.usage
    assert recording.model == "smollm2-135m-instruct"


def test_replay_varies_identity_and_keeps_every_chunk_size() -> None:
    recording = Recording.load()
    script = Script(recording, 64)
    first = script.render(b"chatcmpl-" + b"0" * 15 + b"1", b"1800000000")
    again = script.render(b"chatcmpl-" + b"0" * 15 + b"2", b"1800000001")
    assert len(first) == 64  # role + token 1 together, then one group per token
    assert [len(group) for group in first] == [len(group) for group in again]
    assert recording.stream_id not in b"".join(first)
    assert b'"created":1800000000' in first[0]
    assert first[-1].endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")


def test_a_shorter_replay_recounts_its_usage() -> None:
    groups = Script(Recording.load(), 8).render(b"chatcmpl-" + b"a" * 16, b"1800000000")
    assert len(groups) == 8
    usage = next(line for line in b"".join(groups).split(b"\n") if b'"usage"' in line)
    assert json.loads(usage[6:])["usage"]["completion_tokens"] == 8
    assert b'"finish_reason":"length"' in groups[-1]
