"""One tiny comparison run end to end: real gateway process, synthetic upstream (load only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.compare import batch_size, main, parse_args
from bench.stack import litellm_config

# Starts gateway or helper processes (seconds each): `make test` runs it, `make unit` not.
pytestmark = pytest.mark.process

MAX_TOKENS = 6


def test_a_tiny_run_measures_every_target_and_writes_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.json"
    status = main([
        "--name", "tiny", "--upstream", "synthetic", "--synthetic-delay-ms", "1",
        "--targets", "direct", "ragserve", "ragserve-rag",
        "--concurrency", "1", "3", "--rounds", "2", "--max-tokens", str(MAX_TOKENS),
        "--min-requests", "3", "--warmup", "1", "--batch-time-limit", "120",
        "--out", str(out), "--plots", str(tmp_path / "img"), "--logs", str(tmp_path / "logs"),
    ])  # fmt: skip
    assert status == 0
    saved = json.loads(out.read_text())
    batches = saved["batches"]
    assert len(batches) == 2 * 2 * 3  # rounds x levels x targets, none skipped
    assert [b["target"] for b in batches[:3]] == ["direct", "ragserve", "ragserve-rag"]
    samples = [(b["target"], s) for b in batches for s in b["samples"]]
    assert len(samples) == 2 * 3 * (3 + 3)
    assert all(s["error"] is None for _, s in samples), samples
    # The gateway passed every token and the usage through, RAG on or off.
    assert {s["tokens"] for _, s in samples} == {MAX_TOKENS}
    # RAG on really retrieved: its prompts carry the sample corpus's passages.
    plain = max(s["prompt_tokens"] for t, s in samples if t == "ragserve")
    with_context = min(s["prompt_tokens"] for t, s in samples if t == "ragserve-rag")
    assert with_context > plain + 100
    # The CPU of the processes behind each target was read around every batch.
    assert all(b["server_cpu_s"] is not None for b in batches)
    assert sum(b["server_cpu_s"] for b in batches if b["target"] == "ragserve-rag") > 0
    assert saved["versions"]["ragserve_git"] and saved["machine"]["cores"]
    assert {o["target"] for o in saved["overheads"]} == {"ragserve", "ragserve-rag"}
    assert len(list((tmp_path / "img").glob("bench-tiny-*.png"))) == 3
    printed = capsys.readouterr().out
    assert "[12/12] round 2" in printed
    assert "| 3 | ragserve-rag | 6 | 0 |" in printed


def test_batches_send_a_request_per_stream_and_never_fewer_than_the_floor() -> None:
    assert [batch_size(level, 8, 1) for level in (1, 8, 64)] == [8, 8, 64]
    assert batch_size(4, 1, 3) == 12


def test_the_command_line_needs_the_direct_baseline_and_a_loopback_engine() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--targets", "ragserve", "litellm"])
    with pytest.raises(SystemExit):
        parse_args(["--engine-url", "http://10.0.0.5:8000"])  # loopback only
    args = parse_args(["--upstream", "synthetic"])
    assert args.name == "synthetic" and args.out.name == "synthetic.json"


def test_litellm_is_pointed_at_the_same_upstream_as_an_openai_model() -> None:
    config = litellm_config("http://127.0.0.1:8100", "smollm2-135m-instruct")
    (model,) = config["model_list"]
    assert model["model_name"] == "smollm2-135m-instruct"
    assert model["litellm_params"]["model"] == "openai/smollm2-135m-instruct"
    assert model["litellm_params"]["api_base"] == "http://127.0.0.1:8100/v1"
    assert config["litellm_settings"] == {"telemetry": False, "drop_params": True}
