"""Load errors: the message is the reason shown to the person who ran the ingest."""

from __future__ import annotations


class LoadError(Exception):
    """The file could not be turned into text; the message says why."""


class UnsupportedType(LoadError):
    """The file's type has no loader (skipped, not failed, in a run over folders)."""
