"""Compatibility: the loaders under their first module name (``gateway/`` imports these).

New code imports ``ingest.loaders``.
"""

from __future__ import annotations

from ingest.loaders import (
    DEFAULT_MAX_BYTES,
    SUPPORTED_SUFFIXES,
    Document,
    LoadError,
    LoadFailure,
    Section,
    UnsupportedType,
    is_supported,
    load_bytes,
    load_path,
    read_limited,
)
from ingest.loaders._text import decode_text

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_SUFFIXES",
    "Document",
    "LoadError",
    "LoadFailure",
    "Section",
    "UnsupportedType",
    "decode_text",
    "is_supported",
    "load_bytes",
    "load_file",
    "load_path",
    "read_limited",
]

load_file = load_path
