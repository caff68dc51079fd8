"""The scan and sanitize workflows: a request in, a result out, and their audit messages written by the library.

:func:`scan_paths` and :func:`sanitize_file` are the parts; these functions are what a program embedding
dcmseal calls to get what ``dcmseal scan`` and ``dcmseal sanitize`` do, audit included: a scan or sanitize
that finds anything malicious emits a Security Alert (PS3.15 A.5.3.11) to the caller's sink, whoever the
caller is, and sanitize a DICOM Instances Accessed message (A.5.3.2) per patient of the copies it wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dcmseal.audit import (
    AccessedInstance,
    AuditEvent,
    AuditSink,
    AuditUser,
    EventActionCode,
    EventOutcome,
    emit_events,
    instances_accessed_events,
    security_alert,
)
from dcmseal.config import DEFAULT_KDF_BUDGET_PER_MEDIUM, DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import DcmsealError, ExitCode, InputError, MissingInputError, UsageError
from dcmseal.events import Emitter, FileQuarantined, HandlerSpec
from dcmseal.fsutil import relative_output_path
from dcmseal.keys.passwords import password_tuple
from dcmseal.part10.header import read_header
from dcmseal.reader.containers import is_quarantine_dir, iter_folder
from dcmseal.scan.quarantine import QuarantineRecord, quarantine_file
from dcmseal.scan.report import ScanReport, Verdict
from dcmseal.scan.sanitize import SanitizeResult, sanitize_file
from dcmseal.scan.tree import scan_paths

__all__ = ["SanitizeReport", "SanitizeRequest", "ScanRequest", "ScanResult", "sanitize", "scan"]

logger = logging.getLogger(__name__)

#: How many malicious items a Security Alert names in its description (the report has them all).
_ALERT_NAMES = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRequest:
    """What to scan and with which keys.

    Attributes
    ----------
    paths : tuple of Path
        Files, folders (mounted media), ISO images or zip archives.
    operator : str
        Who scans, for the audit trail.
    allow_tiff : bool
        A TIFF dual-personality preamble is clean (PS3.10 §7.5).
    passwords : tuple of str or bytes
        Open Secure DICOM Files to scan what is inside; a ``str`` is NFC-normalised and UTF-8 encoded
        (RFC 8018 §3, :func:`dcmseal.keys.password_octets`).
    private_keys : tuple of bytes
        The same, with keys as unencrypted PKCS#8 DER.
    workers : int
        Processes for large folders (0: one per core).
    max_iterations, kdf_budget_per_medium : int
        PBKDF2 limits against hostile envelopes.
    accept_unprotected : bool
        Also open envelopes with no digest or signature inside (reported, never as verified).
    """

    paths: tuple[Path, ...]
    operator: str
    allow_tiff: bool = True
    passwords: tuple[str | bytes, ...] = field(default=(), repr=False)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)
    workers: int = 0
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    accept_unprotected: bool = False
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM

    def __post_init__(self) -> None:
        if not self.paths:
            raise UsageError("nothing to scan: give at least one path")
        # The one conversion of the passwords: str or bytes, the same octets from here on.
        object.__setattr__(self, "passwords", self.password_bytes)

    @property
    def password_bytes(self) -> tuple[bytes, ...]:
        """The octets of ``passwords``, as PBKDF2 derives from them."""
        return password_tuple(self.passwords)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult:
    """The scan report, and what became of its Security Alert.

    Attributes
    ----------
    report : ScanReport
        Every file's verdict and findings, and the medium's.
    alerted : bool
        A Security Alert was emitted (something was malicious).
    audit_error : str or None
        Why the Security Alert could not be written (the scan's findings stand regardless).
    """

    report: ScanReport
    alerted: bool = False
    audit_error: str | None = None

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of every file and of the medium."""
        return self.report.verdict

    @property
    def exit_code(self) -> ExitCode:
        """FINDINGS (4) when anything is suspicious or malicious: findings are results, not errors."""
        return ExitCode.OK if self.report.verdict is Verdict.CLEAN else ExitCode.FINDINGS

    def to_json(self) -> dict[str, object]:
        """The report as JSON-ready data (``dcmseal.scan/1``)."""
        return self.report.to_json()


def scan(request: ScanRequest, *, audit: AuditSink, handlers: Sequence[HandlerSpec] = ()) -> ScanResult:
    """Scan files and media for hostile content, and audit a Security Alert for anything malicious.

    Parameters
    ----------
    request : ScanRequest
        What to scan, with which keys and limits.
    audit : AuditSink
        Where the Security Alert goes (PS3.15 A.5.3.11, EventOutcomeIndicator 4: minor failure).
    handlers : sequence of (event class, handler)
        :class:`~dcmseal.events.Progress` is emitted for the stages ``"scan"`` and ``"open"``.

    Returns
    -------
    ScanResult
        The report; a sink that fails is said in ``audit_error``, never by losing the report.

    Raises
    ------
    InputError
        A path does not exist or cannot be read.
    """
    report = scan_paths(
        list(request.paths),
        allow_tiff=request.allow_tiff,
        passwords=request.password_bytes,
        private_keys=request.private_keys,
        handlers=handlers,
        workers=request.workers,
        max_iterations=request.max_iterations,
        accept_unprotected=request.accept_unprotected,
        kdf_budget_per_medium=request.kdf_budget_per_medium,
    )
    malicious = [f.path for f in report.files if f.verdict is Verdict.MALICIOUS]
    malicious += [f.message for f in report.medium_findings if f.severity is Verdict.MALICIOUS]
    if not malicious:
        return ScanResult(report=report)
    # The findings matter more than their audit record: a sink that fails is said, the report stands.
    audit_error = emit_events(audit, [_malicious_alert("scan", request.operator, request.paths, malicious)])
    return ScanResult(report=report, alerted=audit_error is None, audit_error=audit_error)


def _malicious_alert(
    command: str, operator: str, paths: Sequence[Path], malicious: Sequence[str]
) -> AuditEvent:
    """The Security Alert of malicious content found (PS3.15 A.5.3.11), mitigated (outcome 4): reported,
    refused or made safe, never passed on as it was."""
    return security_alert(
        user=AuditUser(user_id=operator),
        description=f"dcmseal {command}: malicious content in {len(malicious)} item(s): "
        + "; ".join(malicious[:_ALERT_NAMES]),
        medium_id=", ".join(str(p) for p in paths),
        outcome=EventOutcome.MINOR_FAILURE,
    )


# -- sanitize ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SanitizeRequest:
    """Files or folders to copy safely, where to, and where what cannot be made safe goes.

    Attributes
    ----------
    paths : tuple of Path
        Files or folders (walked; their structure is mirrored under ``out``).
    out : Path
        Folder for the safe copies.
    operator : str
        Who sanitizes, for the audit trail.
    keep_tiff : bool
        Keep a valid TIFF dual-personality preamble (PS3.10 §7.5); by default every preamble is zeroed.
    quarantine : Path or None
        Folder for untouched copies of what cannot be made safe, each with a record of why.
    overwrite : bool
        Replace existing outputs.
    """

    paths: tuple[Path, ...]
    out: Path
    operator: str
    keep_tiff: bool = False
    quarantine: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.quarantine is not None and self.out.resolve() == self.quarantine.resolve():
            raise InputError("--quarantine must not be the --out folder", path=self.quarantine)


@dataclass(frozen=True, slots=True, kw_only=True)
class SanitizeReport:
    """Every file sanitized, copied or refused, and what was quarantined."""

    output: Path
    quarantine: Path | None
    files: tuple[SanitizeResult, ...]
    quarantined: tuple[QuarantineRecord, ...]
    #: Why an audit message could not be written (the copies stand regardless).
    audit_error: str | None = None

    @property
    def refused(self) -> tuple[SanitizeResult, ...]:
        """The files that could not be made safe (nothing written for them under ``output``)."""
        return tuple(r for r in self.files if r.output is None)

    @property
    def exit_code(self) -> ExitCode:
        """FINDINGS (4) when any file was refused."""
        return ExitCode.FINDINGS if self.refused else ExitCode.OK

    def to_json(self) -> dict[str, object]:
        """The report as JSON-ready data (``dcmseal.sanitize/1``)."""
        return {
            "schema": "dcmseal.sanitize/1",
            "output": str(self.output),
            "quarantine": str(self.quarantine) if self.quarantine is not None else None,
            "files": [r.to_json() for r in self.files],
            "quarantined": [q.to_json() for q in self.quarantined],
            "summary": {
                "files": len(self.files),
                "sanitized": sum(1 for r in self.files if r.status == "sanitized"),
                "copied": sum(1 for r in self.files if r.status == "copied"),
                "refused": len(self.refused),
                "quarantined": len(self.quarantined),
            },
        }


def sanitize(
    request: SanitizeRequest, *, audit: AuditSink, handlers: Sequence[HandlerSpec] = ()
) -> SanitizeReport:
    """Write safe copies: preamble zeroed, hidden payloads and trailing data removed; originals untouched.

    Parameters
    ----------
    request : SanitizeRequest
        What to copy, where to, and the quarantine folder.
    audit : AuditSink
        Where the audit messages go: a DICOM Instances Accessed message per patient of the copies written
        (PS3.15 A.5.3.2: U for the instances changed, R for those copied unchanged), and a Security Alert
        (A.5.3.11, outcome 4) when any input held malicious content. A sink that fails is said in
        ``audit_error``; the copies stand.
    handlers : sequence of (event class, handler)
        :class:`~dcmseal.events.Progress` (stage ``"sanitize"``) per file, and
        :class:`~dcmseal.events.FileQuarantined` for each file set aside.

    Returns
    -------
    SanitizeReport
        Every file's outcome: a refused file is a finding (``exit_code`` 4), not an error.

    Raises
    ------
    InputError
        A path does not exist, or an output exists and ``overwrite`` is false.
    """
    emitter = Emitter(handlers)
    targets = list(_targets(list(request.paths), request.out))
    results: list[SanitizeResult] = []
    records: list[QuarantineRecord] = []
    for index, (src, dst, label) in enumerate(targets, 1):
        result = sanitize_file(src, dst, keep_tiff=request.keep_tiff, overwrite=request.overwrite)
        results.append(result)
        if result.output is None and request.quarantine is not None:
            reason = result.refused or "refused"
            records.append(
                quarantine_file(
                    src, request.quarantine, reason=reason, findings=result.report.findings, source=label
                )
            )
            emitter.emit(FileQuarantined(path=src, reason=reason))
        emitter.progress("sanitize", index, len(targets))
    return SanitizeReport(
        output=request.out,
        quarantine=request.quarantine,
        files=tuple(results),
        quarantined=tuple(records),
        audit_error=emit_events(audit, _sanitize_events(request, results)),
    )


def _sanitize_events(request: SanitizeRequest, results: Sequence[SanitizeResult]) -> list[AuditEvent]:
    """The audit messages of a sanitize run: what was copied, per patient, and what was malicious."""
    user = AuditUser(user_id=request.operator)
    # PS3.15 A.5.3.2 (DICOM Instances Accessed): a sanitized copy keeps its SOP Instance UID with its
    # content changed, an Update (U) of the instance (not C: no new instance exists); a copy written unchanged
    # is the instance Read (R). The original files are left as they were. Each message names one patient.
    events = instances_accessed_events(
        [_written(r.output) for r in results if r.output is not None and r.changes],
        user=user,
        action=EventActionCode.UPDATE,
        description="dcmseal sanitize: safe copies written (preamble zeroed, payloads or trailing data removed)",
    )
    events += instances_accessed_events(
        [_written(r.output) for r in results if r.output is not None and not r.changes],
        user=user,
        action=EventActionCode.READ,
        description="dcmseal sanitize: copied unchanged (nothing to remove)",
    )
    malicious = [r.source for r in results if r.report.verdict is Verdict.MALICIOUS]
    if malicious:
        # As scan does for the same findings (A.5.3.11): sanitizing mitigated them, the alert still says so.
        events.append(_malicious_alert("sanitize", request.operator, request.paths, malicious))
    return events


#: (0010,0020) Patient ID and (0020,000D) Study Instance UID: what an audit message names of a copy.
_PATIENT_ID, _STUDY_INSTANCE_UID = 0x00100020, 0x0020000D


def _written(path: Path) -> AccessedInstance:
    """Patient, study and SOP Class of a copy written, read from its header (unidentified if unreadable)."""
    try:
        header = read_header(path, (_PATIENT_ID, _STUDY_INSTANCE_UID), stop_after=_STUDY_INSTANCE_UID)
    except (DcmsealError, OSError) as exc:
        logger.warning("%s: not named in the audit message: %s", path, exc)
        return AccessedInstance(patient_id="", study_instance_uid="", sop_class_uid="")
    values = {
        tag: header.values[tag].value.rstrip(b"\x00 ").decode("ascii", errors="replace")
        for tag in (_PATIENT_ID, _STUDY_INSTANCE_UID)
        if tag in header.values
    }
    return AccessedInstance(
        patient_id=values.get(_PATIENT_ID, ""),
        study_instance_uid=values.get(_STUDY_INSTANCE_UID, ""),
        sop_class_uid=header.sop_class_uid,
    )


def _targets(paths: list[Path], out: Path) -> Iterator[tuple[Path, Path, str]]:
    """(source, destination, label) for every file, mirroring the inputs' structure under ``out``."""
    several = len(paths) > 1
    for path in paths:
        if path.is_dir():
            if is_quarantine_dir(path):
                continue
            base = Path(path.resolve().name) if several else Path()
            for member in iter_folder(path):
                if member.symlink or member.path is None:
                    continue
                relative = base / member.name
                yield Path(member.path), relative_output_path(out, relative), relative.as_posix()
        elif path.is_file():
            yield path, relative_output_path(out, Path(path.name)), str(path)
        else:
            raise MissingInputError(path)
