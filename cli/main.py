"""The ``ragserve`` command: serve the stack, ingest and search documents."""

from __future__ import annotations

import typer

from cli import collections, keys
from cli.evaluate import evaluate
from cli.ingest import ingest
from cli.search import search
from cli.serve import serve

app = typer.Typer(help="ragserve: retrieval-augmented LLM serving.", no_args_is_help=True)
app.command()(serve)
app.command()(ingest)
app.command()(search)
app.command("eval")(evaluate)
app.add_typer(collections.app, name="collections")
app.add_typer(keys.app, name="keys")

if __name__ == "__main__":
    app()
