"""Pass-through relay benchmark (issue 12): what the gateway costs per relayed token.

Side by side in one run, load from h2load (``--h1``, a C load generator), loopback only:
(a) ``direct``: the replay upstream (``bench/replay_upstream.py``, vLLM 0.32's recorded
chunk bytes at 50 tokens/s per stream), (b) ``ragserve``: one gateway process, RAG off,
(c) ``litellm``: LiteLLM's proxy, if ``.venv-litellm`` exists (``make bench-env``),
(d) ``ragserve-rag``: the same gateway through the ``docs`` alias over a seeded store.
Figures: gateway CPU per token (/proc user+sys over tokens relayed), tokens/s ÷ direct,
added time to first byte at one stream (p50 of single-request runs), errors; the
per-token CPU after the sources chunk (two stream lengths, RAG on and off); and vLLM's own
API-server CPU per token on the real engine, beside the gateway's, in the same run.
A script that prints figures, never a test: the machine's load is printed with them.

    python -m bench.relay_bench --name quiet                 # make bench-relay
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import h2load
from bench.loadgen import cpu_seconds, require_loopback
from bench.machine import REPO, load_average, machine, versions
from bench.prompts import QUESTIONS
from bench.relay_figures import (
    Measured,
    hot_spots,
    marginal_us_per_token,
    median,
    per_token_us,
    prometheus_value,
    ratio,
    report,
    summarise,
)
from bench.stack import StackConfig, litellm_proxy, serving, start_command
from tests.support.processes import free_port, start_gateway

REPLAY_TOKENS = 64  # the recording's length
SHORT_TOKENS = 8  # the short streams the per-token (marginal) cost is taken against
TTFB_TOKENS = 2  # single-request runs for time to first byte: length does not matter


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    model: str
    pids: tuple[int, ...] = ()
    metrics: bool = False  # a ragserve gateway: its /metrics counts the tokens it relayed


def chat_body(model: str, tokens: int, prompt: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": tokens,
        "temperature": 0,
        **extra,
    }


def body_file(folder: Path, body: Mapping[str, Any]) -> Path:
    text = json.dumps(body, sort_keys=True)
    path = folder / f"body-{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"
    path.write_text(json.dumps(body))
    return path


def gateway_tokens(target: Target) -> float | None:
    if not target.metrics:
        return None
    try:
        text = httpx.get(target.url + "/metrics", timeout=10.0).text
    except httpx.HTTPError:
        return None
    return prometheus_value(text, "ragserve_tokens_total", {"direction": "out"})


def measure(
    target: Target,
    body: Path,
    tokens: int,
    streams: int,
    requests: int,
    limit_s: float,
    watch: Mapping[str, tuple[int, ...]] | None = None,
) -> Measured:
    """One bounded h2load run, the target's (and ``watch``'s) CPU read around it."""
    watch = watch or {}
    counted = gateway_tokens(target)
    before, others = cpu_seconds(target.pids), {k: cpu_seconds(p) for k, p in watch.items()}
    report = h2load.run(
        target.url + "/v1/chat/completions",
        body,
        requests=requests,
        clients=streams,
        time_limit_s=limit_s,
    )
    after = cpu_seconds(target.pids)
    extra = {}
    for key, pids in watch.items():
        start, end = others[key], cpu_seconds(pids)
        if start is not None and end is not None:
            extra[key] = end - start
    counted_after = gateway_tokens(target)
    run = Measured(target.name, streams, tokens, report, extra_cpu=extra)
    if before is not None and after is not None:
        run.cpu_s = after - before
    if counted is not None and counted_after is not None:
        run.counted_tokens = counted_after - counted
    return run


@contextmanager
def replay_upstream(logs: Path) -> Iterator[tuple[str, tuple[int, ...]]]:
    port = free_port()
    command = [sys.executable, "-m", "bench.replay_upstream", "--port", str(port)]
    log = logs / "replay-upstream.log"
    url = f"http://127.0.0.1:{port}"
    with serving(start_command(command, log, {}), url + "/health", log, 30.0) as pids:
        yield url, pids


@contextmanager
def gateway(engine_url: str, logs: Path, store: Path | None, name: str) -> Iterator[Target]:
    """One gateway process (uvicorn, one worker), RAG off unless ``store`` holds 'docs'."""
    port = free_port()
    env = {
        "RAGSERVE_ENGINE_URLS": engine_url,
        "RAGSERVE_ENGINE_HEALTH_INTERVAL_S": "0",  # no probes: they would count as relay CPU
        "RAGSERVE_LOG_LEVEL": "warning",
        **({"RAGSERVE_QDRANT_PATH": str(store)} if store is not None else {}),
    }
    log = logs / f"{name}.log"
    url = f"http://127.0.0.1:{port}"
    with serving(start_gateway(env, log, port), url + "/readyz", log, 240.0) as pids:
        model = httpx.get(engine_url + "/v1/models", timeout=10).json()["data"][0]["id"]
        yield Target(name, url, model, pids=pids, metrics=True)


def seeded_store(folder: Path) -> Path:
    """The sample corpus in 'docs', as the tests seed it (loads the embedder here, once)."""
    from tests.conftest import seed_store

    return seed_store(folder / "qdrant")


def api_server_pid(engine_url: str) -> int | None:
    """The vLLM API-server process serving ``engine_url`` (read, never signalled)."""
    port = engine_url.rsplit(":", 1)[-1].split("/")[0]
    found = subprocess.run(
        ["pgrep", "-f", "vllm.entrypoints.openai.api_server"], capture_output=True, text=True
    ).stdout.split()
    for pid in found:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in argv and argv[argv.index(b"--port") + 1].decode() == port:
            return int(pid)
    return None


def warm(target: Target, body: Path) -> None:
    h2load.run(target.url + "/v1/chat/completions", body, requests=8, clients=8, time_limit_s=60.0)


def ttfb_samples(targets: list[Target], bodies: Mapping[str, Path], count: int) -> dict[str, Any]:
    """Single-request runs, targets interleaved: h2load's time to first byte, one a run."""
    samples: dict[str, list[float]] = {target.name: [] for target in targets}
    errors = dict.fromkeys(samples, 0)
    for index in range(count):
        for target in targets[index % len(targets) :] + targets[: index % len(targets)]:
            report = h2load.run(
                target.url + "/v1/chat/completions",
                bodies[target.name],
                requests=1,
                clients=1,
                time_limit_s=30.0,
            )
            if report.errors or report.ttfb_mean_ms is None:
                errors[target.name] += 1
            else:
                samples[target.name].append(report.ttfb_mean_ms)
    direct = median(samples.get("direct", []))
    return {
        name: {
            "samples_ms": values,
            "p50_ms": median(values),
            "errors": errors[name],
            "added_p50_ms": None
            if direct is None or not values
            else (median(values) or 0.0) - direct,
        }
        for name, values in samples.items()
    }


