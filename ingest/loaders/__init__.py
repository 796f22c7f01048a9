"""Loaders: a file (or uploaded bytes) becomes a ``Document`` of titled sections.

Supported: .txt, .md/.markdown (headings → sections, front matter dropped), .html/.htm
(main text only), .pdf (one section per page, 1-based page numbers), .docx (headings →
sections). A file that cannot be read raises ``LoadError`` with a reason a person can act
on; ``try_load_path`` returns that as a ``LoadFailure`` value instead, so a run over many
files records it and moves on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ingest.loaders._docx import load_docx
from ingest.loaders._errors import LoadError, UnsupportedType
from ingest.loaders._html import load_html
from ingest.loaders._pdf import load_pdf
from ingest.loaders._text import load_markdown, load_txt
from ingest.loaders._types import Loaded, Section

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_SUFFIXES",
    "Document",
    "LoadError",
    "LoadFailure",
    "Section",
    "UnsupportedType",
    "is_supported",
    "load_bytes",
    "load_path",
    "read_limited",
    "try_load_path",
]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_LOADERS: dict[str, Callable[[bytes, list[str]], Loaded]] = {
    ".txt": load_txt,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}
SUPPORTED_SUFFIXES = tuple(_LOADERS)


@dataclass
class Document:
    """A loaded file: identity, provenance, and its text as sections."""

    doc_id: str
    source: str
    title: str
    doc_hash: str  # sha256 of the raw bytes: any byte change is a new version
    sections: list[Section]
    mtime: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not any(s.text.strip() for s in self.sections)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


class LoadFailure(NamedTuple):
    """A file that could not be loaded, and why (a value, so runs carry on)."""

    path: str
    reason: str


def is_supported(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in _LOADERS


def read_limited(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes; an oversize file is refused from its size, before any read."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(_too_big(size, max_bytes))
        with open(path, "rb") as f:
            # Read one byte past the limit: a file growing after stat() is still refused.
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise LoadError(_too_big(len(data), max_bytes))
    return data


def _too_big(size: int, limit: int) -> str:
    return (
        f"too large: {size / 2**20:.1f} MiB is over the {limit / 2**20:.1f} MiB limit; "
        "split the file or raise the limit (max_bytes / RAGSERVE_MAX_UPLOAD_BYTES)"
    )


def load_path(
    path: str | os.PathLike[str],
    *,
    doc_id: str | None = None,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Document:
    """Load one file; raises ``UnsupportedType`` or ``LoadError``."""
    path = Path(path)
    if not is_supported(path):
        raise UnsupportedType(f"unsupported file type '{path.suffix or path.name}'")
    data = read_limited(path, max_bytes)
    try:
        mtime: float | None = path.stat().st_mtime
    except OSError:
        mtime = None
    name = path.as_posix()
    return load_bytes(data, path.name, doc_id=doc_id or name, source=source or name, mtime=mtime)


def try_load_path(
    path: str | os.PathLike[str],
    *,
    doc_id: str | None = None,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Document | LoadFailure:
    """``load_path``, with any failure returned as a ``LoadFailure`` instead of raised."""
    try:
        return load_path(path, doc_id=doc_id, source=source, max_bytes=max_bytes)
    except LoadError as exc:
        return LoadFailure(str(path), str(exc))


def load_bytes(
    data: bytes,
    filename: str,
    *,
    doc_id: str,
    source: str | None = None,
    mtime: float | None = None,
) -> Document:
    """Parse ``data`` by the type its ``filename`` names; raises ``LoadError``."""
    suffix = Path(filename).suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise UnsupportedType(f"unsupported file type '{suffix or filename}'")
    warnings: list[str] = []
    if data.strip():
        try:
            title, sections = loader(data, warnings)
        except LoadError:
            raise
        except (RecursionError, MemoryError) as exc:
            raise LoadError(f"cannot parse ({type(exc).__name__}): the file is malformed") from exc
        except Exception as exc:  # third-party parsers raise anything on bad input
            raise LoadError(f"cannot parse: {type(exc).__name__}: {exc}") from exc
    else:
        title, sections = None, []
    return Document(
        doc_id=doc_id,
        source=source or filename,
        title=title or Path(filename).stem,
        doc_hash=hashlib.sha256(data).hexdigest(),
        sections=[s for s in sections if s.text.strip()],
        mtime=mtime,
        warnings=warnings,
    )
