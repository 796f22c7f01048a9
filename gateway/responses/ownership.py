"""Stored responses belong to the tenant that created them.

vLLM keeps a response under its own id and serves it to anyone who names it. With API keys
configured, the id a client sees carries a tag: an HMAC of vLLM's id keyed by the caller's
key digest. Retrieving, cancelling or continuing (``previous_response_id``) a response
needs an id whose tag matches the caller's key, so one tenant cannot reach another's
responses even knowing their ids. Stateless: any gateway process checks any id.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from gateway.auth import ApiKey
from gateway.errors import NotFound

_TAG_CHARS = 16


def _tag(key: ApiKey, engine_id: str) -> str:
    digest = hmac.new(key.sha256.encode(), engine_id.encode(), hashlib.sha256).hexdigest()
    return digest[:_TAG_CHARS]


def public_id(key: ApiKey | None, engine_id: str) -> str:
    """The id this caller sees for the engine's ``engine_id``."""
    return engine_id if key is None else f"{engine_id}.{_tag(key, engine_id)}"


def engine_id(key: ApiKey | None, public: str) -> str:
    """The engine's id behind a caller's ``public`` id; 404 if it is not the caller's."""
    if key is None:
        return public
    engine, _, tag = public.rpartition(".")
    if not engine or not hmac.compare_digest(tag, _tag(key, engine)):
        raise NotFound(
            f"no stored response '{public}'", param="response_id", code="response_not_found"
        )
    return engine


def show_ids(key: ApiKey | None, response: dict[str, Any]) -> None:
    """Rewrite a response object's own ids to the caller's form (in place)."""
    if key is None:
        return
    for name in ("id", "previous_response_id"):
        value = response.get(name)
        if isinstance(value, str) and value:
            response[name] = public_id(key, value)
