"""Secure DICOM Files opened for scanning only: the plaintext stays in memory (or an unnamed temp file) and is never kept.

The payload is decrypted and verified (digest or signature) by :func:`dcmseal.cms.decrypt`, then scanned
as any file. Up to :data:`MAX_IN_MEMORY_BYTES` it lives in memory; a larger payload spills to a
``tempfile.TemporaryFile``, which has no name on disk and disappears when closed, also on a crash.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from typing import BinaryIO

from dcmseal import cms
from dcmseal.cms.envelope import Writable
from dcmseal.config import DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import DecryptionError, InputError, ResourceLimitError, UnprotectedContentError
from dcmseal.part10 import UnsealPlan
from dcmseal.scan.report import FileReport, Finding, Verdict
from dcmseal.scan.scanner import HEAD_BYTES, scan_source

__all__ = [
    "MAX_IN_MEMORY_BYTES",
    "OPENED_CODES",
    "credentials_from",
    "decrypt_to_memory",
    "flag_unopened",
    "scan_secure",
]

#: Finding codes of a Secure DICOM File whose payload was opened and scanned (verified, or accepted unprotected).
OPENED_CODES = frozenset({"secure.opened", "secure.opened-unverified"})

#: Payloads up to this size are scanned in memory; larger ones go through an unnamed temporary file.
MAX_IN_MEMORY_BYTES = 256 * 1024 * 1024


def flag_unopened(reports: Sequence[FileReport]) -> list[FileReport]:
    """``reports`` of one medium, each Secure DICOM File that the keys did not open marked suspicious when the
    same keys opened others of it: altered, damaged, or sealed for someone else (which is which is not told,
    as the per-file answer does not tell a wrong key from altered content)."""
    opened = sum(1 for r in reports if any(f.code in OPENED_CODES for f in r.findings))
    if not opened:
        return list(reports)
    mismatch = Finding(
        "secure.key-mismatch",
        f"did not open with the key that opened {opened} other Secure DICOM File(s) of this medium: "
        "altered, damaged, or sealed for other recipients",
        Verdict.SUSPICIOUS,
        0,
    )
    return [
        FileReport.of(r.path, r.kind, [*r.findings, mismatch], r.sop_instance_uid)
        if r.codes() == ("secure.not-opened",)
        else r
        for r in reports
    ]


def credentials_from(passwords: Sequence[bytes], private_keys: Sequence[bytes]) -> tuple[cms.Credential, ...]:
    """CMS credentials from passwords and PKCS#8 DER private keys (empty when none are given)."""
    if not passwords and not private_keys:
        return ()
    return UnsealPlan(passwords=tuple(passwords), private_keys=tuple(private_keys)).credentials()


