"""Figures per target and level, overheads next to the baseline, and the goal verdicts."""

from __future__ import annotations

import math

import pytest

from bench.loadgen import Batch, StreamSample
from bench.report import goal_checks
from bench.summary import figures, overheads

TARGETS = ["direct", "ragserve", "litellm"]


def stream(ttft: float, tokens: int = 11, itl: float = 2.0) -> StreamSample:
    last = ttft + itl * (tokens - 1)
    return StreamSample(ttft_ms=ttft, last_token_ms=last, total_ms=last + 1, tokens=tokens)


def batch(target: str, ttfts: list[float], *, level: int = 1, round_: int = 0,
          wall_s: float = 1.0, failed: int = 0) -> Batch:  # fmt: skip
    samples = [stream(t) for t in ttfts] + [StreamSample(error="HTTP 500")] * failed
    return Batch(target, level, round_, len(samples), samples, wall_s)


def test_a_stream_knows_its_mean_inter_token_time() -> None:
    assert stream(100.0, tokens=11, itl=3.0).itl_ms == pytest.approx(3.0)
    assert StreamSample(ttft_ms=5.0, last_token_ms=5.0, tokens=1).itl_ms is None
    failed = StreamSample(ttft_ms=5.0, last_token_ms=9.0, tokens=3, error="error event: x")
    assert not failed.ok and failed.itl_ms is None


def test_a_batch_counts_tokens_of_good_streams_and_errors_including_cut_ones() -> None:
    run = batch("direct", [10.0, 20.0], wall_s=2.0, failed=1)
    run.cut_by_time_limit = 2
    assert run.tokens == 22
    assert run.tokens_per_s == 11.0
    assert run.errors == 3


def test_figures_pool_rounds_and_keep_each_rounds_throughput() -> None:
    batches = [
        batch("ragserve", [12.0, 14.0], round_=0, wall_s=1.0),
        batch("direct", [10.0, 11.0], round_=0, wall_s=1.0),
        batch("direct", [12.0, 13.0], round_=1, wall_s=2.0),
        batch("ragserve", [13.0, 15.0], round_=1, wall_s=2.0),
        batch("direct", [50.0], level=8),
    ]
    found = figures(batches, TARGETS)
    assert [(f.concurrency, f.target) for f in found] == [(1, "direct"), (1, "ragserve"),
                                                           (8, "direct")]  # fmt: skip
    direct = found[0]
    assert direct.requests == 4 and direct.errors == 0
    assert direct.ttft_ms.n == 4 and direct.ttft_ms.p50 == 11.5
    assert direct.itl_ms.p50 == pytest.approx(2.0)
    assert direct.tokens_per_s_by_round == (22.0, 11.0)
    assert direct.tokens_per_s == 16.5


def test_server_cpu_is_per_request_served_and_nan_when_not_measured() -> None:
    measured = [batch("ragserve", [1.0, 2.0]), batch("ragserve", [1.0, 2.0], round_=1)]
    measured[0].server_cpu_s, measured[1].server_cpu_s = 0.5, 0.3
    unmeasured = batch("direct", [1.0])
    found = {f.target: f for f in figures([*measured, unmeasured], TARGETS)}
    assert found["ragserve"].server_cpu_ms_per_request == pytest.approx(200.0)
    assert math.isnan(found["direct"].server_cpu_ms_per_request)


def test_noise_larger_than_the_goal_is_reported_as_such_not_as_met() -> None:
    batches = [batch("direct", [100.0]), batch("ragserve", [50.0], wall_s=0.5),
               batch("litellm", [120.0])]  # fmt: skip
    checks = goal_checks(overheads(batches, TARGETS))
    assert [c.met for c in checks] == [None, None, None]  # 50 ms faster, 2x the throughput


def test_a_batch_cut_by_its_time_limit_gives_no_throughput() -> None:
    whole, cut = batch("direct", [1.0], round_=0), batch("direct", [], round_=1)
    cut.cut_by_time_limit = 1
    (found,) = figures([whole, cut], TARGETS)
    assert found.tokens_per_s_by_round == (11.0,) and found.errors == 1


def test_overheads_are_against_direct_with_a_figure_per_round() -> None:
    batches = [
        batch("direct", [10.0, 10.0], round_=0),
        batch("ragserve", [11.0, 11.0], round_=0),
        batch("litellm", [16.0, 16.0], round_=0),
        batch("direct", [20.0, 20.0], round_=1),
        batch("ragserve", [23.0, 23.0], round_=1, wall_s=2.0),
        batch("litellm", [26.0, 26.0], round_=1),
    ]
    costs = {o.target: o for o in overheads(batches, TARGETS)}
    assert set(costs) == {"ragserve", "litellm"}
    ours = costs["ragserve"]
    assert ours.added_ttft_p50_ms == pytest.approx(17.0 - 15.0)  # pooled medians
    assert ours.added_ttft_p50_ms_by_round == (1.0, 3.0)
    assert ours.ttft_p50_ratio == pytest.approx(17.0 / 15.0)
    assert ours.tokens_per_s_ratio == pytest.approx(16.5 / 22.0)
    assert costs["litellm"].added_ttft_p50_ms_by_round == (6.0, 6.0)


def test_a_level_without_the_baseline_has_no_overheads() -> None:
    assert overheads([batch("ragserve", [1.0], level=4)], TARGETS) == []


def test_a_target_with_only_failures_has_nan_figures_not_zeros() -> None:
    batches = [batch("direct", [10.0]), batch("ragserve", [], failed=2)]
    (cost,) = overheads(batches, TARGETS)
    assert math.isnan(cost.added_ttft_p50_ms) and math.isnan(cost.ttft_p50_ratio)
    assert figures(batches, TARGETS)[1].errors == 2


def test_goals_judged_against_the_issue_thresholds() -> None:
    batches = []
    for level, ours, theirs in ((1, 11.5, 16.0), (8, 13.0, 9.0), (64, 11.0, 19.0)):
        batches += [batch("direct", [10.0], level=level, wall_s=1.0),
                    batch("ragserve", [ours], level=level, wall_s=1.02),
                    batch("litellm", [theirs], level=level)]  # fmt: skip
    checks = goal_checks(overheads(batches, TARGETS))
    verdicts = [(c.goal.split(" ")[0], c.concurrency, c.met) for c in checks]
    assert verdicts == [
        ("added", 1, True),  # +1.5 ms <= 2 ms
        ("added", 1, True),  # +1.5 ms <= +6 ms / 3
        ("added", 8, False),  # +3 ms
        ("added", 8, None),  # LiteLLM faster than direct: noise, a third of it means nothing
        ("added", 64, True),  # +1 ms
        ("added", 64, True),  # +1 ms <= +9 ms / 3
        ("tokens/s", 64, True),  # 1 / 1.02 = 0.980 >= 0.97
    ]
