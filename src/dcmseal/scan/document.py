"""An Encapsulated Document (PS3.3 C.24.2) judged: do its bytes match its MIME type, does a PDF carry active content."""

from __future__ import annotations

import re
import zlib

from dcmseal.encapsulated.kinds import DocumentKind, detect_kind
from dcmseal.errors import InputError
from dcmseal.scan.report import Finding, Verdict
from dcmseal.scan.signatures import Family, identify

__all__ = ["MAX_DOCUMENT_BYTES", "check_document", "pdf_active_names"]

#: Documents larger than this are not read for the content checks (a PDF report is a few MB).
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
#: Compressed PDF streams are inflated up to this much in total, to look for names hidden in object streams.
_MAX_INFLATED_BYTES = 64 * 1024 * 1024

#: PDF names that make a document act on its own (ISO 32000-1 §12.6 actions, §7.11.4 embedded files).
_ACTIVE = {
    "JavaScript": ("pdf.javascript", Verdict.MALICIOUS, "JavaScript"),
    "JS": ("pdf.javascript", Verdict.MALICIOUS, "JavaScript"),
    "Launch": ("pdf.launch", Verdict.MALICIOUS, "a Launch action (runs a program)"),
    "EmbeddedFile": ("pdf.embedded-file", Verdict.SUSPICIOUS, "an embedded file"),
    "EmbeddedFiles": ("pdf.embedded-file", Verdict.SUSPICIOUS, "an embedded file"),
    "OpenAction": ("pdf.open-action", Verdict.SUSPICIOUS, "an OpenAction (acts when opened)"),
}
# A PDF name: "/" then regular characters; "#xx" escapes any byte, so /J#61vaScript is /JavaScript (§7.3.5).
_NAME = re.compile(rb"/([^\x00\t\n\x0c\r ()<>\[\]{}/%]+)")
_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")
_STREAM = re.compile(rb"stream\r?\n")


def _decode_name(raw: bytes) -> str:
    return _HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw).decode("latin-1")


def _names_in(data: bytes, found: dict[str, int], base: int) -> None:
    for match in _NAME.finditer(data):
        raw = match.group(1)
        name = _decode_name(raw) if b"#" in raw else raw.decode("latin-1")
        if name in _ACTIVE and name not in found:
            found[name] = base + match.start()


def pdf_active_names(pdf: bytes) -> dict[str, int]:
    """The active-content names a PDF uses, with the offset of their first use (-1: in a compressed stream).

    Names are decoded (``#xx`` escapes) and looked for in the file and inside every stream that inflates
    (object streams, PDF 1.5, can hold dictionaries with ``/JavaScript``).
    """
    found: dict[str, int] = {}
    _names_in(pdf, found, 0)
    budget = _MAX_INFLATED_BYTES
    for match in _STREAM.finditer(pdf):
        if budget <= 0:
            break
        begin = match.end()
        end = pdf.find(b"endstream", begin)
        if end < 0:
            break
        inflater = zlib.decompressobj()
        try:
            inflated = inflater.decompress(pdf[begin:end], budget)
        except zlib.error:
            continue
        budget -= len(inflated)
        nested: dict[str, int] = {}
        _names_in(inflated, nested, 0)
        for name in nested:
            found.setdefault(name, -1)
    return found


def check_document(
    data: bytes, *, mime: str | None, offset: int, declared_length: int | None = None
) -> list[Finding]:
    """Findings on the value of Encapsulated Document (0042,0011) at file offset ``offset``.

    Parameters
    ----------
    data
        The value's bytes (padded to even length; ``declared_length`` from (0042,0015) trims the pad).
    mime
        MIME Type of Encapsulated Document (0042,0012), as stored.
    """
    if declared_length is not None and 0 < declared_length <= len(data):
        data = data[:declared_length]
    findings: list[Finding] = []
    signature = identify(data[:4096], text=False)
    if signature is not None and signature.family in (Family.EXECUTABLE, Family.SCRIPT):
        return [
            Finding(
                "document.executable",
                f"the Encapsulated Document is a {signature.description}",
                Verdict.MALICIOUS,
                offset,
            )
        ]
    try:
        kind: DocumentKind | None = detect_kind(data)
    except InputError:
        kind = None
    stated = (mime or "").strip().lower()
    if kind is None:
        findings.append(
            Finding(
                "document.unknown",
                f"the Encapsulated Document ({stated or 'no MIME type'}) is none of PDF, CDA, STL, OBJ, MTL",
                Verdict.SUSPICIOUS,
                offset,
            )
        )
    elif kind.mime_type.lower() != stated:
        findings.append(
            Finding(
                "document.mime-mismatch",
                f"the Encapsulated Document's bytes are {kind.value.upper()}, its MIME type says {stated or 'nothing'}",
                Verdict.SUSPICIOUS,
                offset,
            )
        )
    if kind is DocumentKind.PDF or data.startswith(b"%PDF-"):
        for name, at in sorted(pdf_active_names(data).items(), key=lambda item: item[1]):
            code, severity, what = _ACTIVE[name]
            where = f"at byte {at} of the document" if at >= 0 else "inside a compressed stream"
            if any(f.code == code for f in findings):
                continue
            findings.append(
                Finding(
                    code,
                    f"the encapsulated PDF holds {what} (/{name} {where})",
                    severity,
                    offset + max(at, 0),
                )
            )
    return findings
