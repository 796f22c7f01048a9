"""Ray Serve's cost, measured: the same gateway behind Ray Serve's HTTP proxy vs alone, and
Ray Serve's dynamic batching of query embeddings vs one query per forward pass.

Prints figures; not a test. Against the synthetic upstream (load generation only: it streams
a fixed token at a fixed pace, so what the proxy adds is not hidden behind a slow model):

    python -m bench.ray_bench                                  # 1, 64 and 256 streams
    python -m bench.ray_bench --concurrency 1 64 --max-tokens 64 --json out.json

Both targets run one gateway process (Ray: one gateway replica), RAG off (the engine's own
model name), on the same machine as the load generator; a local Ray instance with 2 CPUs.
Both are up together and take turns per level and round, so a machine that gets busier
during the run weighs on both alike; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.loadgen import Batch, Target, new_client, run_batch
from bench.stack import StackConfig, ragserve_gateway, synthetic_upstream
from bench.stats import Distribution, added, median, ratio
from tests.support.processes import free_port

PROMPTS = ["Say something about telemetry.", "What is a collector?", "Explain clock skew."]
QUERIES = [f"how do I fix clock skew on collector {i}?" for i in range(32)]


def ray_config(upstream_url: str, port: int, max_batch_size: int) -> dict[str, Any]:
    """deploy/ray/serve.yaml with one gateway replica and external (synthetic) engines."""
    from serving.launch import load_config

    config = copy.deepcopy(load_config())
    config["http_options"].update(host="127.0.0.1", port=port)
    app = config["applications"][0]
    app["args"].update(local_engines=False, http_port=port)
    app["runtime_env"]["env_vars"].update(
        RAGSERVE_ENGINE_URLS=upstream_url,
        RAGSERVE_LOG_LEVEL="warning",
        RAGSERVE_QDRANT_PATH=tempfile.mkdtemp(prefix="ragserve-ray-bench-"),
    )
    deployments = []
    for deployment in app["deployments"]:
        if deployment["name"].startswith("engine"):
            continue
        if deployment["name"] == "gateway":
            deployment.pop("autoscaling_config", None)
            deployment["num_replicas"] = 1  # one gateway process, like the plain target
        if deployment["name"] == "retrieval":
            deployment["user_config"]["max_batch_size"] = max_batch_size
        deployments.append(deployment)
    app["deployments"] = deployments
    return config


async def _compare(
    targets: Sequence[Target], levels: Sequence[int], max_tokens: int, rounds: int
) -> dict[tuple[str, int], list[Batch]]:
    """Each level, each round, the targets one after the other: drift in how busy the machine
    is falls on both alike."""
    found: dict[tuple[str, int], list[Batch]] = {}
    clients = {target.name: new_client(max(levels), 120.0) for target in targets}
    try:
        for target in targets:  # a warm-up: connections, first-request paths
            await run_batch(clients[target.name], target, concurrency=4, requests=8,
                            prompts=PROMPTS, max_tokens=4, time_limit_s=60)  # fmt: skip
        for level in levels:
            for round_ in range(rounds):
                for target in targets:
                    batch = await run_batch(
                        clients[target.name], target, concurrency=level,
                        requests=max(2 * level, 16), prompts=PROMPTS, max_tokens=max_tokens,
                        time_limit_s=300, round_=round_,
                    )  # fmt: skip
                    found.setdefault((target.name, level), []).append(batch)
    finally:
        for client in clients.values():
            await client.aclose()
    return found


def _row(batches: list[Batch]) -> dict[str, Any]:
    samples = [s for batch in batches for s in batch.samples]
    ttft = Distribution.of([s.ttft_ms for s in samples if s.ok and s.ttft_ms is not None])
    return {
        "target": batches[0].target, "concurrency": batches[0].concurrency,
        "ok": sum(s.ok for s in samples), "errors": sum(batch.errors for batch in batches),
        "ttft_p50_ms": ttft.p50, "ttft_p90_ms": ttft.p90,
        "tokens_per_s": median([batch.tokens_per_s for batch in batches]),
    }  # fmt: skip


async def _embed_rounds(handle: Any, rounds: int) -> tuple[float, dict[str, Any]]:
    """Queries per second over ``rounds`` rounds of 32 concurrent queries; batch sizes seen."""
    before = await handle.batch_stats.remote()
    began = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(handle.embed_query.remote(q) for q in QUERIES))
    elapsed = time.perf_counter() - began
    after = await handle.batch_stats.remote()
    sizes = {
        size: n - before["sizes"].get(size, 0)
        for size, n in after["sizes"].items()
        if n - before["sizes"].get(size, 0)
    }
    return rounds * len(QUERIES) / elapsed, sizes


def embedding_throughput(config: dict[str, Any], rounds: int) -> dict[str, Any]:
    """@serve.batch (the YAML's batch size) vs max_batch_size=1, same replica, same queries."""
    from ray import serve

    from serving.launch import APP_NAME, deploy, wait_running

    handle = serve.get_deployment_handle("retrieval", app_name=APP_NAME)
    results: dict[str, Any] = {}
    for label, size in (("batched", 32), ("one_by_one", 1)):
        changed = copy.deepcopy(config)
        for deployment in changed["applications"][0]["deployments"]:
            if deployment["name"] == "retrieval":
                deployment["user_config"]["max_batch_size"] = size
        deploy(changed)  # user_config only: Serve reconfigures the replica in place
        wait_running(APP_NAME, 120)
        time.sleep(2.0)  # the controller pushes the new user_config to the replica
        asyncio.run(_embed_rounds(handle, 1))  # warm-up
        qps, sizes = asyncio.run(_embed_rounds(handle, rounds))
        results[label] = {"queries_per_s": qps, "batch_sizes": sizes}
    return results


def _print(report: dict[str, Any]) -> None:
    header = ("streams", "target", "ok", "err", "ttft p50", "p90", "tok/s")
    print("{:>8} {:>10} {:>5} {:>4} {:>9} {:>8} {:>8}".format(*header))
    for row in report["streams"]:
        for key in ("gateway", "ray_serve"):
            r = row[key]
            values = (r["concurrency"], r["target"], r["ok"], r["errors"])
            figures = (r["ttft_p50_ms"], r["ttft_p90_ms"], r["tokens_per_s"])
            print("{:>8} {:>10} {:>5} {:>4} ".format(*values), end="")
            print("{:>9.1f} {:>8.1f} {:>8.0f}".format(*figures))
        print(
            f"{'':>8} Ray Serve adds {row['added_ttft_p50_ms']:+.1f} ms to the median first "
            f"token; tokens/s x{row['tokens_per_s_ratio']:.2f}"
        )
    before, after = (
        " ".join(f"{x:.1f}" for x in report[key])
        for key in ("load_average_before", "load_average_after")
    )
    print(f"load average (1, 5, 15 min) before: {before}; after: {after}")
    embed = report["embedding"]
    batched, single = embed["batched"], embed["one_by_one"]
    print(
        f"embedding, 32 concurrent queries: @serve.batch {batched['queries_per_s']:.0f} q/s "
        f"(batch sizes {batched['batch_sizes']}) vs one by one {single['queries_per_s']:.0f} q/s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_bench", description=__doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="synthetic token gap")
    parser.add_argument("--rounds", type=int, default=2, help="per level and target")
    parser.add_argument("--embed-rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)

    from serving.launch import APP_NAME, deploy, shutdown, start_ray, wait_running

    logs = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    stack = StackConfig(targets=("ragserve",), logs=logs, upstream="synthetic",
                        synthetic_delay_ms=args.delay_ms)  # fmt: skip
    report: dict[str, Any] = {
        "concurrency": args.concurrency, "max_tokens": args.max_tokens, "rounds": args.rounds,
        "load_average_before": os.getloadavg(),
    }  # fmt: skip
    with synthetic_upstream(stack) as (upstream_url, _):
        with ragserve_gateway(stack, upstream_url) as (gateway_url, pids):
            port = free_port()
            config = ray_config(upstream_url, port, 32)
            start_ray(num_cpus=2)
            try:
                deploy(config)
                wait_running(APP_NAME, 600)
                targets = [
                    Target("gateway", gateway_url, "synthetic", pids=pids),
                    Target("ray-serve", f"http://127.0.0.1:{port}", "synthetic"),
                ]
                found = asyncio.run(
                    _compare(targets, args.concurrency, args.max_tokens, args.rounds)
                )
                report["embedding"] = embedding_throughput(config, args.embed_rounds)
            finally:
                shutdown()
    report["load_average_after"] = os.getloadavg()
    rows = []
    for level in args.concurrency:
        b, r = _row(found[("gateway", level)]), _row(found[("ray-serve", level)])
        rows.append({
            "concurrency": level, "gateway": b, "ray_serve": r,
            "added_ttft_p50_ms": added(r["ttft_p50_ms"], b["ttft_p50_ms"]),
            "tokens_per_s_ratio": ratio(r["tokens_per_s"], b["tokens_per_s"]),
        })  # fmt: skip
    report["streams"] = rows
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
