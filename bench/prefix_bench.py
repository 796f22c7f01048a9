"""First-token time of 5-turn RAG conversations: ragserve's prompt order vs passages first.

(a) ragserve's order: the system prompt, the conversation, then the fenced passages inside
    the last user turn (``gateway.rag.prompt.with_context``), so turn k+1's prompt starts
    with turn k's up to its last user message and the engine's prefix cache serves it.
(b) passages first, as naive RAG servers do: the same fenced block in the system message at
    the top, so the prompt differs from the previous turn's right after the system prompt.

Both get the same messages, passages (a different set each turn, from the sample corpus)
and scripted assistant answers, sent straight to the engine: only the order differs. Each
conversation has a cache salt of its own (no conversation, earlier run or other traffic
shares its cache); the two variants' conversations advance turn by turn, alternating which
goes first. Prints per turn the p50 first-token time, prompt and cached tokens
(``prompt_tokens_details``, when the engine reports them) and the engine's own prefill
time, and the engine's prefix-cache counters per variant (read around each request: on an
engine that serves others too, their requests count as well). Not a test; loopback only,
bounded in conversations and time.

    python -m bench.prefix_bench --engine http://127.0.0.1:8100 --conversations 6
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import require_loopback
from bench.machine import REPO, load_average, machine, versions
from bench.stats import median
from gateway.engine_metrics import parse_prefix_cache
from gateway.rag.prompt import (
    DEFAULT_SYSTEM_PROMPT,
    Passage,
    context_block,
    new_fence_nonce,
    with_context,
)
from ingest.loaders import load_path

TURNS = 5
PASSAGES_PER_TURN = 5
ANSWER_WORDS = 90  # a scripted answer: a paragraph (~130 tokens), as RAG answers are
QUESTIONS = (
    "What does error HX-7731 mean?",
    "How do I fix it on a collector node?",
    "How many events per second can one collector ingest?",
    "How long are raw readings kept?",
    "Which release introduced delta compression?",
    "How much does the Fleet plan cost?",
    "What is the support mascot called?",
)
Messages = list[dict[str, Any]]


def sample_passages() -> list[Passage]:
    """Every section of the sample corpus as a passage (what retrieval would return)."""
    passages = []
    for path in sorted((REPO / "ingest" / "samples").iterdir()):
        document = load_path(path)
        for section in document.sections:
            title = section.title or document.title
            source = f"ingest/samples/{path.name}"
            passages.append(Passage(0, title, source, section.page, section.text.strip()))
    return passages


def turn_passages(corpus: Sequence[Passage], conversation: int, turn: int) -> list[Passage]:
    """A different set (and first passage) each turn, as different questions retrieve."""
    start = (conversation * 3 + turn * 2) % len(corpus)
    chosen = [corpus[(start + i) % len(corpus)] for i in range(PASSAGES_PER_TURN)]
    return [Passage(n, p.title, p.source, p.page, p.text) for n, p in enumerate(chosen, 1)]


def scripted_answer(passages: Sequence[Passage]) -> str:
    words = f"{passages[0].text} {passages[1].text}".split()[:ANSWER_WORDS]
    return f"According to [1] and [2], {' '.join(words)}"


def ragserve_order(history: Messages, passages: Sequence[Passage], nonce: str) -> Messages:
    return with_context(history, passages, nonce)


def passages_first(history: Messages, passages: Sequence[Passage], nonce: str) -> Messages:
    system = f"{DEFAULT_SYSTEM_PROMPT}\n\n{context_block(passages, nonce)}"
    return [{"role": "system", "content": system}, *history]


VARIANTS = {"ragserve order": ragserve_order, "passages first": passages_first}


@dataclass
class TurnSample:
    turn: int
    ttft_ms: float
    prompt_tokens: int
    cached_tokens: int | None  # the engine's own figure, when it reports it
    queries: float = 0.0  # the engine's prefix-cache counters across this request
    hits: float = 0.0
    prefill_ms: float = math.nan  # the engine's own prefill time of this request


@dataclass
class Conversation:
    """One variant's conversation: its history so far and its cache salt."""

    variant: str
    index: int
    salt: str = field(default_factory=lambda: f"prefix-bench-{uuid.uuid4()}")
    history: Messages = field(default_factory=list)
    turns: list[TurnSample] = field(default_factory=list)


_PREFILL_SUM = re.compile(
    rb"^vllm:request_prefill_time_seconds_sum(?:\{[^\n]*\})?[ \t]+(\S+)", re.MULTILINE
)


def engine_counters(client: httpx.Client) -> dict[str, float]:
    """The engine's prefix-cache counters and its total prefill seconds so far."""
    page = client.get("/metrics").content
    prefill = sum(float(value) for value in _PREFILL_SUM.findall(page))
    return {**parse_prefix_cache(page), "prefill_s": prefill}


