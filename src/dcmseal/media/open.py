"""Open a medium (ISO, folder, zip): unseal and verify every file, check the DICOMDIR, write a plain File-set."""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dcmseal.audit import (
    ALERT_TYPE_MEDIUM_REJECTED,
    AuditSink,
    AuditUser,
    EventOutcome,
    StudyRef,
    import_event,
    security_alert,
)
from dcmseal.cms import is_enveloped_data
from dcmseal.config import DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import (
    DcmsealError,
    DecryptionError,
    InputError,
    MalformedEnvelopeError,
    NotPart10Error,
    ResourceLimitError,
    UnprotectedContentError,
    UsageError,
)
from dcmseal.fsutil import CHUNK_SIZE_BYTES, Extent, ExtentReader
from dcmseal.media.fileset import (
    DicomDir,
    Disagreement,
    FileFacts,
    build_fileset,
    check_agreement,
    file_id_to_path,
    path_to_file_id,
    read_dicomdir,
)
from dcmseal.media.iso import is_iso_image, iso_file_extents, open_medium
from dcmseal.media.output import staging_dir
from dcmseal.media.profiles import choose_profile
from dcmseal.media.summary import InstanceFacts, audit_medium, audit_patients, summarize
from dcmseal.media.target import write_folder
from dcmseal.part10 import (
    BatchReport,
    UnsealPlan,
    UnsealResult,
    is_part10,
    is_secure_file,
    read_file_meta,
    unseal_files,
)

__all__ = ["OpenRequest", "OpenResult", "OpenedFile", "audit_unopened", "open_to_folder"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRequest:
    """A medium, where its plain File-set goes, and the keys to try."""

    medium: Path
    out: Path
    operator: str
    passwords: tuple[bytes, ...] = field(default=(), repr=False)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)  # PKCS#8 DER
    certificates: tuple[bytes | None, ...] = ()
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    workers: int = 0
    overwrite: bool = False
    #: Also open envelopes without a digest or signature inside; each is reported as not verified.
    accept_unprotected: bool = False
    #: Asked for a password only when the medium turns out to hold encrypted files and no key was given.
    ask_password: Callable[[], str] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedFile:
    """One file of the medium and where it ended: opened, copied (plain DICOM), skipped or failed."""

    path: str  # relative to the medium's root
    status: str  # "opened", "copied", "skipped", "failed"
    reason: str | None = None
    file_id: str | None = None  # in the output File-set
    sop_instance_uid: str | None = None
    #: For opened files: "verified" (digest or signature checked) or "not-verified" (accepted unprotected).
    integrity: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "file_id": self.file_id,
            "sop_instance_uid": self.sop_instance_uid,
            "integrity": self.integrity,
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
        return tuple(f for f in self.files if f.status == "failed")

    def to_json(self) -> dict[str, object]:
        counts = {
            s: sum(1 for f in self.files if f.status == s) for s in ("opened", "copied", "skipped", "failed")
        }
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


def _open_file(path: Path, extent: Extent | None) -> io.BufferedReader:
    """A file of the medium: on disk, or read in place from the image (``extent``)."""
    return open(path, "rb") if extent is None else io.BufferedReader(ExtentReader(extent))


def _classify(path: Path, extent: Extent | None = None) -> str:
    """ "secure", "dicom" or "other", by content."""
    if extent is None and is_secure_file(path):
        return "secure"
    with _open_file(path, extent) as fp:
        head = fp.read(132)
    if extent is not None and is_enveloped_data(head[:32]):
        return "secure"
    return "dicom" if is_part10(head) else "other"


def _listing(medium: Path, staging: Path) -> tuple[Path, list[Path], dict[Path, Extent]]:
    """The medium's root, its files (hidden ones left out, sorted), and where to read them in place.

    An ISO image's files are read where they lie in the image (no extracted copy to write and remove);
    a zip, or an image whose files are not contiguous, is extracted under ``staging`` first.
    """
    in_place = iso_file_extents(medium) if medium.is_file() and is_iso_image(medium) else None
    if in_place is None:
        root = open_medium(medium, staging / "medium")
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        return root, files, {}
    root = staging / "medium"  # names only: nothing is written there
    extents = {root.joinpath(*f.relative_path.parts): f.extent for f in in_place}
    files = sorted(p for p in extents if not p.name.startswith("."))
    return root, files, extents


def open_to_folder(
    request: OpenRequest,
    *,
    audit: AuditSink,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Progress | None = None,
) -> OpenResult:
    """Open ``request.medium`` into a plain File-set at ``request.out``.

    Secure DICOM Files are unsealed and verified (one PBKDF2 derivation per medium), plain DICOM files
    are copied, other files (README.TXT, a viewer) are left out and listed. The DICOMDIR is checked
    against the files; the files are trusted, and the DICOMDIR is rebuilt when it is missing or wrong.
    A file that fails is named with its reason and the rest still open.

    Raises
    ------
    DecryptionError
        No file of the medium opens with the keys given (one message, as for a single file).

    A medium that cannot be opened (unreadable, no key opens it) is audited as an Import that failed.
    """
    try:
        return _open_to_folder(request, audit=audit, now=now, progress=progress)
    except UsageError:
        raise  # nothing was read: the command was incomplete
    except DcmsealError as exc:
        audit_unopened(audit, medium=request.medium, operator=request.operator, error=exc, now=now)
        raise