def engine_yardstick(args: argparse.Namespace, logs: Path, folder: Path) -> dict[str, Any]:
    """vLLM's API server CPU per token on the real engine, and a gateway's in front of it."""
    pid = api_server_pid(args.engine_url)
    if pid is None:
        return {"skipped": f"no vllm.entrypoints.openai.api_server on {args.engine_url}"}
    api = {"vllm-api-server": (pid,)}
    model = httpx.get(args.engine_url + "/v1/models", timeout=10).json()["data"][0]["id"]
    tokens, streams = args.engine_tokens, args.engine_streams
    # ignore_eos + min_tokens: every stream carries exactly `tokens`, however the model talks.
    body = body_file(
        folder, chat_body(model, tokens, QUESTIONS[0], min_tokens=tokens, ignore_eos=True)
    )
    direct = Target("engine-direct", args.engine_url, model)
    runs = [measure(direct, body, tokens, streams, streams, args.engine_time_limit, api)]
    with gateway(args.engine_url, logs, None, "gateway-engine") as target:
        warm(target, body_file(folder, chat_body(model, 2, QUESTIONS[0])))
        runs.append(measure(target, body, tokens, streams, streams, args.engine_time_limit, api))
    api_us = [per_token_us(run.extra_cpu.get("vllm-api-server"), run.tokens) for run in runs]
    gateway_us = runs[1].cpu_us_per_token
    return {
        "api_server_pid": pid,
        "streams": streams,
        "tokens_per_request": tokens,
        "runs": [run.as_dict() for run in runs],
        "api_server_us_per_token_direct": api_us[0],
        "api_server_us_per_token_through_gateway": api_us[1],
        "gateway_us_per_token": gateway_us,
        "gateway_share": ratio(gateway_us, median(api_us)),
    }


