"""The web playground: a static page at ``/`` that talks to the public API like any client.

The files in ``gateway/static/`` are served as they are (no build step). Only names made of
safe characters that exist in that folder are served, so no path can leave it. The page
needs no key to load; everything it does goes through the authenticated ``/v1`` routes.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel

from gateway.deps import ServicesDep
from gateway.embeddings.service import embedding_model_name
from gateway.errors import NotFound
from gateway.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# One path segment, no leading dot: "app.js" yes; "../x", ".env", "a/b" never.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")

# The page loads only its own files and talks only to this gateway.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate each load (the ETag makes it cheap), so an upgraded gateway's page is seen.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


class PlaygroundConfig(BaseModel):
    """What the page must know before it has a key."""

    auth_required: bool
    # /v1/models lists the embedding model too; the page leaves it out of the chat picker.
    embedding_model: str
    # What the page answers from until the user picks: the alias that searches the default
    # collection (``docs``), else that collection with the first chat model.
    default_model: str | None
    default_collection: str


def default_alias(settings: Settings) -> str | None:
    """The model alias that searches the server's default collection, if one does."""
    aliases = [
        name
        for name, alias in settings.model_aliases.items()
        if alias.collection == settings.collection
    ]
    return settings.collection if settings.collection in aliases else next(iter(aliases), None)


def _static_file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    media_type = CONTENT_TYPES.get(path.suffix)
    if not _SAFE_NAME.match(name) or media_type is None or not path.is_file():
        raise NotFound(f"no playground file named '{name}'", code="not_found")
    return FileResponse(path, media_type=media_type, headers=_PAGE_HEADERS)


@router.get("/")
async def index() -> FileResponse:
    return _static_file("index.html")


@router.get("/playground/config.json", response_model=PlaygroundConfig)
async def config(services: ServicesDep) -> PlaygroundConfig:
    settings = services.settings
    return PlaygroundConfig(
        auth_required=services.keys.enabled,
        embedding_model=embedding_model_name(settings.embedding_model),
        default_model=default_alias(settings),
        default_collection=settings.collection,
    )


@router.get("/playground/{name}")
async def static_file(name: str) -> FileResponse:
    return _static_file(name)
