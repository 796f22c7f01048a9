"""The order batches run in: targets interleaved so machine drift hits all of them alike.

Rounds are the outer loop, so each target's samples at one concurrency level are spread
over the whole run rather than bunched into one stretch of it; within a round the targets
take turns, the order rotated every round so none always runs first (on a warm cache) or
right after the heaviest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Slot:
    """One batch of the run: ``target`` at ``concurrency`` streams, in ``round``."""

    round: int
    concurrency: int
    target: str


def interleave(targets: Sequence[str], levels: Sequence[int], rounds: int) -> list[Slot]:
    """Every (round, level, target) once: rounds outermost, targets rotated per round."""
    if not targets or not levels or rounds < 1:
        raise ValueError("a run needs at least one target, one concurrency level and one round")
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets repeat: {list(targets)}")
    slots = []
    for round_ in range(rounds):
        for position, level in enumerate(levels):
            shift = (round_ + position) % len(targets)
            for target in [*targets[shift:], *targets[:shift]]:
                slots.append(Slot(round_, level, target))
    return slots
