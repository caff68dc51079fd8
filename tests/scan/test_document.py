"""Encapsulated Documents: bytes against MIME type, and PDF active content (also hex-escaped and compressed)."""

from __future__ import annotations

import zlib

from dcmseal.scan import Verdict, scan_bytes
from dcmseal.scan.document import pdf_active_names
from tests.scan.corpus import PDF_CLEAN, PDF_ESCAPED, PDF_JAVASCRIPT, encapsulated_pdf, pe_bytes


def test_clean_encapsulated_pdf() -> None:
    report = scan_bytes(encapsulated_pdf(PDF_CLEAN), name="doc")
    assert report.verdict is Verdict.CLEAN, report.findings
    assert report.findings == ()


def test_pdf_with_javascript_is_malicious() -> None:
    report = scan_bytes(encapsulated_pdf(PDF_JAVASCRIPT), name="doc")
    assert report.verdict is Verdict.MALICIOUS
    assert set(report.codes()) == {"pdf.javascript", "pdf.open-action"}


def test_hex_escaped_names_are_decoded() -> None:
    assert set(pdf_active_names(PDF_ESCAPED)) == {"JavaScript", "JS"}
    report = scan_bytes(encapsulated_pdf(PDF_ESCAPED), name="doc")
    assert report.codes() == ("pdf.javascript",)


def test_javascript_inside_a_compressed_object_stream() -> None:
    hidden = zlib.compress(b"3 0 obj << /S /Launch /F (cmd.exe) >> endobj")
    pdf = PDF_CLEAN.replace(
        b"trailer",
        b"4 0 obj << /Type /ObjStm /Filter /FlateDecode >>\nstream\n"
        + hidden
        + b"\nendstream\nendobj\ntrailer",
    )
    report = scan_bytes(encapsulated_pdf(pdf), name="doc")
    assert report.codes() == ("pdf.launch",)
    assert "compressed stream" in report.findings[0].message


def test_launch_and_embedded_files() -> None:
    pdf = PDF_CLEAN.replace(
        b"/Type /Catalog", b"/Type /Catalog /Names << /EmbeddedFiles 5 0 R >> /Launch 6 0 R"
    )
    codes = set(scan_bytes(encapsulated_pdf(pdf), name="doc").codes())
    assert codes == {"pdf.launch", "pdf.embedded-file"}


def test_mime_mismatch_is_suspicious() -> None:
    report = scan_bytes(encapsulated_pdf(PDF_CLEAN, mime="model/stl"), name="doc")
    assert report.codes() == ("document.mime-mismatch",)
    assert report.verdict is Verdict.SUSPICIOUS


def test_unknown_document_bytes() -> None:
    report = scan_bytes(encapsulated_pdf(b"just some bytes, not a document"), name="doc")
    assert report.codes() == ("document.unknown",)


def test_executable_posing_as_a_document_is_malicious() -> None:
    report = scan_bytes(encapsulated_pdf(pe_bytes(total=512)), name="doc")
    assert report.verdict is Verdict.MALICIOUS
    assert "document.executable" in report.codes()
