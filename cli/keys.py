"""``ragserve keys``: API key helpers."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="API key helpers.", no_args_is_help=True)


@app.command("hash")
def keys_hash(secret: Annotated[str, typer.Argument(help="The API key to hash.")]) -> None:
    """Print the sha256 to put in RAGSERVE_API_KEYS (the server never stores the key)."""
    from gateway.auth import digest

    print(digest(secret))
