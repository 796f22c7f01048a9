"""``ragserve search``: the passages that best match a query, from the store or the gateway."""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table

from cli.stack import Here, open_stack
from gateway.retrieval_setup import open_retrieval
from gateway.settings import Settings, get_settings
from retrieval.types import CollectionNotFound, SearchMode, VectorStore


def parse_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--filter") from exc
    if not isinstance(value, dict):
        raise typer.BadParameter('a JSON object, e.g. {"source": "a.md"}', param_hint="--filter")
    return value


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: Annotated[str | None, typer.Option(help="Collection (default: settings).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option(help="dense, sparse or hybrid.")] = "hybrid",
    filter: Annotated[str | None, typer.Option(help='JSON, e.g. {"tags": ["faq"]}')] = None,
    min_score: Annotated[float | None, typer.Option(help="Score floor.")] = None,
) -> None:
    """Print the passages that best match QUERY, with scores and sources."""
    settings = get_settings()
    if mode not in ("dense", "sparse", "hybrid"):
        raise typer.BadParameter("dense, sparse or hybrid", param_hint="--mode")
    body = {
        "query": query,
        "collection": collection or settings.collection,
        "top_k": top_k,
        "mode": mode,
        "filter": parse_filter(filter),
        "min_score": min_score,
    }
    with open_stack(settings) as stack:
        if isinstance(stack, Here):
            results = anyio.run(_search_here, settings, stack.store, body)
        else:
            results = stack.client.search(body)["results"]
    table = Table(title=f"{len(results)} passages for {query!r} ({mode})")
    for column in ("#", "score", "source", "passage"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(results, start=1):
        where = (hit.get("source") or "") + (f" p.{hit['page']}" if hit.get("page") else "")
        text = " ".join(str(hit["text"]).split())
        table.add_row(str(rank), f"{hit['score']:.4f}", where, text[:400])
    Console().print(table)


async def _search_here(
    settings: Settings, store: VectorStore, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """The gateway's own retrieval stack, built around the store this process opened."""
    stack = await open_retrieval(settings, store=store)
    assert stack.retriever is not None
    try:
        found = await stack.retriever.retrieve(
            body["query"], collection=body["collection"], top_k=body["top_k"],
            mode=SearchMode(body["mode"]), flt=body["filter"], min_score=body["min_score"],
        )  # fmt: skip
    except CollectionNotFound as exc:
        raise SystemExit(str(exc)) from exc
    return [{"score": h.score, "text": h.text, **h.payload} for h in found.hits]
