"""One file judged: preamble, File Meta, element headers, payloads, trailing data, ZIP directory, documents.

The hot path opens the file once, reads its first 16 KiB, and reads more (``os.pread``) only where the data set
continues past them: element headers are followed by length, values are skipped, and only the first bytes of
the values that can hide a payload are looked at. Small files cost one ``open``, one ``read``, one ``close``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dcmseal.part10.fileformat import HEADER_BYTES
from dcmseal.part10.secure import is_secure_head
from dcmseal.reader.detect import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    detect_dataset_encoding,
)
from dcmseal.scan.document import MAX_DOCUMENT_BYTES, check_document
from dcmseal.scan.layout import LayoutCache
from dcmseal.scan.meta import MetaResult, read_meta
from dcmseal.scan.preamble import check_preamble
from dcmseal.scan.report import FileReport, Finding, Verdict
from dcmseal.scan.signatures import EOCD_MAGIC, EOCD_SEARCH_BYTES, Family, identify
from dcmseal.scan.walker import BodyResult, walk_dataset

__all__ = ["HEAD_BYTES", "ScanFacts", "scan_bytes", "scan_fd", "scan_file", "scan_file_facts", "scan_source"]

#: The first read of every file: the preamble, the File Meta group and the header of most data sets.
HEAD_BYTES = 16 * 1024

ReadAt = Callable[[int, int], bytes]


@dataclass(slots=True)
class ScanFacts:
    """What the sanitizer needs beyond the report: where the data set ends, what to cut out."""

    size: int
    meta: MetaResult | None = None
    body: BodyResult | None = None
    eocd_at: int | None = None
    preamble_findings: list[Finding] = field(default_factory=list)


def _find_eocd(tail: bytes, tail_at: int, size: int, read_at: ReadAt | None, head: bytes) -> int | None:
    """The offset of a ZIP end of central directory record whose central directory is really there."""
    i = tail.rfind(EOCD_MAGIC)
    while i >= 0:
        record = tail[i : i + 22]
        if len(record) == 22:
            entries, cd_size, _cd_offset, comment = struct.unpack_from("<HIIH", record, 10)
            at = tail_at + i
            if entries and at + 22 + comment <= size and 46 <= cd_size <= at:
                start = at - cd_size
                if start + 4 <= len(head):
                    first = head[start : start + 4]
                elif read_at is not None:
                    first = read_at(start, 4)
                else:
                    first = b""
                if first == b"PK\x01\x02":
                    return at
        i = tail.rfind(EOCD_MAGIC, 0, i)
    return None


def scan_source(
    head: bytes,
    size: int,
    read_at: ReadAt | None,
    *,
    name: str,
    allow_tiff: bool = True,
    facts: ScanFacts | None = None,
    layouts: LayoutCache | None = None,
) -> FileReport:
    """Scan a file given its first bytes, its size and a way to read the rest (the core of every scan).

    ``head`` starts at offset 0 and is the whole file when ``read_at`` is None. ``facts``, when given, is
    filled with what the sanitizer needs. ``layouts`` lets files of one series share their walk.
    """
    if len(head) < HEADER_BYTES or head[128:132] != b"DICM":
        encoding = None if is_secure_head(head) else detect_dataset_encoding(head, size)
        if encoding is not None:
            return _bare_dataset(head, size, read_at, name=name, transfer_syntax=encoding)
        return _not_part10(head, name)
    if read_at is None:  # the whole file is in memory

        def read_at(at: int, n: int) -> bytes:
            return head[at : at + n]

    if layouts is not None and facts is None:
        known = layouts.known_file(head, size, read_at)
        if known is not None:
            # Same structure as a file already walked clean: only the value checks and the whole-file
            # check (a ZIP directory can sit in any value) are left to do.
            uid, findings = known
            eocd = _eocd_finding(head, size, read_at)
            if eocd is not None:
                findings.append(eocd)
            if not findings:
                return FileReport(name, Verdict.CLEAN, (), "dicom", uid)
            return FileReport.of(name, "dicom", findings, uid)
    findings = check_preamble(head, size=size, allow_tiff=allow_tiff, read_at=read_at)
    if facts is not None:
        facts.preamble_findings = list(findings)
    meta = layouts.meta(head, size) if layouts is not None and facts is None else None
    if meta is None:
        meta = read_meta(head, size, read_at)
        if layouts is not None:
            layouts.remember_meta(head, size, meta)
    findings.extend(meta.findings)
    body: BodyResult | None = None
    if meta.ok:
        if layouts is not None and facts is None:
            body = layouts.walk(
                head, start=meta.end, size=size, read_at=read_at, transfer_syntax=meta.transfer_syntax
            )
            if not findings and not body.findings and layouts.last_walk_hit:
                layouts.learn_file(head, size, meta)
        else:
            body = walk_dataset(
                head, start=meta.end, size=size, read_at=read_at, transfer_syntax=meta.transfer_syntax
            )
        findings.extend(body.findings)
    eocd_finding = _eocd_finding(head, size, read_at)
    if eocd_finding is not None:
        findings.append(eocd_finding)
    if body is not None and body.document is not None:
        findings.extend(_document_findings(body, head, read_at))
    if facts is not None:
        facts.size, facts.meta, facts.body = size, meta, body
        facts.eocd_at = eocd_finding.offset if eocd_finding is not None else None
    if not findings:
        return FileReport(name, Verdict.CLEAN, (), "dicom", meta.sop_instance_uid)
    return FileReport.of(name, "dicom", findings, meta.sop_instance_uid)


def _eocd_finding(head: bytes, size: int, read_at: ReadAt) -> Finding | None:
    """A ZIP end of central directory in the file's last 64 KiB (ZIP readers find archives from their end).

    standards.md §5.5. When the whole file is in ``head``, the search runs over the bytes already read
    (``bytes.rfind``, C; most files hold no candidate and the loop in :func:`_find_eocd` never starts).
    """
    tail_at = size - EOCD_SEARCH_BYTES if size > EOCD_SEARCH_BYTES else 0
    if size <= len(head):
        if head.rfind(EOCD_MAGIC, tail_at, size) < 0:
            return None
        tail = head[tail_at:size]
    else:
        tail = read_at(tail_at, size - tail_at)
        if tail.rfind(EOCD_MAGIC) < 0:
            return None
    eocd = _find_eocd(tail, tail_at, size, read_at, head)
    if eocd is None:
        return None
    return Finding(
        "body.zip-eocd",
        f"a ZIP end of central directory at offset {eocd}: ZIP readers open this file as an archive",
        Verdict.MALICIOUS,
        eocd,
    )


def _document_findings(body: BodyResult, head: bytes, read_at: ReadAt | None) -> list[Finding]:
    assert body.document is not None
    at, length = body.document
    if length > MAX_DOCUMENT_BYTES:
        return [
            Finding(
                "document.too-large",
                f"the Encapsulated Document ({length} bytes) was not read",
                Verdict.SUSPICIOUS,
                at,
            )
        ]
    if body.document_in_memory is not None:
        data = body.document_in_memory
    elif at + length <= len(head):
        data = head[at : at + length]
    elif read_at is not None:
        data = read_at(at, length)
    else:
        return []
    mime_values = body.values.get(0x00420012)
    mime = mime_values[0].rstrip(b"\x00 ").decode("ascii", "replace") if mime_values else None
    declared: int | None = None
    length_values = body.values.get(0x00420015)
    if length_values and len(length_values[0]) == 4:
        declared = int.from_bytes(length_values[0], "little")
    return check_document(data, mime=mime, offset=at, declared_length=declared)


_SOP_INSTANCE_UID = 0x00080018


def _bare_dataset(
    head: bytes, size: int, read_at: ReadAt | None, *, name: str, transfer_syntax: str
) -> FileReport:
    """A data set without File Meta (old discs): walked from byte 0 in the encoding its first elements show."""
    if read_at is None:

        def read_at(at: int, n: int) -> bytes:
            return head[at : at + n]

    body = walk_dataset(
        head,
        start=0,
        size=size,
        read_at=read_at,
        transfer_syntax=transfer_syntax,
        collect=frozenset({_SOP_INSTANCE_UID}),
    )
    findings = [
        Finding(
            "file.no-meta",
            f"a data set without File Meta Information ({_TRANSFER_SYNTAX_NAMES[transfer_syntax]}): read as "
            "DCMTK and pydicom read it",
            Verdict.CLEAN,
            0,
        ),
        *body.findings,
    ]
    eocd_finding = _eocd_finding(head, size, read_at)
    if eocd_finding is not None:
        findings.append(eocd_finding)
    found = body.values.get(_SOP_INSTANCE_UID, [])
    uid = found[0].decode("ascii", "replace").strip("\0 ") if found else None
    return FileReport.of(name, "dicom", findings, uid)


_TRANSFER_SYNTAX_NAMES = {
    IMPLICIT_VR_LITTLE_ENDIAN: "Implicit VR Little Endian",
    EXPLICIT_VR_LITTLE_ENDIAN: "Explicit VR Little Endian",
    EXPLICIT_VR_BIG_ENDIAN: "Explicit VR Big Endian",
}


def _not_part10(head: bytes, name: str) -> FileReport:
    if is_secure_head(head):
        return FileReport.of(
            name,
            "secure",
            [
                Finding(
                    "secure.not-opened",
                    "Secure DICOM File (CMS EnvelopedData): content not scanned without a key",
                    Verdict.CLEAN,
                    0,
                )
            ],
        )
    findings: list[Finding] = []
    signature = identify(head[:4096], text=True) if head else None
    if (
        signature is not None
        and signature.name != "mz"
        and signature.family is not Family.DOCUMENT
        and (signature.family is not Family.CONFIG or "Orthanc" in signature.description)
    ):
        findings.append(
            Finding(f"file.{signature.name}", f"not DICOM: a {signature.description}", Verdict.SUSPICIOUS, 0)
        )
    else:
        findings.append(
            Finding(
                "file.not-dicom", "not a DICOM PS3.10 file (no 'DICM' at offset 128)", Verdict.CLEAN, None
            )
        )
    return FileReport.of(name, "not-dicom", findings)


def scan_bytes(data: bytes | memoryview, *, name: str, allow_tiff: bool = True) -> FileReport:
    """Scan a whole file held in memory.

    Parameters
    ----------
    data
        The file's bytes.
    name
        How the report names the file.
    allow_tiff
        A TIFF or BigTIFF preamble with nothing else active is clean (PS3.10 §7.5); False: suspicious.
    """
    raw = bytes(data)
    return scan_source(raw, len(raw), None, name=name, allow_tiff=allow_tiff)


def scan_file(
    path: Path | str, *, name: str | None = None, allow_tiff: bool = True, layouts: LayoutCache | None = None
) -> FileReport:
    """Scan one file on disk, reading only what is needed (see the module docstring).

    A Secure DICOM File is reported ``kind="secure"`` without being opened (:func:`dcmseal.scan.scan_paths`
    opens it when given a key).

    Raises
    ------
    OSError
        The file cannot be opened or read (callers that walk trees report it as a finding instead).
    """
    label = str(path) if name is None else name
    fd = os.open(path, _OPEN_FLAGS)
    try:
        return scan_fd(fd, name=label, allow_tiff=allow_tiff, layouts=layouts)
    finally:
        os.close(fd)


def scan_fd(fd: int, *, name: str, allow_tiff: bool = True, layouts: LayoutCache | None = None) -> FileReport:
    """Scan the open file ``fd`` from its start (the caller owns and closes it)."""
    head = os.pread(fd, HEAD_BYTES, 0)
    size = len(head) if len(head) < HEAD_BYTES else os.fstat(fd).st_size
    return scan_source(
        head, size, lambda at, n: os.pread(fd, n, at), name=name, allow_tiff=allow_tiff, layouts=layouts
    )


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def scan_file_facts(path: Path, *, name: str, allow_tiff: bool = True) -> tuple[FileReport, ScanFacts]:
    """:func:`scan_file` plus the facts the sanitizer needs."""
    facts = ScanFacts(size=0)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        head = os.read(fd, HEAD_BYTES)
        size = os.fstat(fd).st_size
        facts.size = size
        report = scan_source(
            head, size, lambda at, n: os.pread(fd, n, at), name=name, allow_tiff=allow_tiff, facts=facts
        )
    finally:
        os.close(fd)
    return report, facts
