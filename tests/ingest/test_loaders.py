"""Loaders: each file type becomes titled sections; bad input becomes a clear failure."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from ingest.loaders import (
    Document,
    LoadError,
    LoadFailure,
    UnsupportedType,
    load_bytes,
    load_path,
    try_load_path,
)
from tests.ingest.conftest import make_docx, make_pdf


def titles(doc: Document) -> list[str | None]:
    return [s.title for s in doc.sections]


def test_txt_keeps_the_text_and_hashes_the_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"First line.\n\nSecond paragraph.\n")
    doc = load_path(path, doc_id="notes")
    assert doc.doc_id == "notes" and doc.title == "notes"
    assert doc.sections[0].text.startswith("First line.")
    assert doc.doc_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc.mtime == path.stat().st_mtime and doc.warnings == []


def test_markdown_headings_become_sections_and_front_matter_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "---\nsecret: front-matter-value\n---\nIntro text.\n\n# Guide\n\nOverview.\n\n"
        "## Install\n\nRun it.\n\n```sh\n# not a heading\necho hi\n```\n\n## Use\n\nClick.\n"
    )
    doc = load_path(path)
    assert doc.title == "Guide"
    assert titles(doc) == [None, "Guide", "Install", "Use"]
    assert "front-matter-value" not in doc.text
    install = doc.sections[2].text
    assert "# not a heading" in install and "echo hi" in install


def test_html_keeps_main_text_only_and_splits_on_headings(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>The Page</title><style>.x{}</style></head><body>"
        "<nav>Home | Docs</nav><header>Site header</header>"
        "<main><h1>Welcome</h1><p>Hello <b>bold</b> world.</p><script>track()</script>"
        "<h2>Details</h2><ul><li>one</li><li>two</li></ul><p>Line<br>break</p></main>"
        "<aside>Related links</aside><footer>Copyright</footer></body></html>"
    )
    doc = load_path(path)
    assert doc.title == "The Page"
    assert titles(doc) == ["Welcome", "Details"]
    assert doc.sections[0].text == "Hello bold world."
    assert doc.sections[1].text == "one\n\ntwo\n\nLine\nbreak"
    for junk in ("Home", "Site header", "track", "Related", "Copyright", ".x"):
        assert junk not in doc.text


def test_html_title_falls_back_to_h1(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    path.write_text("<body><h1>Only Heading</h1><p>Body.</p></body>")
    assert load_path(path).title == "Only Heading"


def test_pdf_keeps_one_based_page_numbers(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "r.pdf", [["Page one text."], ["Page two: Zanzibar."]], "Report")
    doc = load_path(path)
    assert doc.title == "Report"
    assert [s.page for s in doc.sections] == [1, 2]
    assert "Zanzibar" in doc.sections[1].text and "Zanzibar" not in doc.sections[0].text


def test_docx_headings_become_sections(tmp_path: Path) -> None:
    path = make_docx(
        tmp_path / "d.docx",
        [("p", "Preamble."), ("h1", "Setup"), ("p", "Plug it in."), ("h2", "Power"),
         ("p", "Uses 12 V."), ("p", "Draws 9 W.")],
    )  # fmt: skip
    doc = load_path(path)
    assert titles(doc) == [None, "Setup", "Power"]
    assert doc.title == "Setup"
    assert doc.sections[2].text == "Uses 12 V.\n\nDraws 9 W."


def test_empty_file_loads_as_an_empty_document(tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "blank.txt").write_bytes(b"  \n\n \t\n")
    assert load_path(tmp_path / "empty.md").is_empty
    assert load_path(tmp_path / "blank.txt").is_empty


def test_non_utf8_text_is_decoded_with_replacement_and_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Café crème in Tromsø.".encode("latin-1"))
    doc = load_path(path)
    assert doc.sections[0].text.startswith("Caf\ufffd cr\ufffdme")
    assert len(doc.warnings) == 1 and "not valid UTF-8" in doc.warnings[0]


def test_bom_encodings_are_understood(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("\ufeffBOM text".encode())
    (tmp_path / "b.txt").write_bytes("wide text ø".encode("utf-16"))
    assert load_path(tmp_path / "a.txt").text == "BOM text"
    assert load_path(tmp_path / "b.txt").text == "wide text ø"


@pytest.mark.parametrize("data", [b"ELF\x00\x01\x02" * 100, bytes(range(1, 32)) * 50])
def test_binary_content_behind_a_text_extension_fails(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "program.txt"
    path.write_bytes(data)
    failure = try_load_path(path)
    assert isinstance(failure, LoadFailure) and "looks binary" in failure.reason
    assert failure.path == str(path)


def test_oversize_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"word " * 1000)
    with pytest.raises(LoadError, match=r"too large: .* over the 0.0 MiB limit"):
        load_path(path, max_bytes=1024)
    assert load_path(path, max_bytes=10_000).sections


def test_corrupt_pdf_and_docx_fail_with_a_reason(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", [["Some text."]]).read_bytes()
    (tmp_path / "truncated.pdf").write_bytes(good[: len(good) // 3])
    (tmp_path / "garbage.pdf").write_bytes(b"this is not a pdf at all")
    (tmp_path / "bad.docx").write_bytes(b"PK\x03\x04 definitely not a zip")
    (tmp_path / "nozip.docx").write_bytes(b"plain text renamed to docx")
    for name in ("truncated.pdf", "garbage.pdf", "bad.docx", "nozip.docx"):
        result = try_load_path(tmp_path / name)
        assert isinstance(result, LoadFailure), name
        assert ("PDF" in result.reason) or ("DOCX" in result.reason), result.reason


def test_docx_zip_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    real = make_docx(tmp_path / "real.docx", [("p", "hi")]).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(real)) as src, zipfile.ZipFile(buffer, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        # 40 MB of zeros deflates to ~40 KB: a 1000x ratio no real document has.
        bomb_info = zipfile.ZipInfo("word/media/bomb.bin")
        bomb_info.compress_type = zipfile.ZIP_DEFLATED
        with out.open(bomb_info, "w", force_zip64=True) as f:
            block = b"\x00" * (1 << 20)
            for _ in range(40):
                f.write(block)
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(buffer.getvalue())
    assert bomb.stat().st_size < 2_000_000
    result = try_load_path(bomb)
    assert isinstance(result, LoadFailure) and "zip bomb" in result.reason


def test_unsupported_types_are_their_own_error(tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(UnsupportedType):
        load_path(tmp_path / "image.png")
    with pytest.raises(UnsupportedType):
        load_bytes(b"x", "archive.zip", doc_id="x")


def test_missing_file_is_a_failure_value(tmp_path: Path) -> None:
    result = try_load_path(tmp_path / "gone.md")
    assert isinstance(result, LoadFailure) and "cannot read" in result.reason


def test_bytes_and_path_loading_agree(tmp_path: Path) -> None:
    path = tmp_path / "same.md"
    path.write_text("# T\n\nBody text.\n")
    from_path = load_path(path, doc_id="same.md")
    from_bytes = load_bytes(path.read_bytes(), "same.md", doc_id="same.md")
    assert from_path.sections == from_bytes.sections
    assert from_path.doc_hash == from_bytes.doc_hash
