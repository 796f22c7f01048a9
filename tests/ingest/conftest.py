"""Real components for the ingest tests: the bundled embedder (once per session), stores.

Pipeline tests run on both embedded backends: ``edge`` (Qdrant Edge, the default) and
``local`` (qdrant-client's local mode).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from retrieval.embedder import Embedder  # after the offline switch
from retrieval.factory import open_store
from retrieval.sparse import SparseEncoder
from retrieval.types import VectorStore


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder.load()


@pytest.fixture(scope="session")
def sparse() -> SparseEncoder:
    return SparseEncoder()


@pytest.fixture(params=["edge", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    opened = open_store(request.param, path=str(tmp_path / f"store-{request.param}"))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def edge_store(tmp_path: Path) -> Iterator[VectorStore]:
    opened = open_store("edge", path=str(tmp_path / "store-edge"))
    try:
        yield opened
    finally:
        opened.close()


def make_pdf(path: Path, pages: list[list[str]], title: str | None = None) -> Path:
    """A text PDF, one list of lines per page (reportlab)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    if title:
        pdf.setTitle(title)
    for lines in pages:
        y = 780
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return path


def make_docx(path: Path, blocks: list[tuple[str, str]]) -> Path:
    """A .docx of ("h1"/"h2"/"p", text) blocks (python-docx)."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1:]))
        else:
            document.add_paragraph(text)
    document.save(str(path))
    return path
