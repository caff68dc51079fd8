"""Open any medium (folder, ISO, zip): unseal and verify, recognise DICOM by content, write a conformant File-set.

The workflow :func:`open_medium` is a few stages, each one function: read the medium in
(:func:`dcmseal.intake.read_medium`: list, recognise, unseal), screen the plain files (:func:`_examine`), check
the medium's DICOMDIR against them (:func:`_check_dicomdir`), keep the File-set as it is or rebuild it
(:func:`_keep`, :func:`_rebuild`), write it (:func:`dcmseal.media.target.write_folder`), audit the Import
(:func:`_audit_import`) and tell the handlers how each file ended (:func:`_announce`).
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from dcmseal.audit import (
    AuditSink,
    AuditUser,
    EventOutcome,
    StudyRef,
    audit_medium,
    audit_patients,
    audit_unopened,
    import_event,
)
from dcmseal.config import DEFAULT_KDF_BUDGET_PER_MEDIUM, DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import DcmsealError, UsageError, one_line
from dcmseal.events import Emitter, FileFailed, FileOpened, FileQuarantined, HandlerSpec
from dcmseal.fsutil import make_dirs
from dcmseal.intake import Integrity, Keys, MediumFile, MediumReading, read_medium
from dcmseal.media.fileset import (
    DicomDir,
    Disagreement,
    FileFacts,
    NoteKind,
    build_fileset,
    check_agreement,
    is_conformant_file_id,
    read_dicomdir,
)
from dcmseal.media.output import staging_dir
from dcmseal.media.profiles import choose_profile
from dcmseal.media.summary import InstanceFacts, summarize
from dcmseal.media.target import write_folder
from dcmseal.media.transcode import conform
from dcmseal.outcomes import ReasonKind
from dcmseal.part10 import read_file_meta
from dcmseal.reader.containers import NESTED_SEPARATOR
from dcmseal.scan import Verdict, scan_file
from dcmseal.scan.layout import LayoutCache
from dcmseal.scan.walker import UNPARSABLE_CODES

__all__ = [
    "STATUSES",
    "OpenRequest",
    "OpenResult",
    "OpenStatus",
    "OpenedFile",
    "open_medium",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRequest:
    """A medium, where its plain File-set goes, and the keys to try."""

    medium: Path
    out: Path
    operator: str
    passwords: tuple[str | bytes, ...] = field(default=(), repr=False)  # a str: NFC, UTF-8 (intake.Keys)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)  # PKCS#8 DER
    certificates: tuple[bytes | None, ...] = ()
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    workers: int = 0
    overwrite: bool = False
    #: Also open envelopes without a digest or signature inside; each is reported as not verified.
    accept_unprotected: bool = False
    #: PBKDF2 iterations the whole medium may cost (a hostile medium is cut off there, each file named).
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM
    #: Asked for a password only when the medium turns out to hold encrypted files and no key was given.
    ask_password: Callable[[], str] | None = field(default=None, repr=False)
    #: Scan each DICOM file and quarantine the malicious ones (a polyglot's executable preamble); off, every
    #: DICOM file goes into the File-set as it was read (for a caller that scans and sanitizes on its own).
    screen: bool = True
    #: Bound to the events the workflow emits (:class:`dcmseal.events.Progress` of the stages ``read``,
    #: ``open``; :class:`~dcmseal.events.FileOpened`, :class:`~dcmseal.events.FileQuarantined`,
    #: :class:`~dcmseal.events.FileFailed` for each such file once the File-set is written).
    handlers: Sequence[HandlerSpec] = ()


class OpenStatus(enum.StrEnum):
    """Where a file of a medium ends when it is opened (one place each); the JSON says the value."""

    OPENED = "opened"  # a Secure DICOM File, unsealed and verified, in the File-set
    COPIED = "copied"  # plain DICOM, in the File-set
    QUARANTINED = "quarantined"  # the scanner calls it malicious: left out
    SKIPPED = "skipped"  # not DICOM, a link, a second copy, a DICOMDIR replaced: left out
    FAILED = "failed"  # cannot be read, opened or placed


#: Every :class:`OpenStatus`, in the order the JSON summary counts them.
STATUSES = tuple(OpenStatus)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedFile:
    """One file of the medium and where it ended (one of :data:`STATUSES`), with a one-line reason."""

    path: str  # its original path on the medium (``a.zip!DICOM/IM1`` inside a zip on it)
    status: OpenStatus
    reason: str | None = None
    kind: ReasonKind | None = (
        None  # the reason's kind, for a program (not in the JSON: reasons are for people)
    )
    file_id: str | None = None  # in the output File-set
    sop_instance_uid: str | None = None
    #: For opened files: "verified" (digest or signature checked) or "not-verified" (accepted unprotected).
    integrity: Integrity | None = None
    encrypted: bool = False  # a Secure DICOM File on the medium (its plaintext exists only in the File-set)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "status": self.status.value,
            "reason": self.reason,
            "file_id": self.file_id,
            "sop_instance_uid": self.sop_instance_uid,
            "integrity": self.integrity.value if self.integrity is not None else None,
            "encrypted": self.encrypted,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenResult:
    """What a medium held and what became of each file."""

    medium: Path
    output: Path
    files: tuple[OpenedFile, ...]
    disagreements: tuple[Disagreement, ...]
    dicomdir_rebuilt: bool
    kdf_derivations: int
    notes: tuple[str, ...]
    elapsed_s: float
    #: The File-set ID of the medium's DICOMDIR ("" when it has none or none was readable).
    fileset_id: str = ""

    @property
    def failed(self) -> tuple[OpenedFile, ...]:
        return tuple(f for f in self.files if f.status is OpenStatus.FAILED)

    @property
    def quarantined(self) -> tuple[OpenedFile, ...]:
        return tuple(f for f in self.files if f.status is OpenStatus.QUARANTINED)

    def to_json(self) -> dict[str, object]:
        counts = {s.value: sum(1 for f in self.files if f.status is s) for s in STATUSES}
        return {
            "schema": "dcmseal.open/1",
            "medium": str(self.medium),
            "output": str(self.output),
            "files": [f.to_json() for f in self.files],
            "disagreements": [d.to_json() for d in self.disagreements],
            "dicomdir_rebuilt": self.dicomdir_rebuilt,
            "kdf_derivations": self.kdf_derivations,
            "notes": list(self.notes),
            "summary": {**counts, "elapsed_s": round(self.elapsed_s, 3)},
        }


#: Media Storage Directory Storage (PS3.4 Annex B): a DICOMDIR, a hint about the files, not an instance.
_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass(slots=True)
class _Instance:
    """A plain DICOM file of the medium on its way into the File-set, with the UIDs of its File Meta."""

    label: str  # its path on the medium
    plain: Path  # its PS3.10 bytes in the staging folder
    changes: list[str]  # what was done to it (File Meta given, converted), said in its reason
    encrypted: bool
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax_uid: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _DicomDirCheck:
    """What the medium's DICOMDIR says, and whether it agrees with the files."""

    root: _Instance | None  # the medium's own DICOMDIR (at its root), when it has one
    dicomdir: DicomDir | None  # read, when it could be
    fileset_id: str
    disagreements: tuple[Disagreement, ...]


