"""PDF: one section per page with its 1-based page number, text via pypdf."""

from __future__ import annotations

import io
import logging

from ingest.loaders._errors import LoadError
from ingest.loaders._types import Loaded, Section


def load_pdf(data: bytes, warnings: list[str]) -> Loaded:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    # pypdf logs every recoverable oddity of a malformed file; the failure record is enough.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise LoadError("corrupt PDF: no %PDF header")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password; those open fine.
            try:
                opened = reader.decrypt("")
            except Exception as exc:  # pypdf raises several types here
                raise LoadError(f"the PDF is encrypted and cannot be opened: {exc}") from exc
            if not opened:
                raise LoadError("the PDF is password-protected")
        sections: list[Section] = []
        for number, page in enumerate(reader.pages, start=1):
            try:
                text = page.extract_text() or ""
            except (PyPdfError, ValueError, KeyError, TypeError) as exc:
                warnings.append(f"page {number}: text not extractable ({exc})")
                text = ""
            sections.append(Section(text, None, page=number))
        meta_title = reader.metadata.title if reader.metadata else None
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise LoadError(f"corrupt or unreadable PDF: {exc}") from exc
    if sections and not any(s.text.strip() for s in sections):
        warnings.append("the PDF has no extractable text (scanned images?)")
    return (str(meta_title).strip() or None) if meta_title else None, sections
