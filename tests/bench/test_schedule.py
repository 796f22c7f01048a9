"""The interleaving schedule: every batch once, targets taking turns, order rotated."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.schedule import Slot, interleave

TARGETS = ["direct", "ragserve", "ragserve-rag", "litellm"]


def test_every_round_level_and_target_runs_exactly_once() -> None:
    plan = interleave(TARGETS, [1, 8, 64], rounds=2)
    assert len(plan) == 2 * 3 * 4
    assert Counter(plan) == Counter(
        Slot(r, level, t) for r in range(2) for level in (1, 8, 64) for t in TARGETS
    )


def test_rounds_are_the_outer_loop_so_each_level_is_spread_over_the_run() -> None:
    plan = interleave(TARGETS, [1, 8], rounds=3)
    assert [slot.round for slot in plan] == sorted(slot.round for slot in plan)
    for round_ in range(3):
        levels = [slot.concurrency for slot in plan if slot.round == round_]
        assert levels == [1] * 4 + [8] * 4


def test_targets_are_consecutive_within_a_level_and_the_order_rotates() -> None:
    plan = interleave(TARGETS, [1], rounds=4)
    orders = [[s.target for s in plan if s.round == r] for r in range(4)]
    assert orders[0] == TARGETS
    assert orders[1] == ["ragserve", "ragserve-rag", "litellm", "direct"]
    # Over as many rounds as targets, each target runs first exactly once.
    assert sorted(order[0] for order in orders) == sorted(TARGETS)


def test_levels_within_a_round_start_with_different_targets() -> None:
    plan = interleave(["a", "b"], [1, 2], rounds=1)
    assert [(s.concurrency, s.target) for s in plan] == [(1, "a"), (1, "b"), (2, "b"), (2, "a")]


@pytest.mark.parametrize(
    ("targets", "levels", "rounds"),
    [([], [1], 1), (["a"], [], 1), (["a"], [1], 0), (["a", "a"], [1], 1)],
)
def test_an_empty_or_repeating_plan_is_refused(
    targets: list[str], levels: list[int], rounds: int
) -> None:
    with pytest.raises(ValueError):
        interleave(targets, levels, rounds)
