"""Loaders: a file (or uploaded bytes) becomes a ``Document`` of titled sections.

Supported: .txt, .md/.markdown (headings → sections, front matter dropped), .html/.htm
(main text only), .pdf (one section per page, page numbers kept), .docx (headings →
sections). Failures are ``LoadError`` with a reason a person can act on; the pipeline
records them and moves on.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# A .docx is a zip: refuse archives that would inflate past this (zip bombs).
MAX_DOCX_INFLATED_BYTES = 200 * 1024 * 1024


class LoadError(Exception):
    """The file could not be turned into text; the message says why."""


class UnsupportedType(LoadError):
    pass


@dataclass(frozen=True, slots=True)
class Section:
    text: str
    title: str | None = None
    page: int | None = None


@dataclass
class Document:
    doc_id: str
    source: str
    title: str
    doc_hash: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not any(s.text.strip() for s in self.sections)


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def read_limited(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes, refusing before reading anything over ``max_bytes``."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(
                f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit "
                "(RAGSERVE_MAX_UPLOAD_BYTES); split the file or raise the limit"
            )
        return path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from exc


def load_file(
    path: Path, *, doc_id: str, source: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> Document:
    if not is_supported(path):
        raise UnsupportedType(f"unsupported file type '{path.suffix or path.name}'")
    return load_bytes(read_limited(path, max_bytes), path.name, doc_id=doc_id, source=source)


def load_bytes(data: bytes, filename: str, *, doc_id: str, source: str) -> Document:
    suffix = Path(filename).suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise UnsupportedType(f"unsupported file type '{suffix or filename}'")
    warnings: list[str] = []
    title, sections = loader(data, warnings)
    return Document(
        doc_id=doc_id,
        source=source,
        title=title or Path(filename).stem,
        doc_hash=hashlib.sha256(data).hexdigest(),
        sections=[s for s in sections if s.text.strip()],
        warnings=warnings,
    )


# --- text ------------------------------------------------------------------------------


def decode_text(data: bytes, warnings: list[str]) -> str:
    """UTF-8 (BOM allowed); anything else is decoded with replacement, and said so."""
    head = data[:8192]
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("looks binary (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        warnings.append(
            f"not valid UTF-8: {text.count(chr(0xFFFD))} undecodable bytes replaced with U+FFFD"
        )
    sample = text[:8192]
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\n\r\t\f")
    if sample and controls / len(sample) > 0.1:
        raise LoadError("looks binary (control characters), not text")
    return text


def _load_txt(data: bytes, warnings: list[str]) -> tuple[str | None, list[Section]]:
    return None, [Section(decode_text(data, warnings))]


_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.S)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


def _load_markdown(data: bytes, warnings: list[str]) -> tuple[str | None, list[Section]]:
    text = _FRONT_MATTER.sub("", decode_text(data, warnings), count=1)
    return _split_on_headings(text)


def _split_on_headings(text: str) -> tuple[str | None, list[Section]]:
    """Sections between headings; each takes its heading as title (fenced code respected)."""
    sections: list[Section] = []
    title: str | None = None
    current: str | None = None
    start = 0
    for match in _HEADING.finditer(text):
        if text[: match.start()].count("```") % 2:  # a '#' line inside a code block
            continue
        sections.append(Section(text[start : match.start()].strip(), current))
        current = match.group(2).strip()
        if title is None and len(match.group(1)) == 1:
            title = current
        start = match.end()
    sections.append(Section(text[start:].strip(), current))
    return title, sections


# --- html ------------------------------------------------------------------------------

_NOT_CONTENT = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form",
                "template", "svg", "iframe")  # fmt: skip
_HEADING_MARK = "\u0000H\u0000"
_BLOCKS = ("p", "li", "div", "pre", "blockquote", "tr", "table", "ul", "ol", "dd", "dt",
           "section", "article")  # fmt: skip


def _load_html(data: bytes, warnings: list[str]) -> tuple[str | None, list[Section]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data, warnings), "html.parser")
    for tag in soup(_NOT_CONTENT):
        tag.decompose()
    page_title = soup.title.get_text(" ", strip=True) if soup.title else None
    root = soup.find("main") or soup.find("article") or soup.body or soup
    for heading in root.find_all(["h1", "h2", "h3", "h4"]):
        heading.replace_with(f"\n\n{_HEADING_MARK}{heading.get_text(' ', strip=True)}\n\n")
    for block in root.find_all(_BLOCKS):
        block.insert_after("\n\n")
    for br in root.find_all("br"):
        br.replace_with("\n")
    # Inline tags (<code>, <a>) flow inside their paragraph; blocks are blank-line apart.
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", root.get_text(" "))]
    text = "\n\n".join(p for p in paragraphs if p)
    text = text.replace(f"\n\n{_HEADING_MARK}", f"\n{_HEADING_MARK}")
    text = re.sub(f"({_HEADING_MARK}[^\n]*)\n\n", "\\1\n", text)
    first_heading: str | None = None
    # re.split alternates [text, heading, text, heading, ...]; rebuild pairs properly.
    parts = re.split(f"\n{_HEADING_MARK}(.*)\n", "\n" + text)
    sections = [Section(parts[0].strip(), None)]
    for heading_text, body in zip(parts[1::2], parts[2::2], strict=False):
        first_heading = first_heading or heading_text.strip()
        sections.append(Section(body.strip(), heading_text.strip()))
    return page_title or first_heading, sections


# --- pdf -------------------------------------------------------------------------------


def _load_pdf(data: bytes, warnings: list[str]) -> tuple[str | None, list[Section]]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError("the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LoadError(f"corrupt or unreadable PDF: {exc}") from exc
    if pages and not any(p.strip() for p in pages):
        warnings.append("the PDF has no extractable text (scanned images?)")
    return meta_title, [Section(text, None, page=i) for i, text in enumerate(pages, start=1)]


# --- docx ------------------------------------------------------------------------------


def _load_docx(data: bytes, warnings: list[str]) -> tuple[str | None, list[Section]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise LoadError(f"corrupt DOCX (not a zip archive): {exc}") from exc
    if inflated > MAX_DOCX_INFLATED_BYTES:
        raise LoadError(f"the DOCX would inflate to {inflated / 1e6:.0f} MB: refused (zip bomb?)")
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise LoadError(f"corrupt DOCX: {exc}") from exc
    sections: list[Section] = []
    current: str | None = None
    title: str | None = document.core_properties.title or None
    lines: list[str] = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = paragraph.text.strip()
        if style.startswith(("Heading", "Title")) and text:
            sections.append(Section("\n\n".join(lines), current))
            lines, current = [], text
            title = title or text
        elif text:
            lines.append(text)
    sections.append(Section("\n\n".join(lines), current))
    return title, sections


_LOADERS: dict[str, Callable[[bytes, list[str]], tuple[str | None, list[Section]]]] = {
    ".txt": _load_txt,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
    ".docx": _load_docx,
}