# Failures that say the medium itself is not to be trusted (a wrong key and altered content are one
# DecryptionError, so they are not among them): a Security Alert too.
_REJECTING = (UnprotectedContentError, MalformedEnvelopeError, ResourceLimitError)


def audit_unopened(
    audit: AuditSink, *, medium: Path, operator: str, error: DcmsealError, now: Callable[[], datetime]
) -> None:
    """Audit a medium that could not be read in: an Import that failed (PS3.15 A.5.3.5), and a Security
    Alert (A.5.3.11) when the medium was refused for a security reason. A failing sink is logged, never
    raised over ``error``."""
    medium_id, media_type = audit_medium(medium)
    user = AuditUser(user_id=operator)
    events = [
        import_event(
            user=user,
            medium_id=medium_id,
            media_type=media_type,
            patients=audit_patients(()),
            outcome=EventOutcome.SERIOUS_FAILURE,
            description=f"the medium could not be read in: {error.message}",
            now=now,
        )
    ]
    if isinstance(error, _REJECTING):
        events.append(
            security_alert(
                user=user,
                description=f"medium rejected: {error.message}",
                alert_type=ALERT_TYPE_MEDIUM_REJECTED,
                medium_id=medium_id,
                outcome=EventOutcome.MINOR_FAILURE,  # mitigated: nothing of it was read in
                now=now,
            )
        )
    for event in events:
        try:
            audit.emit(event)
        except DcmsealError as audit_exc:
            logger.error("audit: %s", audit_exc)


