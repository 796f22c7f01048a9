"""API keys: bearer tokens checked against SHA-256 digests from settings.

Keys are stored only as digests (``ragserve keys hash SECRET`` prints one). Each key names
the collections it may search and an optional tenant filter that is forced onto every
search it makes, so neither ``rag.collection`` nor ``rag.filter`` can widen its view.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter
from starlette.requests import Request

from gateway.errors import APIError


class ApiKey(BaseModel):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    collections: list[str] | None = None  # None: every collection
    filter: dict[str, Any] | None = None  # forced onto every search
    max_concurrent_streams: int | None = None
    requests_per_minute: int | None = None
    answer_cache: bool = True  # false: this tenant's answers are never kept nor replayed

    def may_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


class Unauthorized(APIError):
    status = 401
    type = "authentication_error"


class Forbidden(APIError):
    status = 403
    type = "permission_error"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def load_keys(inline: list[ApiKey], keys_file: Path | None) -> list[ApiKey]:
    keys = list(inline)
    if keys_file is not None:
        keys += TypeAdapter(list[ApiKey]).validate_python(json.loads(keys_file.read_text()))
    return keys


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @property
    def tenant_tag_names(self) -> frozenset[str]:
        """Tag names any key's filter selects on (``tenant`` in ``tenant=a``): set by keys only."""
        return frozenset(name for key in self._keys for name in tenant_tags(key) or {})

    def authenticate(self, request: Request) -> ApiKey | None:
        """The caller's key; None when the server has no keys. Raises ``Unauthorized``."""
        if not self._keys:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        presented = digest(token.strip())
        found: ApiKey | None = None
        for key in self._keys:  # compare against every key, in constant time each
            if hmac.compare_digest(presented, key.sha256):
                found = key
        if found is None:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        return found


def restrict(
    key: ApiKey | None,
    collection: str,
    flt: dict[str, Any] | None,
    *,
    param: str = "rag.collection",
) -> dict[str, Any] | None:
    """The filter a key's search runs with; ``Forbidden`` for a collection it may not use.

    The answer for a collection the key was not given is the same whether it exists or not.
    """
    if key is None:
        return flt
    if not key.may_use(collection):
        raise Forbidden(
            f"this API key may not use the collection '{collection}'",
            param=param,
            code="collection_forbidden",
        )
    if not key.filter:
        return flt
    # The key's conditions win over any the request sends for the same fields.
    return {**(flt or {}), **key.filter}


def tenant_tags(key: ApiKey) -> dict[str, str] | None:
    """The tags that put a document inside ``key``'s filter; None when no tags can.

    A filter ``{"tags": ["tenant=a", "tenant=shared"]}`` is satisfied by ``tenant=a`` (the
    first value per tag name); a filter on any other field cannot be written by an upload.
    """
    if not key.filter:
        return {}
    values = key.filter.get("tags")
    if set(key.filter) != {"tags"} or not values:
        return None
    tags: dict[str, str] = {}
    for value in [values] if isinstance(values, str) else values:
        name, sep, tag = str(value).partition("=")
        if not sep:
            return None
        tags.setdefault(name, tag)
    return tags


def stamp_upload_tags(
    key: ApiKey | None, requested: dict[str, str], reserved: frozenset[str]
) -> dict[str, str]:
    """An upload's tags: a tenant key's own tags added, any other tenant's tag refused.

    ``reserved`` are the tag names any key's filter uses; only a key without a filter (an
    administrator) may set them freely.
    """
    if key is None or not key.filter:
        return requested
    own = tenant_tags(key)
    if own is None:
        raise Forbidden(
            "this API key's filter is not on 'tags', so its uploads could not be kept "
            'inside it: uploads need a key whose filter is like {"tags": ["tenant=a"]}',
            param="file",
            code="upload_forbidden",
        )
    for name, value in requested.items():
        if (name in reserved or name in own) and own.get(name) != value:
            raise Forbidden(
                f"the tag '{name}' is set by the API key, not by the upload",
                param="tags",
                code="tag_forbidden",
            )
    return {**requested, **own}
