"""PNG plots of a run: latency distributions, throughput against concurrency, overheads."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench.record import RunRecord
from bench.report import THROUGHPUT_RATIO_GOAL
from bench.summary import BASELINE, figures, overheads

COLOURS = {"direct": "#4c72b0", "ragserve": "#55a868", "ragserve-rag": "#8172b2",
           "litellm": "#c44e52"}  # fmt: skip


def _colour(target: str) -> str:
    return COLOURS.get(target, "#777777")


def _levels(record: RunRecord) -> list[int]:
    return sorted({batch.concurrency for batch in record.batches})


def latency_figure(record: RunRecord) -> Figure:
    """Boxes of first-token and inter-token times per target, one column per level."""
    levels = _levels(record)
    figure, axes = plt.subplots(2, len(levels), figsize=(4 * len(levels) + 1, 7), squeeze=False)
    for column, level in enumerate(levels):
        for row, (label, pick) in enumerate(
            [("first-token time (ms)", "ttft"), ("inter-token time (ms)", "itl")]
        ):
            axis = axes[row][column]
            names, data = [], []
            for target in record.targets:
                samples = [s for b in record.batches if b.target == target
                           and b.concurrency == level for s in b.samples]  # fmt: skip
                values = [s.ttft_ms if pick == "ttft" else s.itl_ms for s in samples if s.ok]
                present = [v for v in values if v is not None]
                if present:
                    names.append(target)
                    data.append(present)
            if not data:
                axis.set_visible(False)
                continue
            boxes = axis.boxplot(data, patch_artist=True, showfliers=True)
            axis.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
            for patch, name in zip(boxes["boxes"], names, strict=True):
                patch.set_facecolor(_colour(name))
                patch.set_alpha(0.6)
            axis.set_yscale("log")
            axis.set_title(f"{level} stream{'s' if level > 1 else ''}", fontsize=10)
            if column == 0:
                axis.set_ylabel(label)
            axis.grid(axis="y", alpha=0.3)
    figure.suptitle(f"Latency distributions — {record.name}")
    figure.tight_layout()
    return figure


def throughput_figure(record: RunRecord) -> Figure:
    """Output tokens/s of each target against the number of concurrent streams."""
    found = figures(record.batches, record.targets)
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for target in record.targets:
        mine = [f for f in found if f.target == target]
        if not mine:
            continue
        axis.plot([f.concurrency for f in mine], [f.tokens_per_s for f in mine], marker="o",
                  label=target, color=_colour(target))  # fmt: skip
        for f in mine:  # each round's batch, so the spread shows
            axis.scatter([f.concurrency] * len(f.tokens_per_s_by_round), f.tokens_per_s_by_round,
                         color=_colour(target), s=10, alpha=0.5)  # fmt: skip
    axis.set_xscale("log", base=2)
    axis.set_xticks(_levels(record), [str(level) for level in _levels(record)])
    axis.set_xlabel("concurrent streams")
    axis.set_ylabel("output tokens/s (all streams)")
    axis.set_title(f"Throughput — {record.name}")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure


def overhead_figure(record: RunRecord) -> Figure:
    """Added first-token time and the tokens/s ratio of each target next to the baseline."""
    costs = overheads(record.batches, record.targets)
    levels = _levels(record)
    others = [t for t in record.targets if t != BASELINE and any(c.target == t for c in costs)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.8 / max(len(others), 1)
    for index, target in enumerate(others):
        mine = {c.concurrency: c for c in costs if c.target == target}
        xs = [i + (index - (len(others) - 1) / 2) * width for i in range(len(levels))]
        added = [mine[lv].added_ttft_p50_ms if lv in mine else 0.0 for lv in levels]
        tps = [mine[lv].tokens_per_s_ratio if lv in mine else 0.0 for lv in levels]
        left.bar(xs, added, width, label=target, color=_colour(target), alpha=0.8)
        for x, level in zip(xs, levels, strict=True):
            if level in mine:
                rounds = mine[level].added_ttft_p50_ms_by_round
                left.scatter([x] * len(rounds), rounds, color="black", s=8, zorder=3)
        right.bar(xs, tps, width, label=target, color=_colour(target), alpha=0.8)
    for axis in (left, right):
        axis.set_xticks(range(len(levels)), [str(level) for level in levels])
        axis.set_xlabel("concurrent streams")
        axis.grid(axis="y", alpha=0.3)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_yscale("symlog", linthresh=1.0)
    left.set_ylabel(f"added first-token time p50 vs {BASELINE} (ms)")
    left.set_title("Added first-token time (dots: each round)")
    right.axhline(1.0, color="black", linewidth=0.8)
    right.axhline(THROUGHPUT_RATIO_GOAL, color="grey", linestyle="--", linewidth=0.8,
                  label=f"goal {THROUGHPUT_RATIO_GOAL}")  # fmt: skip
    right.set_ylabel(f"tokens/s ÷ {BASELINE}")
    right.set_title("Throughput ratio")
    right.legend(fontsize=8)
    left.legend(fontsize=8)
    figure.suptitle(f"Overhead next to {BASELINE} — {record.name}")
    figure.tight_layout()
    return figure


def plot_run(record: RunRecord, folder: Path) -> list[Path]:
    """Write ``bench-<run>-{latency,throughput,overhead}.png``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, build in (
        ("latency", latency_figure),
        ("throughput", throughput_figure),
        ("overhead", overhead_figure),
    ):
        path = folder / f"bench-{record.name}-{kind}.png"
        figure = build(record)
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
