"""Which files an ingest reads, what each document is called, and how tags are given.

A file's ``doc_id`` is its absolute path, or its path relative to a base folder when one is
given (a corpus that moves between machines), normalised to forward slashes. The id is what
makes re-ingesting idempotent, so it depends neither on how the path was spelled nor on the
folder the command ran in: ``./docs/a.md``, ``docs//a.md`` and ``/abs/docs/a.md`` are one
document, from anywhere.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ingest.loaders import is_supported

SkipCallback = Callable[[Path, str], None]


def doc_id_for(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> str:
    """The stable id of the file at ``path``: absolute, or relative to ``base`` inside it."""
    resolved = Path(os.path.abspath(path))
    if base is None:
        return resolved.as_posix()
    try:
        return resolved.relative_to(os.path.abspath(base)).as_posix()
    except ValueError:
        return resolved.as_posix()


def file_of(doc_id: str, base: str | os.PathLike[str] | None = None) -> Path:
    """Where the file a ``doc_id_for`` id names lives (the inverse of ``doc_id_for``)."""
    return Path(os.path.abspath(base if base is not None else "/")) / doc_id


def discover(
    paths: Sequence[str | os.PathLike[str]],
    glob: str | None = None,
    on_skip: SkipCallback | None = None,
) -> list[Path]:
    """Supported files under ``paths``, sorted, each once; others reported via ``on_skip``.

    Folders are walked recursively; hidden files and folders (``.git``) are ignored; ``glob``
    (e.g. ``*.md``) filters by file name inside folders. A file named explicitly is taken
    whatever ``glob`` says.
    """
    skip = on_skip or (lambda p, why: None)
    found: dict[str, Path] = {}
    for given in paths:
        root = Path(given)
        if root.is_file():
            candidates: Iterable[Path] = [root]
        elif root.is_dir():
            candidates = _walk(root, glob)
        else:
            skip(root, "no such file or folder")
            continue
        for path in candidates:
            if is_supported(path):
                # The same file named twice (or via two spellings) is read once.
                found.setdefault(os.path.abspath(path), path)
            else:
                skip(path, f"unsupported file type '{path.suffix or path.name}'")
    return [found[k] for k in sorted(found)]


def _walk(root: Path, glob: str | None) -> list[Path]:
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or (glob and not fnmatch.fnmatch(name, glob)):
                continue
            files.append(Path(folder) / name)
    return files


def under(doc_id: str, prefix: str) -> bool:
    """Whether ``doc_id`` is the file ``prefix`` or inside the folder ``prefix``."""
    if prefix in ("", "."):
        return not doc_id.startswith("/")
    prefix = prefix.rstrip("/")
    return doc_id == prefix or doc_id.startswith(prefix + "/")


def parse_tags(pairs: Iterable[str] | Mapping[str, object] | None) -> dict[str, str]:
    """``["team=ops", "lang=en"]`` (or a mapping) → ``{"team": "ops", "lang": "en"}``."""
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return {str(k): str(v) for k, v in pairs.items()}
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"a tag is key=value, got {pair!r}")
        tags[key.strip()] = value.strip()
    return tags
