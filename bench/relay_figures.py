"""The relay benchmark's arithmetic: CPU per token, ratios to direct, goals, the table.

Pure functions over what ``bench/relay_bench.py`` measured, so they are tested alone.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.h2load import H2loadReport

# Issue 12's goals (RAG off, one gateway process).
CPU_US_PER_TOKEN_GOAL = 25.0
RATIO_GOAL = 0.97
ADDED_TTFB_GOAL_MS = 1.0
ENGINE_SHARE_GOAL = 0.25  # of vLLM's own API-server CPU per token


@dataclass(slots=True)
class Measured:
    """One bounded h2load run against one target, with the target's CPU meanwhile."""

    target: str
    streams: int
    tokens_per_request: int
    report: H2loadReport
    cpu_s: float | None = None  # the target's own processes (None: not ours to measure)
    counted_tokens: float | None = None  # the gateway's own count (its metrics), if any
    extra_cpu: dict[str, float] = field(default_factory=dict)  # other processes, by name

    @property
    def tokens(self) -> int:
        """Tokens relayed: whole 2xx streams times the tokens each carries."""
        return min(self.report.succeeded, self.report.status_2xx) * self.tokens_per_request

    @property
    def tokens_per_s(self) -> float | None:
        seconds = self.report.duration_ms / 1000
        return self.tokens / seconds if seconds > 0 and self.tokens else None

    @property
    def cpu_us_per_token(self) -> float | None:
        return per_token_us(self.cpu_s, self.tokens)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "streams": self.streams,
            "tokens_per_request": self.tokens_per_request,
            "h2load": self.report.as_dict(),
            "cpu_s": self.cpu_s,
            "counted_tokens": self.counted_tokens,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "cpu_us_per_token": self.cpu_us_per_token,
            "extra_cpu_s": self.extra_cpu,
        }


def per_token_us(cpu_s: float | None, tokens: int | float) -> float | None:
    """CPU seconds spread over tokens, in microseconds a token."""
    if cpu_s is None or not tokens:
        return None
    return cpu_s * 1e6 / tokens


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def marginal_us_per_token(long: Measured, short: Measured) -> float | None:
    """CPU a token costs once the stream runs: the difference of two stream lengths.

    Per request, (CPU of long streams − CPU of short streams) / (their token difference):
    what every request pays once (admission, retrieval, the first and last chunks) cancels
    out, which is how "the per-token cost after the sources chunk" is isolated.
    """
    long_requests = min(long.report.succeeded, long.report.status_2xx)
    short_requests = min(short.report.succeeded, short.report.status_2xx)
    if long.cpu_s is None or short.cpu_s is None or not long_requests or not short_requests:
        return None
    extra_tokens = long.tokens_per_request - short.tokens_per_request
    if extra_tokens <= 0:
        return None
    extra_cpu = long.cpu_s / long_requests - short.cpu_s / short_requests
    return extra_cpu * 1e6 / extra_tokens


def median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$", re.MULTILINE)


def prometheus_value(text: str, name: str, labels: Mapping[str, str]) -> float | None:
    """One sample of a Prometheus text exposition (the first whose labels include these)."""
    for match in _SAMPLE.finditer(text):
        if match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(3))
    return None


