"""Write a safe copy of a DICOM file: zeroed preamble, hidden payload elements and trailing data cut out.

The copy is made of byte ranges of the original (nothing is re-encoded, so nothing else changes): a zero
(or, with ``keep_tiff``, the original TIFF) preamble, ``DICM`` and the File Meta group as they are, the data
set without the removable payload elements, and nothing after the data set's end. Before a byte is
written, that planned output is scanned as if it were on disk; only a CLEAN result is written (atomically).
What cannot be made safe this way (a data set that does not parse, a payload nested in a sequence or in
Pixel Data, a PDF with active content, which we refuse rather than rewrite) is refused, and the caller
quarantines it. The original is never modified.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from dcmseal.errors import InputError, MissingInputError
from dcmseal.fsutil import CHUNK_SIZE_BYTES, atomic_write
from dcmseal.part10.fileformat import PREAMBLE_BYTES, ZERO_PREAMBLE
from dcmseal.scan.report import FileReport, Verdict
from dcmseal.scan.scanner import HEAD_BYTES, ScanFacts, scan_file_facts, scan_source
from dcmseal.scan.walker import Element

__all__ = ["SanitizeResult", "sanitize_file"]

logger = logging.getLogger(__name__)

_PREAMBLE_WORDS = {
    "pe": "PE executable header",
    "mz": "DOS MZ header",
    "elf": "ELF executable header",
    "macho": "Mach-O header",
    "script": "script",
    "zip": "ZIP header",
    "7z": "7-Zip header",
    "rar": "RAR header",
    "cab": "Cabinet header",
    "ole": "OLE2 header",
    "pdf": "PDF header",
    "html": "HTML/script markup",
    "json": "JSON document",
    "tiff": "TIFF header",
    "tiff-ifd-outside": "TIFF header",
    "dicm-zero": "'DICM' + zeros",
    "nonzero": "stray non-zero bytes",
}


@dataclass(frozen=True, slots=True)
class SanitizeResult:
    """What sanitizing one file did, or why it could not."""

    source: str
    output: Path | None  # None when the file could not be made safe (then quarantine it)
    changes: tuple[str, ...]  # every change made
    report: FileReport  # the scan of the ORIGINAL bytes
    refused: str | None = None  # why it could not be made safe

    @property
    def status(self) -> str:
        if self.output is None:
            return "refused"
        return "sanitized" if self.changes else "copied"

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "status": self.status,
            "output": str(self.output) if self.output is not None else None,
            "changes": list(self.changes),
            "refused": self.refused,
            "verdict": self.report.verdict.value,
            "report": self.report.to_json(),
        }


class _Composite:
    """The planned output as a readable byte source: literal bytes and ranges of the original file."""

    def __init__(self, fd: int, segments: list[tuple[int, bytes | tuple[int, int]]]) -> None:
        self.fd = fd
        self.segments: list[tuple[int, int, bytes | tuple[int, int]]] = []
        out = 0
        for _, piece in segments:
            length = len(piece) if isinstance(piece, bytes) else piece[1] - piece[0]
            if length > 0:
                self.segments.append((out, length, piece))
                out += length
        self.size = out

    def read_at(self, offset: int, n: int) -> bytes:
        parts: list[bytes] = []
        end = min(offset + n, self.size)
        for start, length, piece in self.segments:
            if start + length <= offset or start >= end:
                continue
            lo, hi = max(offset, start), min(end, start + length)
            if isinstance(piece, bytes):
                parts.append(piece[lo - start : hi - start])
            else:
                parts.append(os.pread(self.fd, hi - lo, piece[0] + lo - start))
        return b"".join(parts)

    def chunks(self) -> list[tuple[bytes | tuple[int, int], int]]:
        return [(piece, length) for _, length, piece in self.segments]


def _refuse(src: Path, report: FileReport, why: str) -> SanitizeResult:
    logger.warning("%s: not sanitized: %s", src, why)
    return SanitizeResult(str(src), None, (), report, why)


def _plan(
    report: FileReport, facts: ScanFacts, head: bytes, keep_tiff: bool
) -> tuple[list[tuple[int, bytes | tuple[int, int]]], list[str]] | str:
    """The output's segments and the changes, or why no safe output can be cut from this file."""
    if report.kind == "secure":
        return "a Secure DICOM File: open it first (dcmseal open), then sanitize the plain files"
    if report.kind != "dicom":
        return "not a DICOM PS3.10 file (no 'DICM' at offset 128)"
    meta, body = facts.meta, facts.body
    if meta is None or body is None or not meta.ok:
        return "the File Meta group does not parse"
    if meta.payloads:
        return "a payload in the File Meta Private Information (0002,0102)"
    if body.malformed:
        first = next(
            (f for f in report.findings if f.code.startswith("body.") and f.severity is not Verdict.CLEAN),
            None,
        )
        return f"the data set does not parse to its end ({first.message if first else 'malformed'})"
    active = [
        f
        for f in report.findings
        if f.code.startswith(("pdf.", "document.")) and f.severity is not Verdict.CLEAN
    ]
    if active:
        return f"the Encapsulated Document cannot be made safe without rewriting it ({active[0].message})"
    changes: list[str] = []
    preamble = head[:PREAMBLE_BYTES]
    codes = [f.code.removeprefix("preamble.") for f in facts.preamble_findings]
    tiff_ok = (
        bool(codes)
        and codes[0] == "tiff"
        and all(f.severity is Verdict.CLEAN for f in facts.preamble_findings)
    )
    if keep_tiff and tiff_ok:
        new_preamble = preamble  # PS3.10 §7.5: a recognised dual-format header may stay
    else:
        new_preamble = ZERO_PREAMBLE
        if preamble != new_preamble:
            changes.append(
                f"preamble zeroed ({_PREAMBLE_WORDS.get(codes[0], codes[0]) if codes else 'non-zero'})"
            )
    segments: list[tuple[int, bytes | tuple[int, int]]] = [
        (0, new_preamble),
        (PREAMBLE_BYTES, (PREAMBLE_BYTES, meta.end)),
    ]
    cut: list[Element] = []
    for element in body.payloads:
        if not element.removable:
            where = (
                "in a deflated data set" if body.deflated else "nested in a sequence, or a standard element"
            )
            return f"the payload in {element.label} cannot be cut out ({where})"
        cut.append(element)
    cursor = meta.end
    end = body.dataset_end
    for element in sorted(cut, key=lambda e: e.start):
        segments.append((cursor, (cursor, element.start)))
        changes.append(
            f"removed {element.label} ({element.end - element.start} bytes at offset {element.start}: {element.reason})"
        )
        cursor = element.end
    segments.append((cursor, (cursor, end)))
    if end < facts.size:
        changes.append(f"removed {facts.size - end} bytes after the end of the data set (offset {end})")
    return segments, changes


