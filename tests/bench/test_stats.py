"""The order statistics and ratios every bench figure rests on."""

from __future__ import annotations

import math

import pytest

from bench.stats import Distribution, added, median, percentile, ratio


def test_percentile_interpolates_between_order_statistics_like_numpy() -> None:
    values = [10.0, 1.0, 4.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(4.0 + 0.6 * 6.0)  # numpy: 7.6
    assert percentile([1.0, 2.0], 50) == 1.5


def test_one_value_is_every_percentile() -> None:
    assert [percentile([7.0], q) for q in (0, 50, 99, 100)] == [7.0] * 4


def test_no_values_is_nan_never_zero() -> None:
    assert math.isnan(median([]))
    summary = Distribution.of([])
    assert summary.n == 0 and math.isnan(summary.p50) and math.isnan(summary.mean)


def test_percentile_outside_0_100_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_distribution_of_a_hundred_values() -> None:
    summary = Distribution.of([float(v) for v in range(1, 101)])
    assert (summary.n, summary.p50, summary.mean) == (100, 50.5, 50.5)
    assert summary.p90 == pytest.approx(90.1)
    assert summary.p99 == pytest.approx(99.01)
    assert set(summary.as_dict()) == {"n", "p50", "p90", "p99", "mean"}


def test_ratio_and_added_time_to_a_baseline() -> None:
    assert ratio(97.0, 100.0) == pytest.approx(0.97)
    assert added(12.5, 10.0) == 2.5
    assert added(9.0, 10.0) == -1.0  # faster than the baseline: noise, shown as it is
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))
    assert math.isnan(ratio(1.0, math.nan))