def hot_spots(collapsed: str, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """py-spy's collapsed stacks (``a;b;c N``) → the top frames by self and total share."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return {"self": [], "total": []}
    return {
        "self": [(frame, count / samples) for frame, count in own.most_common(top)],
        "total": [(frame, count / samples) for frame, count in total.most_common(top)],
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(runs: Sequence[Measured]) -> str:
    """Markdown: one row a (streams, target) run, ratios to direct's run at that level."""
    direct = {run.streams: run for run in runs if run.target == "direct"}
    lines = [
        "| streams | target | tokens a request | requests | errors | tokens/s | "
        "÷ direct | CPU µs / token | TTFB mean ms (per connection) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        reference = direct.get(run.streams)
        share = ratio(run.tokens_per_s, reference.tokens_per_s if reference else None)
        lines.append(
            f"| {run.streams} | {run.target} | {run.tokens_per_request} | {run.report.requests} "
            f"| {run.report.errors} | {_fmt(run.tokens_per_s, 0)} "
            f"| {_fmt(share, 3) if run.target != 'direct' else ''} "
            f"| {_fmt(run.cpu_us_per_token)} | {_fmt(run.report.ttfb_mean_ms, 2)} |"
        )
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "cannot tell" if ok is None else ("met" if ok else "**missed**")


def _row(goal: str, measured: str, value: float | None, ok: bool) -> tuple[str, str, str]:
    return goal, measured, verdict(None if value is None else ok)


def goals(summary: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, measured, verdict) rows from the run's summary figures."""
    rows = []
    for streams, cpu in sorted(summary.get("ragserve_cpu_us_per_token", {}).items()):
        goal = f"gateway CPU per token ≤ {CPU_US_PER_TOKEN_GOAL:g} µs ({streams} streams)"
        rows.append(_row(goal, f"{_fmt(cpu)} µs", cpu, (cpu or 0) <= CPU_US_PER_TOKEN_GOAL))
    for streams, share in sorted(summary.get("ragserve_ratio", {}).items()):
        goal = f"tokens/s ≥ {RATIO_GOAL} of direct ({streams} streams)"
        rows.append(_row(goal, _fmt(share, 3), share, (share or 0) >= RATIO_GOAL))
    if "ragserve_added_ttfb_p50_ms" in summary:
        added = summary["ragserve_added_ttfb_p50_ms"]
        goal = f"added TTFB p50 ≤ {ADDED_TTFB_GOAL_MS:g} ms (1 stream)"
        rows.append(_row(goal, f"{_fmt(added, 2)} ms", added, (added or 0) <= ADDED_TTFB_GOAL_MS))
    off, on = summary.get("marginal_rag_off_us"), summary.get("marginal_rag_on_us")
    if on is not None or off is not None:
        # "The same": within 15 % + 2 µs, the spread of two runs on this machine.
        same = on is not None and off is not None and on <= off * 1.15 + 2.0
        goal = "RAG on: per-token cost after the sources chunk = RAG off's"
        both = None if on is None or off is None else on
        rows.append(_row(goal, f"{_fmt(on)} vs {_fmt(off)} µs", both, same))
    if "engine_gateway_share" in summary:
        share = summary["engine_gateway_share"]
        goal = f"real engine: gateway ≤ {ENGINE_SHARE_GOAL:g} of vLLM's API server per token"
        rows.append(_row(goal, _fmt(share, 3), share, (share or 0) <= ENGINE_SHARE_GOAL))
    return rows


def summarise(
    runs: list[Measured],
    marginal: Mapping[str, float | None],
    ttfb: Mapping[str, Any],
    engine: Mapping[str, Any],
) -> dict[str, Any]:
    """Medians over rounds of the figures the goals name."""
    summary: dict[str, Any] = {"ragserve_cpu_us_per_token": {}, "ragserve_ratio": {}}
    for streams in sorted({run.streams for run in runs}):
        at = [run for run in runs if run.streams == streams]
        direct = median(run.tokens_per_s for run in at if run.target == "direct")
        for name in sorted({run.target for run in at}):
            mine = [run for run in at if run.target == name]
            summary.setdefault("cpu_us_per_token", {}).setdefault(name, {})[streams] = median(
                run.cpu_us_per_token for run in mine
            )
            summary.setdefault("ratio", {}).setdefault(name, {})[streams] = ratio(
                median(run.tokens_per_s for run in mine), direct
            )
        summary["ragserve_cpu_us_per_token"][streams] = summary["cpu_us_per_token"]["ragserve"][
            streams
        ]
        summary["ragserve_ratio"][streams] = summary["ratio"]["ragserve"][streams]
    summary["ragserve_added_ttfb_p50_ms"] = ttfb.get("ragserve", {}).get("added_p50_ms")
    summary["added_ttfb_p50_ms"] = {name: v.get("added_p50_ms") for name, v in ttfb.items()}
    summary["marginal_rag_off_us"] = marginal.get("ragserve")
    summary["marginal_rag_on_us"] = marginal.get("ragserve-rag")
    if "gateway_share" in engine:
        summary["engine_gateway_share"] = engine["gateway_share"]
    return summary


def report(record: Mapping[str, Any], runs: list[Measured]) -> str:
    """The run as Markdown: the runs' table, one-stream TTFB, marginal CPU, goals."""
    summary = record["summary"]
    lines = [
        f"\n## relay-{record['name']}  (started {record['started']})",
        f"load average (1/5/15 min): {record['machine']['load_average_1_5_15']} at start, "
        f"{record['machine']['load_average_at_end']} at end",
        "",
        table(runs),
        "",
        "| 1 stream | TTFB p50 ms | added p50 ms | errors |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, one in record["ttfb_one_stream"].items():
        p50, added = one["p50_ms"], one["added_p50_ms"]
        lines.append(
            f"| {name} | {'—' if p50 is None else f'{p50:.2f}'} | "
            f"{'' if added is None else f'{added:+.2f}'} | {one['errors']} |"
        )
    lines += [
        "",
        f"per-token CPU after the first chunk ({record['load']['marginal_tokens']}): "
        f"RAG off {_fmt(summary['marginal_rag_off_us'])} µs, "
        f"RAG on {_fmt(summary['marginal_rag_on_us'])} µs",
    ]
    engine = record.get("engine") or {}
    if "skipped" in engine:
        lines.append(f"real engine: skipped ({engine['skipped']})")
    elif engine:
        lines.append(
            f"real engine ({engine['streams']} streams × {engine['tokens_per_request']} tokens): "
            f"vLLM API server {_fmt(engine['api_server_us_per_token_direct'])} µs/token direct, "
            f"{_fmt(engine['api_server_us_per_token_through_gateway'])} through the gateway; "
            f"gateway {_fmt(engine['gateway_us_per_token'])} µs/token "
            f"(share {_fmt(engine['gateway_share'], 3)})"
        )
    lines += ["", "| goal | measured | verdict |", "| --- | --- | --- |"]
    lines += [f"| {goal} | {measured} | {ok} |" for goal, measured, ok in goals(summary)]
    return "\n".join(lines)