def sanitize_file(
    src: Path, dst: Path, *, keep_tiff: bool = False, overwrite: bool = False
) -> SanitizeResult:
    """Write a copy of ``src`` to ``dst`` that rescans CLEAN, or nothing (then ``output`` is None).

    Parameters
    ----------
    keep_tiff
        Keep a TIFF/BigTIFF dual-personality preamble that has nothing else in it (PS3.10 §7.5); by
        default every preamble is zeroed.
    overwrite
        Replace an existing ``dst``.

    Raises
    ------
    InputError
        ``src`` cannot be read, or ``dst`` exists and ``overwrite`` is false.
    """
    src, dst = Path(src), Path(dst)
    try:
        report, facts = scan_file_facts(src, name=str(src), allow_tiff=True)
    except FileNotFoundError:
        raise MissingInputError(src) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=src) from exc
    if not overwrite and dst.exists():
        raise InputError("already exists (use --force to overwrite)", path=dst)
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        head = os.pread(fd, HEAD_BYTES, 0)
        planned = _plan(report, facts, head, keep_tiff)
        if isinstance(planned, str):
            return _refuse(src, report, planned)
        segments, changes = planned
        output = _Composite(fd, segments)
        # Scan the output before it exists: only a clean plan is written.
        rescan = scan_source(
            output.read_at(0, HEAD_BYTES), output.size, output.read_at, name=str(dst), allow_tiff=True
        )
        if rescan.verdict is not Verdict.CLEAN:
            left = "; ".join(f.message for f in rescan.findings if f.severity is not Verdict.CLEAN)
            return _refuse(src, report, f"still not clean after the changes: {left}")
        try:
            with atomic_write(dst, overwrite=overwrite) as out:
                for piece, _length in output.chunks():
                    if isinstance(piece, bytes):
                        out.write(piece)
                        continue
                    at, stop = piece
                    while at < stop:
                        block = os.pread(fd, min(CHUNK_SIZE_BYTES, stop - at), at)
                        if not block:
                            raise InputError(f"changed while being read (ends at {at})", path=src)
                        out.write(block)
                        at += len(block)
        except FileExistsError:
            raise InputError("already exists (use --force to overwrite)", path=dst) from None
    finally:
        os.close(fd)
    for change in changes:
        logger.warning("%s: %s", src, change)
    return SanitizeResult(str(src), dst, tuple(changes), report, None)