def profile(target: Target, body: Path, streams: int, seconds: float, out: Path) -> Any:
    """py-spy's collapsed stacks of the gateway while it relays ``streams`` streams."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return {"skipped": f"{spy} missing (.venv/bin/pip install py-spy)"}
    command = [
        str(spy),
        "record",
        "--pid",
        str(target.pids[0]),
        "--duration",
        f"{seconds:g}",
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    with open(out.with_suffix(".log"), "wb") as log:
        spying = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1.0)  # py-spy attaches before the load starts
    waves = max(1, int(seconds / 1.4))  # a 64-token stream lasts ~1.3 s at 50 tokens/s
    h2load.run(
        target.url + "/v1/chat/completions",
        body,
        requests=streams * waves,
        clients=streams,
        time_limit_s=seconds + 30,
    )
    spying.wait(seconds + 30)
    return hot_spots(out.read_text()) if out.exists() else {"skipped": "py-spy wrote nothing"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--name", default="relay")
    parser.add_argument("--streams", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--waves", type=int, default=3, help="requests per stream a run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ttfb-samples", type=int, default=21, help="single-request runs")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds a run")
    parser.add_argument("--no-rag", action="store_true", help="skip (d)")
    parser.add_argument("--store", type=Path, help="a seeded store (default: seed a temp one)")
    parser.add_argument("--litellm-venv", type=Path, default=REPO / ".venv-litellm")
    parser.add_argument("--engine-url", default=None, help="a running vLLM for the yardstick")
    parser.add_argument("--engine-streams", type=int, default=32)
    parser.add_argument("--engine-tokens", type=int, default=32)
    parser.add_argument("--engine-time-limit", type=float, default=300.0)
    parser.add_argument("--profile-seconds", type=float, default=0.0, help="py-spy the gateway")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--logs", type=Path, default=REPO / "data" / "logs" / "relay-bench")
    args = parser.parse_args(argv)
    if args.engine_url:
        args.engine_url = require_loopback(args.engine_url)
    args.out = args.out or REPO / "bench" / "results" / f"relay-{args.name}.json"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "name": args.name,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(args.litellm_venv / "bin" / "python"),
        "load": {
            "replay_tokens": REPLAY_TOKENS,
            "tokens_per_s_per_stream": 50,
            "streams": args.streams,
            "waves": args.waves,
            "rounds": args.rounds,
            "marginal_tokens": f"{REPLAY_TOKENS} vs {SHORT_TOKENS} tokens a stream",
        },
    }
    print(f"load average at start: {record['machine']['load_average_1_5_15']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        store = None if args.no_rag else (args.store or seeded_store(folder))
        upstream, upstream_pids = stack.enter_context(replay_upstream(args.logs))
        ragserve = stack.enter_context(gateway(upstream, args.logs, store, "ragserve"))
        model = ragserve.model
        targets = [Target("direct", upstream, model, pids=upstream_pids), ragserve]
        if (args.litellm_venv / "bin" / "litellm").exists():
            config = StackConfig(
                targets=("litellm",), logs=args.logs, litellm_venv=args.litellm_venv
            )
            url, pids = stack.enter_context(litellm_proxy(config, upstream, model))
            targets.append(Target("litellm", url, model, pids=pids))
        if store is not None:
            targets.append(Target("ragserve-rag", ragserve.url, "docs", ragserve.pids, True))

        def body(target: Target, tokens: int) -> Path:
            prompt = QUESTIONS[1] if target.name == "ragserve-rag" else "Tell me a story."
            return body_file(folder, chat_body(target.model, tokens, prompt))

        for target in targets:
            warm(target, body(target, REPLAY_TOKENS))
        runs: list[Measured] = []
        for round_index in range(args.rounds):
            for level, streams in enumerate(args.streams):
                shift = (round_index + level) % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    run = measure(
                        target,
                        body(target, REPLAY_TOKENS),
                        REPLAY_TOKENS,
                        streams,
                        streams * args.waves,
                        args.time_limit,
                    )
                    runs.append(run)
                    print(
                        f"round {round_index + 1}: {streams:>4} streams {target.name:<13} "
                        f"{run.tokens_per_s or 0:>8.0f} tokens/s  "
                        f"{run.cpu_us_per_token or 0:>6.1f} µs/token  "
                        f"errors {run.report.errors}",
                        flush=True,
                    )
        # Per-token CPU after the first chunk: short streams against the long ones.
        marginal: dict[str, float | None] = {}
        short_runs = []
        for target in [t for t in targets if t.metrics]:
            streams = args.streams[0]
            short = measure(
                target,
                body(target, SHORT_TOKENS),
                SHORT_TOKENS,
                streams,
                streams * args.waves,
                args.time_limit,
            )
            long = next(
                r for r in reversed(runs) if r.target == target.name and r.streams == streams
            )
            short_runs.append(short)
            marginal[target.name] = marginal_us_per_token(long, short)
        ttfb = ttfb_samples(
            targets, {t.name: body(t, TTFB_TOKENS) for t in targets}, args.ttfb_samples
        )
        if args.profile_seconds > 0:
            out = args.logs / f"relay-{args.name}-pyspy.txt"
            record["profile"] = profile(
                ragserve, body(ragserve, REPLAY_TOKENS), args.streams[-1], args.profile_seconds, out
            )
    if args.engine_url:
        with tempfile.TemporaryDirectory(prefix="relay-bench-") as scratch:
            record["engine"] = engine_yardstick(args, args.logs, Path(scratch))
    record["machine"]["load_average_at_end"] = load_average()
    record["runs"] = [run.as_dict() for run in runs]
    record["marginal_runs"] = [run.as_dict() for run in short_runs]
    record["ttfb_one_stream"] = ttfb
    record["summary"] = summarise(runs, marginal, ttfb, record.get("engine", {}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(report(record, runs))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
