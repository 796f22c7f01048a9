"""Request dependencies shared by the /v1 routes."""

from __future__ import annotations

from fastapi import Request

from gateway.auth import ApiKey, KeyRing


async def api_key(request: Request) -> ApiKey | None:
    """The caller's API key (None when the server has none configured); 401 otherwise."""
    keys: KeyRing = request.app.state.keys
    key = keys.authenticate(request)
    request.state.api_key = key
    return key
