"""A run's batches, in the schedule's order, against targets already serving."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack

from bench.loadgen import Batch, Target, new_client, run_batch, stream_chat
from bench.schedule import Slot
from bench.stats import median


def print_progress(done: int, total: int, slot: Slot, batch: Batch) -> None:
    ok = [s for s in batch.samples if s.ok]
    ttft = median([s.ttft_ms for s in ok if s.ttft_ms is not None])
    print(
        f"[{done}/{total}] round {slot.round + 1}, {slot.concurrency} streams, {slot.target}: "
        f"{len(ok)} ok, {batch.errors} errors, TTFT p50 {ttft:.1f} ms, "
        f"{batch.tokens_per_s:.1f} tokens/s, {batch.wall_s:.1f} s"
        + (f", server CPU {batch.server_cpu_s:.2f} s" if batch.server_cpu_s is not None else ""),
        flush=True,
    )
    first_error = next((s.error for s in batch.samples if s.error), None)
    if first_error:
        print(f"    first error: {first_error}", flush=True)


async def measure(
    targets: Sequence[Target],
    plan: Sequence[Slot],
    *,
    prompts: Sequence[str],
    max_tokens: int,
    requests_for: Callable[[int], int],
    batch_time_limit_s: float,
    deadline_s: float,
    warmup: int = 2,
    on_batch: Callable[[int, int, Slot, Batch], None] = print_progress,
) -> tuple[list[Batch], list[str]]:
    """Run ``plan`` in order; slots left when ``deadline_s`` has passed are skipped (noted)."""
    by_name = {target.name: target for target in targets}
    widest = max(slot.concurrency for slot in plan)
    batches: list[Batch] = []
    notes: list[str] = []
    began = time.monotonic()
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(new_client(widest, batch_time_limit_s))
            for name in by_name
        }
        for name, target in by_name.items():  # connections, caches and lazy imports warmed
            for prompt in prompts[:warmup]:
                await stream_chat(clients[name], target, prompt, max_tokens)
        print(f"warmed up in {time.monotonic() - began:.0f} s", flush=True)
        began = time.monotonic()  # the deadline counts measured batches only
        for index, slot in enumerate(plan):
            left = deadline_s - (time.monotonic() - began)
            if left <= 0:
                notes.append(f"the {deadline_s:g} s deadline passed: {len(plan) - index} of "
                             f"{len(plan)} batches were not run")  # fmt: skip
                break
            batch = await run_batch(
                clients[slot.target],
                by_name[slot.target],
                concurrency=slot.concurrency,
                requests=requests_for(slot.concurrency),
                prompts=prompts,
                max_tokens=max_tokens,
                time_limit_s=min(batch_time_limit_s, left),
                round_=slot.round,
            )
            batches.append(batch)
            on_batch(index + 1, len(plan), slot, batch)
    cut = sum(batch.cut_by_time_limit for batch in batches)
    if cut:
        notes.append(f"{cut} requests were cut by a batch time limit (counted as errors)")
    return batches, notes