def _open_to_folder(
    request: OpenRequest,
    *,
    audit: AuditSink,
    now: Callable[[], datetime],
    progress: Progress | None,
) -> OpenResult:
    started = time.perf_counter()
    step = progress or (lambda _stage, _done, _total: None)
    notes: list[str] = []
    results: dict[str, OpenedFile] = {}
    with staging_dir(request.out, overwrite=request.overwrite) as staging:
        root, files, extents = _listing(request.medium, staging)
        plain = staging / "plain"
        plain.mkdir()
        secure: list[tuple[Path, Path]] = []
        names: dict[Path, str] = {}
        for path in files:
            relative = path.relative_to(root).as_posix()
            extent = extents.get(path)
            kind = _classify(path, extent)
            target = plain / path.relative_to(root)
            names[target] = relative
            if kind == "secure":
                secure.append((path, target))
            elif kind == "dicom":
                target.parent.mkdir(parents=True, exist_ok=True)
                with _open_file(path, extent) as source, open(target, "xb") as copy:
                    shutil.copyfileobj(source, copy, CHUNK_SIZE_BYTES)
                results[relative] = OpenedFile(path=relative, status="copied")
            else:
                results[relative] = OpenedFile(
                    path=relative, status="skipped", reason="not a DICOM file (left out of the File-set)"
                )
        if not secure and not any(r.status == "copied" for r in results.values()):
            # An empty folder, or one of other files only, is not a medium: nothing would be "verified".
            raise InputError(
                f"no DICOM file on this medium ({len(files)} other file(s))"
                if files
                else "holds no file: not a medium",
                path=request.medium,
            )
        opened = 0

        def on_outcome(_outcome: object) -> None:
            nonlocal opened
            opened += 1
            step("open", opened, len(secure))

        passwords = request.passwords
        if secure and not passwords and not request.private_keys and request.ask_password is not None:
            passwords = (request.ask_password().encode("ascii"),)
        if secure and not passwords and not request.private_keys:
            raise UsageError(
                f"{len(secure)} file(s) on this medium are encrypted: give --password-file, "
                "--password-env or --key",
                path=request.medium,
            )
        if secure:
            plan = UnsealPlan(
                passwords=passwords,
                private_keys=request.private_keys,
                certificates=request.certificates,
                max_iterations=request.max_iterations,
                accept_unprotected=request.accept_unprotected,
            )
            # Each failure is in the result (and the one-line error when the key opens nothing): no log line each.
            report = unseal_files(
                secure,
                plan,
                workers=request.workers,
                on_outcome=on_outcome,
                extents=extents,
                log_failures=False,
            )
        else:
            report = BatchReport(
                operation="unseal", outcomes=(), pbkdf2_derivations=0, workers=0, elapsed_s=0.0
            )
        for outcome in report.outcomes:
            relative = (
                names[outcome.destination]
                if outcome.destination
                else outcome.source.relative_to(root).as_posix()
            )
            if outcome.status == "failed":
                results[relative] = OpenedFile(path=relative, status="failed", reason=outcome.reason)
            else:
                verified = not isinstance(outcome.result, UnsealResult) or outcome.result.verified
                results[relative] = OpenedFile(
                    path=relative, status="opened", integrity="verified" if verified else "not-verified"
                )
        if (
            secure
            and len(report.failed) == len(secure)
            and all((f.reason or "").endswith(DecryptionError().message) for f in report.failed)
        ):
            raise DecryptionError(path=request.medium)

        # What the files say about themselves (trusted over the DICOMDIR).
        facts: dict[tuple[str, ...], FileFacts] = {}
        instances: dict[tuple[str, ...], Path] = {}
        for path in sorted(plain.rglob("*")):
            if not path.is_file() or path.name == "DICOMDIR":
                continue
            relative = path.relative_to(plain).as_posix()
            if results.get(relative, OpenedFile(path=relative, status="failed")).status not in (
                "opened",
                "copied",
            ):
                continue
            try:
                meta = read_file_meta(path)
            except NotPart10Error as exc:
                results[relative] = OpenedFile(path=relative, status="failed", reason=exc.message)
                path.unlink()
                continue
            file_id = path_to_file_id(plain, path, lenient=True)
            facts[file_id] = FileFacts(
                sop_class_uid=meta.sop_class_uid,
                sop_instance_uid=meta.sop_instance_uid,
                transfer_syntax_uid=meta.transfer_syntax_uid,
            )
            instances[file_id] = path
        disagreements: list[Disagreement] = []
        rebuild = False
        dicomdir_path = plain / "DICOMDIR"
        fileset_id = ""
        dicomdir: DicomDir | None = None
        if (
            dicomdir_path.is_file()
            and results.get("DICOMDIR", OpenedFile(path="", status="copied")).status != "failed"
        ):
            try:
                dicomdir = read_dicomdir(dicomdir_path)
                fileset_id = dicomdir.fileset_id
                disagreements = check_agreement(dicomdir, facts)
                rebuild = bool(disagreements)
            except (DcmsealError, ValueError) as exc:
                notes.append(f"the DICOMDIR cannot be read ({exc}); it is rebuilt from the files")
                rebuild = True
        else:
            notes.append("the medium has no usable DICOMDIR; one is built from the files")
            rebuild = True
        if rebuild and disagreements:
            notes.append(
                f"the DICOMDIR disagrees with the files in {len(disagreements)} place(s); it is rebuilt"
            )

        final = staging / "final"
        if rebuild and instances:
            profile = choose_profile({f.transfer_syntax_uid for f in facts.values()}, output="dir")
            fileset = build_fileset(list(instances.values()), final, fileset_id=fileset_id, profile=profile)
            notes.extend(n.message for n in fileset.notes)
            new_ids = {p.source: "/".join(p.file_id) for p in fileset.files}
            summary_source = [
                InstanceFacts(
                    patient_id=p.patient_id,
                    study_instance_uid=p.study_instance_uid,
                    sop_class_uid=p.sop_class_uid,
                    modality=p.modality,
                )
                for p in fileset.files
            ]
        else:
            if dicomdir_path.exists() and not instances:
                dicomdir_path.unlink()
            os.rename(plain, final)
            new_ids = {final / Path(*fid): "/".join(fid) for fid in instances}
            instances = {fid: final / Path(*fid) for fid in instances}
            # The DICOMDIR agreed with the files: its records say who and what without reading each file.
            # (No DICOMDIR here means no instance either: otherwise it would have been rebuilt above.)
            summary_source = (
                [
                    InstanceFacts(
                        patient_id=entry.patient_id,
                        study_instance_uid=entry.study_instance_uid,
                        sop_class_uid=entry.referenced_sop_class_uid,
                    )
                    for entry in dicomdir.entries
                    if entry.study_instance_uid
                ]
                if dicomdir is not None
                else []
            )
        for file_id, path in instances.items():
            relative = "/".join(file_id)
            entry = results.get(relative)
            if entry is not None and entry.status in ("opened", "copied"):
                results[relative] = OpenedFile(
                    path=relative,
                    status=entry.status,
                    file_id=new_ids.get(path) or new_ids.get(file_id_to_path(final, file_id)),
                    sop_instance_uid=facts[file_id].sop_instance_uid,
                    integrity=entry.integrity,
                )
        final.mkdir(exist_ok=True)
        write_folder(final, request.out, overwrite=request.overwrite)

    studies = summarize(summary_source)
    failed = sum(1 for f in results.values() if f.status == "failed")
    medium_id, media_type = audit_medium(request.medium, fileset_id)
    unverified = sum(1 for f in results.values() if f.integrity == "not-verified")
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
                studies=[
                    StudyRef.from_counts(s.study_instance_uid, dict(s.sop_class_counts)) for s in studies
                ],
                encrypted=bool(secure),
                description="; ".join(problems) or None,
                now=now,
            )
        )
    except DcmsealError as exc:
        notes.append(f"the Import audit message could not be written: {exc}")
        logger.error("audit: %s", exc)
    return OpenResult(
        medium=request.medium,
        output=request.out,
        files=tuple(results[k] for k in sorted(results)),
        disagreements=tuple(disagreements),
        dicomdir_rebuilt=rebuild and bool(instances),
        kdf_derivations=report.pbkdf2_derivations,
        notes=tuple(notes),
        elapsed_s=time.perf_counter() - started,
        fileset_id=fileset_id,
    )