class _Sink:
    """Collects the payload in memory, spilling to an unnamed temporary file past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.memory = bytearray()
        self.spill: BinaryIO | None = None

    def write(self, data: bytes | memoryview, /) -> int:
        if self.spill is None and len(self.memory) + len(data) > self.limit:
            self.spill = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
            self.spill.write(self.memory)
            self.memory = bytearray()
        if self.spill is not None:
            return self.spill.write(data)
        self.memory += data
        return len(data)

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()
        self.memory = bytearray()


def decrypt_to_memory(
    source: BinaryIO,
    size: int,
    credentials: Sequence[cms.Credential],
    *,
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS,
    accept_unprotected: bool = False,
    kdf_budget: cms.KdfBudget | None = None,
    context: cms.Context | None = None,
) -> bytes:
    """The verified payload of a small Secure DICOM File (a DICOMDIR), in memory (unverified only if
    ``accept_unprotected`` and it carries no digest).

    Raises
    ------
    DecryptionError, UnprotectedContentError, MalformedEnvelopeError, ...
        From :func:`dcmseal.cms.decrypt`.
    """
    sink = io.BytesIO()
    _decrypt(
        source,
        sink,
        size,
        credentials,
        max_iterations=max_iterations,
        accept_unprotected=accept_unprotected,
        kdf_budget=kdf_budget,
        context=context,
    )
    return sink.getvalue()


def _decrypt(
    source: BinaryIO,
    sink: Writable,
    size: int,
    credentials: Sequence[cms.Credential],
    *,
    max_iterations: int,
    accept_unprotected: bool,
    kdf_budget: cms.KdfBudget | None,
    context: cms.Context | None,
) -> cms.DecryptResult:
    """The one way a scan opens an envelope (with the scan's CMS context: a medium derives its key once)."""
    return cms.decrypt(
        source,
        sink,
        credentials,
        context=context,
        max_iterations=max_iterations,
        size=size,
        accept_unprotected=accept_unprotected,
        kdf_budget=kdf_budget,
    )


def scan_secure(
    source: BinaryIO,
    size: int,
    credentials: Sequence[cms.Credential],
    *,
    name: str,
    allow_tiff: bool = True,
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS,
    in_memory_limit: int = MAX_IN_MEMORY_BYTES,
    accept_unprotected: bool = False,
    kdf_budget: cms.KdfBudget | None = None,
    context: cms.Context | None = None,
) -> FileReport:
    """Open the Secure DICOM File read from ``source`` with ``credentials`` and scan its payload.

    A key that does not open it (or content that fails its digest or signature: one answer), an envelope
    that does not parse, or one without a digest inside (unless ``accept_unprotected``) are findings,
    not exceptions: a medium is scanned to its end. A payload is scanned only once verified, or, with
    ``accept_unprotected``, reported as opened with integrity NOT verified.
    """
    sink = _Sink(in_memory_limit)
    try:
        try:
            result = _decrypt(
                source,
                sink,
                size,
                credentials,
                max_iterations=max_iterations,
                accept_unprotected=accept_unprotected,
                kdf_budget=kdf_budget,
                context=context,
            )
        except DecryptionError as exc:
            note = Finding(
                "secure.not-opened",
                f"Secure DICOM File not opened ({exc.message}); content not scanned",
                Verdict.CLEAN,
                0,
            )
            return FileReport.of(name, "secure", [note])
        except UnprotectedContentError as exc:
            finding = Finding(
                "secure.unprotected", f"Secure DICOM File not opened: {exc.message}", Verdict.SUSPICIOUS, 0
            )
            return FileReport.of(name, "secure", [finding])
        except InputError as exc:
            # A limit reached (recipient flood, PBKDF2 budget) is told apart from a structure that does not parse.
            code = "secure.limit" if isinstance(exc, ResourceLimitError) else "secure.malformed"
            finding = Finding(
                code, f"Secure DICOM File that does not open: {exc.message}", Verdict.SUSPICIOUS, 0
            )
            return FileReport.of(name, "secure", [finding])
        opened = (
            Finding(
                "secure.opened",
                "Secure DICOM File opened and verified; its payload was scanned",
                Verdict.CLEAN,
                None,
            )
            if result.inner.verified
            else Finding(
                "secure.opened-unverified",
                "Secure DICOM File opened with integrity NOT verified (no digest or signature inside, "
                "accepted unprotected); its payload was scanned",
                Verdict.SUSPICIOUS,
                None,
            )
        )
        if sink.spill is None:
            data = bytes(sink.memory)
            inner = scan_source(data, len(data), None, name=name, allow_tiff=allow_tiff)
        else:
            spill = sink.spill
            spill.flush()
            fd = spill.fileno()
            payload_size = os.fstat(fd).st_size
            head = os.pread(fd, HEAD_BYTES, 0)
            inner = scan_source(
                head, payload_size, lambda at, n: os.pread(fd, n, at), name=name, allow_tiff=allow_tiff
            )
        return FileReport.of(name, inner.kind, [opened, *inner.findings], inner.sop_instance_uid)
    finally:
        sink.close()
