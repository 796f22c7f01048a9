"""From batches to figures: per target and level, and each target's overhead over the baseline."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.loadgen import Batch
from bench.stats import Distribution, added, median, ratio

BASELINE = "direct"


@dataclass(frozen=True, slots=True)
class Figures:
    """One target at one concurrency level, all rounds pooled."""

    target: str
    concurrency: int
    requests: int
    errors: int
    ttft_ms: Distribution
    itl_ms: Distribution
    tokens_per_s: float  # median over rounds of each whole batch's throughput
    tokens_per_s_by_round: tuple[float, ...]
    prompt_tokens_p50: float
    server_cpu_ms_per_request: float  # the target's own processes; NaN when not measured

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "ttft_ms": self.ttft_ms.as_dict(),
            "itl_ms": self.itl_ms.as_dict(),
            "tokens_per_s": self.tokens_per_s,
            "tokens_per_s_by_round": list(self.tokens_per_s_by_round),
            "prompt_tokens_p50": self.prompt_tokens_p50,
            "server_cpu_ms_per_request": self.server_cpu_ms_per_request,
        }


@dataclass(frozen=True, slots=True)
class Overhead:
    """What ``target`` costs next to the baseline at one level (the same run, interleaved)."""

    target: str
    concurrency: int
    added_ttft_p50_ms: float
    added_ttft_p50_ms_by_round: tuple[float, ...]  # the run-to-run spread of the figure
    ttft_p50_ratio: float
    itl_p50_ratio: float
    tokens_per_s_ratio: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "added_ttft_p50_ms": self.added_ttft_p50_ms,
            "added_ttft_p50_ms_by_round": list(self.added_ttft_p50_ms_by_round),
            "ttft_p50_ratio": self.ttft_p50_ratio,
            "itl_p50_ratio": self.itl_p50_ratio,
            "tokens_per_s_ratio": self.tokens_per_s_ratio,
        }


def _ttfts(batches: Iterable[Batch]) -> list[float]:
    return [s.ttft_ms for b in batches for s in b.samples if s.ok and s.ttft_ms is not None]


def _itls(batches: Iterable[Batch]) -> list[float]:
    return [itl for b in batches for s in b.samples if (itl := s.itl_ms) is not None]


def _group(batches: Iterable[Batch]) -> dict[tuple[int, str], list[Batch]]:
    groups: dict[tuple[int, str], list[Batch]] = defaultdict(list)
    for batch in batches:
        groups[(batch.concurrency, batch.target)].append(batch)
    return groups


def _order(keys: Iterable[tuple[int, str]], targets: Sequence[str]) -> list[tuple[int, str]]:
    rank = {name: index for index, name in enumerate(targets)}
    return sorted(keys, key=lambda key: (key[0], rank.get(key[1], len(rank)), key[1]))


def _cpu_ms_per_request(batches: Sequence[Batch]) -> float:
    measured = [b for b in batches if b.server_cpu_s is not None]
    served = sum(sum(s.ok for s in b.samples) for b in measured)
    if not served:
        return math.nan
    return 1000 * sum(b.server_cpu_s or 0.0 for b in measured) / served


def figures(batches: Sequence[Batch], targets: Sequence[str]) -> list[Figures]:
    """Figures per (level, target), levels ascending, targets in the order given."""
    groups = _group(batches)
    out = []
    for level, target in _order(groups, targets):
        group = sorted(groups[(level, target)], key=lambda batch: batch.round)
        prompts = [float(s.prompt_tokens) for b in group for s in b.samples if s.prompt_tokens]
        # A batch the time limit cut short has no throughput to speak of.
        by_round = tuple(batch.tokens_per_s for batch in group if not batch.cut_by_time_limit)
        out.append(
            Figures(
                target=target,
                concurrency=level,
                requests=sum(batch.requests for batch in group),
                errors=sum(batch.errors for batch in group),
                ttft_ms=Distribution.of(_ttfts(group)),
                itl_ms=Distribution.of(_itls(group)),
                tokens_per_s=median(by_round),
                tokens_per_s_by_round=by_round,
                prompt_tokens_p50=median(prompts),
                server_cpu_ms_per_request=_cpu_ms_per_request(group),
            )
        )
    return out


def overheads(
    batches: Sequence[Batch], targets: Sequence[str], baseline: str = BASELINE
) -> list[Overhead]:
    """Each non-baseline target against the baseline, level by level."""
    groups = _group(batches)
    by_key = {(f.concurrency, f.target): f for f in figures(batches, targets)}
    out = []
    for level, target in _order(groups, targets):
        base = by_key.get((level, baseline))
        if target == baseline or base is None:
            continue
        mine = by_key[(level, target)]
        rounds = sorted({batch.round for batch in groups[(level, target)]})
        by_round = tuple(
            added(
                median(_ttfts(b for b in groups[(level, target)] if b.round == r)),
                median(_ttfts(b for b in groups[(level, baseline)] if b.round == r)),
            )
            for r in rounds
        )
        out.append(
            Overhead(
                target=target,
                concurrency=level,
                added_ttft_p50_ms=added(mine.ttft_ms.p50, base.ttft_ms.p50),
                added_ttft_p50_ms_by_round=tuple(v for v in by_round if not math.isnan(v)),
                ttft_p50_ratio=ratio(mine.ttft_ms.p50, base.ttft_ms.p50),
                itl_p50_ratio=ratio(mine.itl_ms.p50, base.itl_ms.p50),
                tokens_per_s_ratio=ratio(mine.tokens_per_s, base.tokens_per_s),
            )
        )
    return out
