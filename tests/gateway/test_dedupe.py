"""The same passage from two documents takes one slot: sent once, every origin listed.

The pipeline runs over an in-process retriever that returns fixed hits (the store's own
ranking is not the point) and the replaying engine (tests/support/replay_engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from gateway.rag.dedupe import collapse_duplicates, jaccard, shingles
from gateway.rag.options import RagOptions
from gateway.rag.pipeline import RagDefaults, RagPipeline, plan_retrieval
from gateway.timing import Timings
from retrieval.types import PayloadFilter, SearchHit
from tests.support.replay_engine import MODEL, ReplayEngine

PARAGRAPH = "The gateway reports HX-7731 when the clock of a node drifts more than five seconds."


def hit(chunk: str, doc: str, text: str, score: float = 0.5) -> SearchHit:
    payload = {"text": text, "doc_id": doc, "source": f"{doc}.md", "title": doc}
    return SearchHit(id=chunk, score=score, payload=payload)


@dataclass
class FixedHits:
    hits: list[SearchHit]
    embed_ms: float = 1.0
    search_ms: float = 1.0
    asked: list[dict[str, Any]] = field(default_factory=list)

    async def check(self, collection: str, flt: PayloadFilter | None) -> None:
        pass

    async def retrieve(self, query: str, **kwargs: Any) -> FixedHits:
        self.asked.append(kwargs)
        return self


def augment(hits: list[SearchHit], similarity: float = 1.0) -> tuple[Any, list[dict[str, Any]]]:
    defaults = RagDefaults("docs", 5, "hybrid", None, "error", dedupe_similarity=similarity)
    pipeline = RagPipeline(FixedHits(hits), ReplayEngine(), defaults)
    plan = plan_retrieval(RagOptions(enabled=True), None, defaults)
    assert plan is not None
    messages = [{"role": "user", "content": "What is HX-7731?"}]

    async def main() -> tuple[Any, list[dict[str, Any]]]:
        out, context = await pipeline.augment(
            messages, plan, engine_model=MODEL, max_tokens=None, timings=Timings()
        )
        return out, context.sources

    return anyio.run(main)


def test_the_same_text_from_two_documents_is_sent_once_with_both_origins() -> None:
    hits = [
        hit("c1", "guide", PARAGRAPH, 0.9),
        hit("c2", "other", "Unrelated text about backups.", 0.8),
        hit("c3", "guide-copy", "  " + PARAGRAPH.replace(" ", "\n ", 2) + "\n", 0.7),
        hit("c4", "guide-old", PARAGRAPH, 0.6),
    ]
    messages, sources = augment(hits)
    assert [s["id"] for s in sources] == [1, 2]
    assert sources[0]["chunk_id"] == "c1"  # the best-ranked copy speaks for all
    assert sources[0]["also_in"] == [
        {"source": "guide-copy.md", "doc_id": "guide-copy", "chunk_id": "c3"},
        {"source": "guide-old.md", "doc_id": "guide-old", "chunk_id": "c4"},
    ]
    assert "also_in" not in sources[1]
    prompt = messages[-1]["content"]
    assert prompt.count("clock of a node drifts") == 1
    assert "[2] other" in prompt and "[3]" not in prompt


def test_near_copies_collapse_only_below_one() -> None:
    edited = PARAGRAPH.replace("five seconds", "five seconds or more")
    hits = [hit("c1", "a", PARAGRAPH), hit("c2", "b", edited)]
    assert len(augment(hits)[1]) == 2  # the default: exact copies only
    assert jaccard(shingles(PARAGRAPH), shingles(edited)) < 0.9
    assert len(augment(hits, similarity=0.7)[1]) == 1
    assert len(collapse_duplicates(hits, 0.95)) == 2


def test_distinct_passages_keep_their_order_and_numbers() -> None:
    hits = [hit(f"c{i}", f"d{i}", f"passage number {i} says {i * 'x'}") for i in range(5)]
    groups = collapse_duplicates(hits, 0.9)
    assert [h.id for h, copies in groups] == [f"c{i}" for i in range(5)]
    assert all(not copies for _, copies in groups)