def open_medium(
    request: OpenRequest,
    *,
    audit: AuditSink,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> OpenResult:
    """Open ``request.medium`` into a conformant File-set at ``request.out``.

    The medium is a folder (a mounted disc, a USB stick), an ISO 9660 image (Joliet, Rock Ridge, ISO/UDF
    bridge), a UDF-only image (through 7z), a FAT image or a zip (zips inside it opened, within bounds), read
    by :mod:`dcmseal.intake`; its files are
    recognised by content, not by name: PS3.10 files, Secure DICOM Files (unsealed and verified, one PBKDF2
    derivation per medium) and data sets without File Meta (given a PS3.10 header, their bytes unchanged).
    Every file ends in exactly one place, with a one-line reason when it is not simply in the File-set:
    ``opened`` (unsealed), ``copied`` (plain DICOM), ``quarantined`` (the scanner calls it malicious, e.g.
    an executable preamble: left out), ``skipped`` (not DICOM, a link: left out, never run) or ``failed``.

    The medium's DICOMDIR is a hint: when it agrees with the files and they already have conformant File IDs,
    the File-set is kept as it is; otherwise (missing, broken, lying, or plain media with ordinary names) the
    files are converted losslessly to the profile's transfer syntax where needed and given File IDs and a
    new DICOMDIR (:func:`dcmseal.media.fileset.build_fileset`). Disagreements are reported, never fatal.

    Raises
    ------
    InputError
        The medium is not one, or its structure is malformed or hostile (a name escaping its root, a file
        past the end of the image): nothing of it is opened.
    DecryptionError
        No file of the medium opens with the keys given (one message, as for a single file).

    A medium that cannot be opened (unreadable, no key opens it) is audited as an Import that failed.
    """
    try:
        return _open(request, audit=audit, now=now)
    except UsageError:
        raise  # nothing was read: the command was incomplete
    except DcmsealError as exc:
        audit_unopened(audit, medium=request.medium, operator=request.operator, error=exc, now=now)
        raise


def _open(request: OpenRequest, *, audit: AuditSink, now: Callable[[], datetime]) -> OpenResult:
    started = time.perf_counter()
    emitter = Emitter(request.handlers)
    notes: list[str] = []
    with staging_dir(request.out, overwrite=request.overwrite) as staging:
        reading = read_medium(request.medium, staging, Keys.of(request), emitter=emitter)
        results = {f.label: _opened_file(f) for f in reading.files}
        instances, dicomdirs = _examine(_instances(reading), request, results)
        check = _check_dicomdir(instances, dicomdirs, notes)
        keep = check.dicomdir is not None and _keeps_fileset(instances, check)
        final = staging / "final"
        final.mkdir()
        if keep:
            summary_source = _keep(instances, check, final, results)
        else:
            summary_source = _rebuild(instances, staging, final, check.fileset_id, results, notes)
        _place_dicomdirs(dicomdirs, check.root, results, kept=keep)
        write_folder(final, request.out, overwrite=request.overwrite)
    result = OpenResult(
        medium=request.medium,
        output=request.out,
        files=tuple(results[k] for k in sorted(results)),
        disagreements=check.disagreements,
        dicomdir_rebuilt=not keep and bool(instances),
        kdf_derivations=reading.pbkdf2_derivations,
        notes=tuple(notes),
        elapsed_s=0.0,
        fileset_id=check.fileset_id,
    )
    notes.extend(_audit_import(result, summary_source, reading, request, audit, now))
    _announce(result, emitter)
    return replace(result, notes=tuple(notes), elapsed_s=time.perf_counter() - started)


def _opened_file(entry: MediumFile) -> OpenedFile:
    """Where a file stands once the medium is read in (a plain DICOM file's place in the File-set comes later)."""
    return OpenedFile(
        path=entry.label,
        status=OpenStatus(entry.status.value),
        reason=entry.reason,
        kind=entry.kind,
        integrity=entry.integrity,
        encrypted=entry.encrypted,
    )


def _instances(reading: MediumReading) -> list[_Instance]:
    """The plain DICOM files of the medium, copied first, then opened, as they became ready."""
    instances = []
    for entry in reading.ready:
        assert entry.plain is not None
        instances.append(
            _Instance(label=entry.label, plain=entry.plain, changes=entry.changes, encrypted=entry.encrypted)
        )
    return instances


def _examine(
    ready: list[_Instance], request: OpenRequest, results: dict[str, OpenedFile]
) -> tuple[list[_Instance], list[_Instance]]:
    """The instances and the DICOMDIRs among the plain files; a file whose File Meta does not parse fails, one
    the scanner calls malicious (an executable preamble, a polyglot) or unparsable (truncated, nested past
    the bound) is quarantined (:func:`dcmseal.scan.scan_file`)."""
    instances: list[_Instance] = []
    dicomdirs: list[_Instance] = []
    layouts = LayoutCache()  # the files of a series share their structure: walked once, then checked
    for source in ready:
        try:
            meta = read_file_meta(source.plain)
            source.sop_class_uid = meta.sop_class_uid
            source.sop_instance_uid = meta.sop_instance_uid
            source.transfer_syntax_uid = meta.transfer_syntax_uid
            if meta.sop_class_uid == _DIRECTORY_SOP_CLASS:
                dicomdirs.append(source)
                continue
            if request.screen:
                report = scan_file(source.plain, name=source.label, layouts=layouts)
                worst_finding = next(
                    (
                        f
                        for f in report.findings
                        if f.severity is Verdict.MALICIOUS or f.code in UNPARSABLE_CODES
                    ),
                    None,
                )
                if worst_finding is not None:
                    source.plain.unlink()
                    results[source.label] = OpenedFile(
                        path=source.label,
                        status=OpenStatus.QUARANTINED,
                        reason=f"{worst_finding.message}: left out of the File-set",
                        sop_instance_uid=meta.sop_instance_uid,
                        encrypted=source.encrypted,
                    )
                    continue
        except Exception as exc:
            logger.debug("%s: not usable", source.label, exc_info=True)
            source.plain.unlink(missing_ok=True)
            results[source.label] = OpenedFile(
                path=source.label, status=OpenStatus.FAILED, reason=one_line(exc), encrypted=source.encrypted
            )
            continue
        instances.append(source)
    return instances, dicomdirs


def _place(
    results: dict[str, OpenedFile],
    source: _Instance,
    *,
    file_id: str | None = None,
    reason: str | None = None,
) -> None:
    """Say where ``source`` ended in the File-set (its status stays: opened or copied)."""
    entry = results[source.label]
    said = "; ".join([*source.changes, *([reason] if reason else [])]) or None
    results[source.label] = OpenedFile(
        path=source.label,
        status=entry.status,
        reason=said,
        file_id=file_id,
        integrity=entry.integrity,
        # a DICOMDIR's (0002,0003) is its File-set UID, not an instance
        sop_instance_uid=None
        if source.sop_class_uid == _DIRECTORY_SOP_CLASS
        else source.sop_instance_uid or None,
        encrypted=source.encrypted,
    )


def _rebuild(
    instances: list[_Instance],
    staging: Path,
    final: Path,
    fileset_id: str,
    results: dict[str, OpenedFile],
    notes: list[str],
) -> list[InstanceFacts]:
    """Give the instances File IDs and a DICOMDIR in ``final``, converting losslessly what the profile needs."""
    if not instances:
        return []
    profile = choose_profile([s.transfer_syntax_uid for s in instances], output="dir")
    conformed_dir = staging / "conformed"
    conformed_dir.mkdir()
    by_conformed: dict[Path, _Instance] = {}
    for source in instances:
        target = conformed_dir / source.plain.name
        try:
            outcome = conform(source.plain, target, profile, durable=False, link=True)
        except Exception as exc:
            logger.debug("%s: cannot be converted", source.label, exc_info=True)
            results[source.label] = OpenedFile(
                path=source.label, status=OpenStatus.FAILED, reason=one_line(exc), encrypted=source.encrypted
            )
            continue
        if outcome.converted:
            source.changes.append(outcome.reason)
        by_conformed[target] = source
    fileset = build_fileset(list(by_conformed), final, fileset_id=fileset_id, profile=profile)
    for note in fileset.notes:
        noted = by_conformed.get(Path(note.path))
        if noted is not None and note.kind is NoteKind.LEFT_OUT:
            results[noted.label] = OpenedFile(
                path=noted.label, status=OpenStatus.FAILED, reason=note.message, encrypted=noted.encrypted
            )
        elif noted is not None and note.kind is NoteKind.DUPLICATE:
            first = next(s for s in instances if s.sop_instance_uid == noted.sop_instance_uid)
            results[noted.label] = OpenedFile(
                path=noted.label,
                status=OpenStatus.SKIPPED,
                reason=f"a second copy of the instance in {first.label} (same SOP Instance UID): left out",
                sop_instance_uid=noted.sop_instance_uid,
                encrypted=noted.encrypted,
            )
        else:
            notes.append(f"{noted.label}: {note.message}" if noted is not None else note.message)
    for planned in fileset.files:
        _place(results, by_conformed[planned.source], file_id="/".join(planned.file_id))
    return [
        InstanceFacts(
            patient_id=p.patient_id,
            study_instance_uid=p.study_instance_uid,
            sop_class_uid=p.sop_class_uid,
            modality=p.modality,
        )
        for p in fileset.files
    ]


def _check_dicomdir(
    instances: list[_Instance], dicomdirs: list[_Instance], notes: list[str]
) -> _DicomDirCheck:
    """Read the medium's DICOMDIR (at its root) and check it against the files; a note says what was found."""
    root = next((d for d in dicomdirs if d.label.upper() == "DICOMDIR"), None)
    facts = {
        tuple(s.label.split("/")): FileFacts(
            sop_class_uid=s.sop_class_uid,
            sop_instance_uid=s.sop_instance_uid,
            transfer_syntax_uid=s.transfer_syntax_uid,
        )
        for s in instances
        if NESTED_SEPARATOR not in s.label
    }
    disagreements: list[Disagreement] = []
    fileset_id = ""
    dicomdir: DicomDir | None = None
    if root is not None:
        try:
            dicomdir = read_dicomdir(root.plain)
            fileset_id = dicomdir.fileset_id
            disagreements = check_agreement(dicomdir, facts)
        except Exception as exc:
            logger.debug("the DICOMDIR cannot be read", exc_info=True)
            notes.append(f"the DICOMDIR cannot be read ({one_line(exc)}); one is built from the files")
    else:
        notes.append("the medium has no usable DICOMDIR; one is built from the files")
    if disagreements:
        notes.append(f"the DICOMDIR disagrees with the files in {len(disagreements)} place(s); it is rebuilt")
    return _DicomDirCheck(
        root=root, dicomdir=dicomdir, fileset_id=fileset_id, disagreements=tuple(disagreements)
    )


def _keeps_fileset(instances: list[_Instance], check: _DicomDirCheck) -> bool:
    """Whether the medium's File-set is kept as it is: its DICOMDIR agrees, nothing changed, conformant File IDs."""
    return not check.disagreements and all(
        not s.changes and is_conformant_file_id(s.label.split("/")) for s in instances
    )


def _keep(
    instances: list[_Instance], check: _DicomDirCheck, final: Path, results: dict[str, OpenedFile]
) -> list[InstanceFacts]:
    """Put the instances and the DICOMDIR in ``final`` under their own File IDs; the studies its records name."""
    assert check.dicomdir is not None
    assert check.root is not None
    for source in [*instances, check.root]:
        target = final.joinpath(*source.label.split("/"))
        make_dirs(target.parent)
        os.rename(source.plain, target)
        _place(results, source, file_id=source.label)
    return [
        InstanceFacts(
            patient_id=entry.patient_id,
            study_instance_uid=entry.study_instance_uid,
            sop_class_uid=entry.referenced_sop_class_uid,
        )
        for entry in check.dicomdir.entries
        if entry.study_instance_uid
    ]


def _place_dicomdirs(
    dicomdirs: list[_Instance], root: _Instance | None, results: dict[str, OpenedFile], *, kept: bool
) -> None:
    """Say what became of each DICOMDIR of the medium (the root one kept, or all of them replaced)."""
    for source in dicomdirs:
        if kept and source is root:
            continue  # in the File-set, placed with the instances
        if kept:
            reason = "a DICOMDIR below the medium's root: left out of the File-set"
        elif source is root:
            reason = "the medium's DICOMDIR: a hint, checked against the files; the File-set has a new one"
        else:
            reason = "a DICOMDIR below the medium's root: its files are indexed in the File-set's DICOMDIR"
        _place(results, source, reason=reason)


def _audit_import(
    result: OpenResult,
    summary_source: list[InstanceFacts],
    reading: MediumReading,
    request: OpenRequest,
    audit: AuditSink,
    now: Callable[[], datetime],
) -> list[str]:
    """The Import message of the medium (PS3.15 A.5.3.5), its outcome saying what did not come through; the
    notes to add to the result (integrity not verified, an audit that could not be written)."""
    notes: list[str] = []
    studies = summarize(summary_source)
    failed = sum(1 for f in result.files if f.status is OpenStatus.FAILED)
    medium_id, media_type = audit_medium(request.medium, result.fileset_id)
    unverified = sum(1 for f in result.files if f.integrity is Integrity.NOT_VERIFIED)
    if unverified:
        notes.append(
            f"{unverified} file(s) opened with integrity NOT verified: no digest or signature inside "
            "(accepted unprotected content)"
        )
    problems = [f"{failed} file(s) failed"] if failed else []
    if unverified:
        problems.append(f"{unverified} file(s) opened with integrity NOT verified")
    try:
        audit.emit(
            import_event(
                user=AuditUser(user_id=request.operator),
                medium_id=medium_id,
                media_type=media_type,
                patients=audit_patients(s.patient_id for s in studies),
                studies=[  # an instance without a Study Instance UID names no study (PS3.15 A.5.1: an ID)
                    StudyRef.from_counts(s.study_instance_uid, dict(s.sop_class_counts))
                    for s in studies
                    if s.study_instance_uid
                ],
                encrypted=reading.encrypted,
                # Some files not read in, or read without integrity: a minor failure (PS3.15 Table A.5.2-1).
                outcome=EventOutcome.MINOR_FAILURE if problems else EventOutcome.SUCCESS,
                description="; ".join(problems) or None,
                now=now,
            )
        )
    except DcmsealError as exc:
        notes.append(f"the Import audit message could not be written: {exc}")
        logger.error("audit: %s", exc)
    return notes


def _announce(result: OpenResult, emitter: Emitter) -> None:
    """Tell the handlers how each file that was opened, quarantined or failed ended."""
    for entry in result.files:
        path = Path(entry.path)
        if entry.status is OpenStatus.OPENED:
            output = result.output.joinpath(*entry.file_id.split("/")) if entry.file_id else None
            emitter.emit(FileOpened(path=path, output=output))
        elif entry.status is OpenStatus.QUARANTINED:
            emitter.emit(FileQuarantined(path=path, reason=entry.reason or ""))
        elif entry.status is OpenStatus.FAILED:
            emitter.emit(FileFailed(path=path, reason=entry.reason or ""))
