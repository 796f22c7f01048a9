"""HTML: the main text only, cut into sections at headings.

Navigation, headers, footers, asides, scripts and styles are dropped; when the page has a
``<main>`` (or ``<article>``) only that is read. Block elements end paragraphs (a blank line),
inline elements flow inside them, ``<pre>`` keeps its line breaks.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from ingest.loaders._text import decode_text
from ingest.loaders._types import Loaded, Section

_NOT_CONTENT = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form",
                "template", "svg", "iframe", "button", "select")  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = {"p", "div", "li", "ul", "ol", "dl", "dd", "dt", "pre", "blockquote", "table",
           "tr", "section", "article", "main", "figure", "figcaption", "hr", "address",
           "details", "summary"}  # fmt: skip
_CELLS = {"td", "th"}
_SKIP_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


class _Builder:
    """Accumulates paragraphs of the current section while the tree is walked in order."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.title: str | None = None
        self.paragraphs: list[str] = []
        self.line: list[str] = []

    def text(self, s: str) -> None:
        self.line.append(s)

    def end_paragraph(self) -> None:
        lines = (" ".join(line.split()) for line in "".join(self.line).split("\n"))
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            self.paragraphs.append(paragraph)
        self.line = []

    def heading(self, title: str) -> None:
        self.end_paragraph()
        self.sections.append(Section("\n\n".join(self.paragraphs), self.title))
        self.paragraphs, self.title = [], title

    def finish(self) -> list[Section]:
        self.heading("")
        return self.sections


def _walk(node: Tag, out: _Builder, pre: bool = False) -> None:
    for child in node.children:
        if isinstance(child, _SKIP_STRINGS):
            continue
        if isinstance(child, NavigableString):
            out.text(str(child) if pre else _SPACES.sub(" ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower()
        if name in _HEADINGS:
            out.heading(" ".join(child.get_text(" ").split()))
        elif name == "br":
            out.text("\n")
        elif name == "pre":
            out.end_paragraph()
            _walk(child, out, pre=True)
            out.end_paragraph()
        elif name in _BLOCKS:
            out.end_paragraph()
            _walk(child, out, pre)
            out.end_paragraph()
        elif name in _CELLS:
            _walk(child, out, pre)
            out.text(" | ")
        else:
            _walk(child, out, pre)


def load_html(data: bytes, warnings: list[str]) -> Loaded:
    soup = BeautifulSoup(decode_text(data, warnings), "html.parser")
    for tag in soup(_NOT_CONTENT):
        tag.decompose()
    page_title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    out = _Builder()
    if isinstance(root, Tag):
        _walk(root, out)
    sections = [Section(s.text, s.title or None) for s in out.finish()]
    first_heading = next((s.title for s in sections if s.title), None)
    h1 = root.find("h1") if isinstance(root, Tag) else None
    title = page_title or (" ".join(h1.get_text(" ").split()) if h1 else None) or first_heading
    return title, sections
