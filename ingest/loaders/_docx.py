"""DOCX: paragraphs and tables in order; heading styles start sections.

A .docx is a zip archive, so it is checked before parsing: one that would inflate past
``MAX_INFLATED_BYTES`` (or inflate suspiciously far) is refused as a likely zip bomb.
"""

from __future__ import annotations

import io
import zipfile

from ingest.loaders._errors import LoadError
from ingest.loaders._types import Loaded, Section

MAX_INFLATED_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 10_000
# Office XML compresses ~10x; hundreds of times is what a bomb looks like.
MAX_RATIO = 200
_RATIO_APPLIES_ABOVE = 16 * 1024 * 1024


def check_archive(data: bytes, max_inflated: int = MAX_INFLATED_BYTES) -> None:
    """Refuse corrupt archives and zip bombs from the central directory, before inflating."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise LoadError(f"corrupt DOCX (not a valid zip archive): {exc}") from exc
    if len(infos) > MAX_ENTRIES:
        raise LoadError(f"refused: the DOCX holds {len(infos)} files (zip bomb?)")
    inflated = sum(i.file_size for i in infos)
    compressed = sum(i.compress_size for i in infos) or 1
    if inflated > max_inflated or (
        inflated > _RATIO_APPLIES_ABOVE and inflated / compressed > MAX_RATIO
    ):
        raise LoadError(
            f"refused: the DOCX would inflate to {inflated / 1e6:.0f} MB "
            f"from {compressed / 1e6:.1f} MB (zip bomb?)"
        )
    if "word/document.xml" not in {i.filename for i in infos}:
        raise LoadError("corrupt DOCX: no word/document.xml in the archive")


def load_docx(data: bytes, warnings: list[str]) -> Loaded:
    check_archive(data)
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise LoadError(f"corrupt DOCX: {exc}") from exc
    sections: list[Section] = []
    current: str | None = None
    title: str | None = (document.core_properties.title or "").strip() or None
    blocks: list[str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = (" | ".join(c.text.strip() for c in row.cells) for row in item.rows)
            blocks.append("\n".join(r for r in rows if r.strip(" |")))
            continue
        style = (item.style.name if item.style is not None else "") or ""
        text = item.text.strip()
        if not text:
            continue
        if style.startswith(("Heading", "Title")):
            sections.append(Section("\n\n".join(blocks), current))
            blocks, current = [], text
            title = title or text
        else:
            blocks.append(text)
    sections.append(Section("\n\n".join(blocks), current))
    return title, sections