def first_token(client: httpx.Client, model: str, messages: Messages, salt: str) -> TurnSample:
    """One streamed request: time to the first generated token, and the usage."""
    body = {
        "model": model, "messages": messages, "max_tokens": 2, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True}, "cache_salt": salt,
    }  # fmt: skip
    began = time.perf_counter()
    ttft, usage = math.nan, None
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and math.isnan(ttft):
                ttft = (time.perf_counter() - began) * 1000
            usage = chunk.get("usage") or usage
    assert usage is not None, "the engine sent no usage"
    details = usage.get("prompt_tokens_details") or {}
    return TurnSample(0, ttft, int(usage["prompt_tokens"]), details.get("cached_tokens"))


def next_turn(
    client: httpx.Client, model: str, corpus: Sequence[Passage], chat: Conversation
) -> None:
    """Ask the conversation's next question, then append a scripted answer."""
    turn = len(chat.turns)
    passages = turn_passages(corpus, chat.index, turn)
    chat.history.append(
        {"role": "user", "content": QUESTIONS[(chat.index + turn) % len(QUESTIONS)]}
    )
    messages = VARIANTS[chat.variant](chat.history, passages, new_fence_nonce())
    before = engine_counters(client)
    sample = first_token(client, model, messages, chat.salt)
    after = engine_counters(client)
    sample.turn = turn + 1
    sample.queries = after.get("queries", 0.0) - before.get("queries", 0.0)
    sample.hits = after.get("hits", 0.0) - before.get("hits", 0.0)
    sample.prefill_ms = (after["prefill_s"] - before["prefill_s"]) * 1000
    chat.turns.append(sample)
    chat.history.append({"role": "assistant", "content": scripted_answer(passages)})


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.0f}"


def _p50(values: Sequence[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return median(present) if present else None


def report(runs: dict[str, list[Conversation]]) -> str:
    a, b = (runs[name] for name in VARIANTS)
    pairs = list(zip(a, b, strict=True))

    def both(turn: int, attr: str, unit: str = "") -> str:
        return " / ".join(
            _fmt(_p50([getattr(chat.turns[turn], attr) for chat in variant])) + unit
            for variant in (a, b)
        )

    lines = [
        f"{len(a)} conversations of {TURNS} turns per variant, p50 per turn; "
        "a / b = ragserve order / passages first",
        "",
        "| turn | prompt tokens | cached tokens a / b | TTFT a / b | TTFT saved (paired) "
        "| engine prefill a / b |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for turn in range(TURNS):
        saved = _p50([y.turns[turn].ttft_ms - x.turns[turn].ttft_ms for x, y in pairs])
        lines.append(
            f"| {turn + 1} | {_fmt(_p50([chat.turns[turn].prompt_tokens for chat in a]))} "
            f"| {both(turn, 'cached_tokens')} | {both(turn, 'ttft_ms', ' ms')} "
            f"| {_fmt(saved)} ms | {both(turn, 'prefill_ms', ' ms')} |"
        )
    lines += ["", "| variant | engine prefix-cache queries | hits | hit rate |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for name, variant in runs.items():
        queries = sum(t.queries for chat in variant for t in chat.turns)
        hits = sum(t.hits for chat in variant for t in chat.turns)
        rate = f"{hits / queries:.1%}" if queries else "-"
        lines.append(f"| {name} | {queries:.0f} | {hits:.0f} | {rate} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="http://127.0.0.1:8100", help="vLLM base URL")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--conversations", type=int, default=6, help="per variant, 1..20")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="start no new conversation after this long")  # fmt: skip
    parser.add_argument("--out", type=Path, help="save the samples as JSON here")
    args = parser.parse_args()
    if not 1 <= args.conversations <= 20:
        parser.error("--conversations must be 1..20")
    engine = require_loopback(args.engine)
    corpus = sample_passages()
    runs: dict[str, list[Conversation]] = {name: [] for name in VARIANTS}
    load_before = load_average()
    began = time.monotonic()
    with httpx.Client(base_url=engine, timeout=300) as client:
        # Warm-up: the engine's first request pays one-off costs.
        first_token(client, args.model, [{"role": "user", "content": "Hi"}], "warm-up")
        for index in range(args.conversations):
            if time.monotonic() - began > args.max_seconds:
                print(f"time budget spent after {index} conversations", file=sys.stderr)
                break
            # The two variants' conversations advance turn by turn, in alternating order,
            # so each turn's pair meets the same machine load.
            pair = [Conversation(variant, index) for variant in VARIANTS]
            for turn in range(TURNS):
                for chat in pair if (index + turn) % 2 == 0 else reversed(pair):
                    next_turn(client, args.model, corpus, chat)
            for chat in pair:
                runs[chat.variant].append(chat)
            print(f"conversation {index + 1} done", file=sys.stderr)
    print(report(runs))
    print(f"\nload average before {load_before}, after {load_average()}; "
          f"{time.monotonic() - began:.0f} s")  # fmt: skip
    if args.out:
        record = {
            "machine": machine(), "versions": versions(), "engine": engine,
            "runs": {name: [asdict(c) for c in chats] for name, chats in runs.items()},
        }  # fmt: skip
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
