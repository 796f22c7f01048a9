"""Where a command works: the store opened in this process, or the gateway that holds it.

The store's location comes from the settings alone (an absolute default under
``RAGSERVE_DATA_DIR``, or ``RAGSERVE_QDRANT_PATH`` / ``RAGSERVE_QDRANT_URL``), never from
the working folder, so every command finds the same stack from anywhere. An embedded store
admits one process: while a gateway holds it, commands go through that gateway's HTTP API
(its address is in the store's folder). Every command says which it uses, and only
``ingest`` creates a store that is not there yet, saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from cli.gateway_client import GatewayClient
from gateway.retrieval_setup import describe_store, store_exists
from gateway.settings import Settings
from gateway.store_access import address_file, gateway_url
from retrieval.factory import open_store
from retrieval.types import StoreLocked, VectorStore

console = Console(stderr=True)


class NoStore(SystemExit):
    """A command that only reads found no store where the settings point."""


@dataclass
class Here:
    """The store, opened by this process."""

    store: VectorStore


@dataclass
class Remote:
    """The gateway that holds the store."""

    client: GatewayClient


Stack = Here | Remote


def say(message: str) -> None:
    console.print(f"[dim]{escape(message)}[/]")


@contextmanager
def open_stack(settings: Settings, *, create: bool = False) -> Iterator[Stack]:
    """The store for ``settings``, or the gateway holding it; ``create``: make a new store.

    Without ``create`` a missing embedded store is refused (``NoStore``): a search in the
    wrong place must not leave an empty store behind, nor answer "no such collection".
    """
    where = describe_store(settings)
    embedded = settings.store_backend != "server"
    if embedded and not store_exists(settings):
        if not create:
            raise NoStore(_missing(settings))
        say(f"No store at {settings.qdrant_path} yet: creating it.")
    try:
        store = open_store(settings.store_backend, path=str(settings.qdrant_path),
                           url=settings.qdrant_url, api_key=settings.qdrant_api_key)  # fmt: skip
    except StoreLocked:
        if not address_file(settings).exists():
            raise SystemExit(
                f"{where[0].upper()}{where[1:]} is in use by another process, and no gateway "
                "serves it; try again once that process is done"
            ) from None
        client = GatewayClient(gateway_url(settings), settings.api_key)
        say(f"{where[0].upper()}{where[1:]} is held by the gateway at {client.url}; "
            "going through it.")  # fmt: skip
        try:
            yield Remote(client)
        finally:
            client.close()
        return
    say(f"Using {where}.")
    try:
        yield Here(store)
    finally:
        store.close()


def _missing(settings: Settings) -> str:
    lines = [
        f"No store at {settings.qdrant_path}: nothing has been ingested there and no "
        "gateway serves it.",
        "Ingest first (`ragserve ingest PATHS`), or point RAGSERVE_DATA_DIR or "
        "RAGSERVE_QDRANT_PATH at your store.",
    ]
    legacy = Path(os.getcwd()) / "data" / "qdrant"  # the working-folder default of old
    if legacy.is_dir() and legacy != settings.qdrant_path:
        lines.append(f"A store from an older ragserve is at {legacy}: "
                     f"RAGSERVE_QDRANT_PATH={legacy} uses it.")  # fmt: skip
    return "\n".join(lines)
