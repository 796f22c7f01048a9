"""``ragserve collections``: list or delete collections, in the store or through the gateway."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.stack import Here, console, open_stack
from gateway.settings import get_settings

app = typer.Typer(help="List or delete collections.", no_args_is_help=True)


@app.command("list")
def collections_list() -> None:
    """List collections and their point counts."""
    with open_stack(get_settings()) as stack:
        if isinstance(stack, Here):
            rows = [(name, stack.store.count(name)) for name in stack.store.list_collections()]
        else:
            rows = [(c["name"], c["points"]) for c in stack.client.collections()["data"]]
    for name, points in rows:
        print(f"{name}\t{points}")


@app.command("delete")
def collections_delete(
    name: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False
) -> None:
    """Delete a collection and every point in it."""
    if not yes:
        typer.confirm(f"Delete the collection '{name}' and all its points?", abort=True)
    with open_stack(get_settings()) as stack:
        if isinstance(stack, Here):
            if not stack.store.collection_exists(name):
                raise SystemExit(f"collection '{name}' does not exist")
            stack.store.delete_collection(name)
        else:
            stack.client.delete_collection(name)
    console.print(f"Deleted the collection '{name}'.")
