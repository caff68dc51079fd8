"""Open any medium (folder, ISO, zip): unseal and verify, recognise DICOM by content, write a conformant File-set."""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pydicom.uid import UID

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
from dcmseal.errors import (
    DcmsealError,
    DecryptionError,
    HostileMediumError,
    InputError,
    NotPart10Error,
    ResourceLimitError,
    UsageError,
    one_line,
)
from dcmseal.fsutil import CHUNK_SIZE_BYTES, Extent, make_dirs
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
from dcmseal.media.target import MANIFEST_NAME, write_folder
from dcmseal.media.transcode import conform
from dcmseal.outcomes import ReasonKind
from dcmseal.part10 import (
    BatchReport,
    FileStatus,
    UnsealPlan,
    UnsealResult,
    read_file_meta,
    unseal_files,
)
from dcmseal.reader.containers import (
    MEMBER_READ_ERRORS,
    NESTED_SEPARATOR,
    Archive,
    ExtentsReader,
    Member,
    NestingBudget,
    NestingLimits,
    is_zip_head,
    iter_folder,
    open_archive,
    open_nested,
)
from dcmseal.reader.detect import SNIFF_BYTES, Sniffed, dataset_after_meta, sniff
from dcmseal.reader.extraction import DEFAULT_MAX_EXTRACT_BYTES
from dcmseal.reader.fat import extract_fat_image, is_fat_image
from dcmseal.reader.iso import is_iso_image, is_udf_only_image
from dcmseal.reader.wrap import wrap_dataset
from dcmseal.scan import Verdict, scan_file
from dcmseal.scan.layout import LayoutCache
from dcmseal.scan.signatures import Family, identify
from dcmseal.scan.walker import UNPARSABLE_CODES

__all__ = ["STATUSES", "OpenRequest", "OpenResult", "OpenedFile", "audit_unopened", "open_to_folder"]

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
    #: PBKDF2 iterations the whole medium may cost (a hostile medium is cut off there, each file named).
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM
    #: Asked for a password only when the medium turns out to hold encrypted files and no key was given.
    ask_password: Callable[[], str] | None = field(default=None, repr=False)
    #: Scan each DICOM file and quarantine the malicious ones (a polyglot's executable preamble). ``import``
    #: turns it off: it scans, sanitizes and quarantines on its own, with the sanitized copy sent.
    screen: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedFile:
    """One file of the medium and where it ended (one of :data:`STATUSES`), with a one-line reason."""

    path: str  # its original path on the medium (``a.zip!DICOM/IM1`` inside a zip on it)
    status: str  # "opened", "copied", "quarantined", "skipped", "failed"
    reason: str | None = None
    kind: ReasonKind | None = (
        None  # the reason's kind, for a program (not in the JSON: reasons are for people)
    )
    file_id: str | None = None  # in the output File-set
    sop_instance_uid: str | None = None
    #: For opened files: "verified" (digest or signature checked) or "not-verified" (accepted unprotected).
    integrity: str | None = None
    encrypted: bool = False  # a Secure DICOM File on the medium (its plaintext exists only in the File-set)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "file_id": self.file_id,
            "sop_instance_uid": self.sop_instance_uid,
            "integrity": self.integrity,
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
        return tuple(f for f in self.files if f.status == "failed")

    @property
    def quarantined(self) -> tuple[OpenedFile, ...]:
        return tuple(f for f in self.files if f.status == "quarantined")

    def to_json(self) -> dict[str, object]:
        counts = {s: sum(1 for f in self.files if f.status == s) for s in STATUSES}
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


#: Where each file of a medium can end (one place each); see :class:`OpenedFile`.
STATUSES = ("opened", "copied", "quarantined", "skipped", "failed")
#: Media Storage Directory Storage (PS3.4 Annex B): a DICOMDIR, a hint about the files, not an instance.
_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass(slots=True)
class _Source:
    """One file of the medium, by its path on the medium, and where its bytes can be read."""

    label: str  # its path on the medium (``portal.zip!DICOM/IM1`` inside a zip)
    path: Path  # on disk: the file itself (a folder's), a copy in the staging folder, or only a name (ISO)
    extent: Extent | None = None  # a file of an ISO image, read in place
    sniffed: Sniffed | None = None
    plain: Path | None = None  # its plain PS3.10 bytes in the staging folder, once there
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax_uid: str = ""
    changes: list[str] = field(default_factory=list)
    encrypted: bool = False  # a Secure DICOM File on the medium

    def stream(self) -> io.BufferedReader:
        if self.extent is not None:
            extent = self.extent
            return io.BufferedReader(ExtentsReader(extent.container, ((extent.offset, extent.length),)))
        return _open_no_follow(self.path)


def _open_no_follow(path: Path) -> io.BufferedReader:
    """``path`` for reading; a file of a folder medium swapped for a link after the listing is not followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    return open(fd, "rb")


class _Inventory:
    """Every file of a medium: the sources to read, and those already settled (links, unreadable, refused)."""

    def __init__(self, medium: Path, staging: Path) -> None:
        self.medium = medium
        self.raw = staging / "raw"
        self.raw.mkdir()
        self.names = staging / "medium"  # names only: nothing is written there
        self.sources: list[_Source] = []
        self.settled: dict[str, OpenedFile] = {}
        self.budget = NestingBudget(NestingLimits())
        self._count = 0
        self.copied = 0  # bytes read out of archives into the staging folder
        self.max_copied = DEFAULT_MAX_EXTRACT_BYTES

    def settle(self, label: str, status: str, reason: str) -> None:
        self.settled[label] = OpenedFile(path=label, status=status, reason=reason)

    def scratch(self) -> Path:
        self._count += 1
        return self.raw / f"F{self._count:07d}"

    def read(self) -> None:
        medium = self.medium
        if medium.is_dir():
            self._folder(medium)
            return
        if not medium.exists():
            raise InputError("no such file or folder", path=medium)
        if not medium.is_file():
            raise InputError("not a medium: neither a file nor a folder", path=medium)
        if is_fat_image(medium):  # a USB medium as an image (--format usb-image): copied out with mtools
            self._folder(extract_fat_image(medium, self.raw.parent / "fat"))
            return
        if is_udf_only_image(medium) or is_iso_image(medium) or zipfile.is_zipfile(medium):
            with open_archive(medium) as archive:
                self._archive(archive, "", depth=0)
            return
        raise InputError("not a medium: expected an ISO 9660 image, a folder or a zip archive", path=medium)

    def _folder(self, root: Path) -> None:
        for member in iter_folder(root):
            if member.symlink:
                self.settle(
                    member.name, "skipped", "a symbolic link: not followed (it may point outside the medium)"
                )
                continue
            path = Path(member.path or "")
            try:
                with _open_no_follow(path) as fp:
                    head = fp.read(SNIFF_BYTES)
            except OSError as exc:
                self.settle(member.name, "failed", f"cannot read: {exc.strerror or exc}")
                continue
            if is_zip_head(head) and not sniff(head).is_dicom:
                self._zip_in_folder(path, member.name)
                continue
            self.sources.append(_Source(member.name, path))

    def _zip_in_folder(self, path: Path, label: str) -> None:
        try:
            with open_archive(path) as archive:
                self._archive(archive, f"{label}{NESTED_SEPARATOR}", depth=1)
        except (ResourceLimitError, InputError) as exc:
            # a zip on the medium is one of its files: refused whole (nothing of it read), the rest goes on
            self.settle(label, "failed", f"a zip archive refused: {exc.message}")

    def _archive(self, archive: Archive, prefix: str, *, depth: int) -> None:
        refused = next((m for m in archive.members if m.structural), None)
        if refused is not None:
            # A name that escapes the root or a file past the end of the image: the medium is malformed or
            # hostile, and ``scan`` reports the same (container.structure). Nothing of it is opened.
            raise HostileMediumError(refused.problem or "malformed", path=self.medium)
        for member in archive.members:
            label = f"{prefix}{member.name}"
            if member.symlink:
                self.settle(label, "skipped", f"{member.problem or 'a symbolic link'}")
                continue
            if member.problem is not None:
                self.settle(label, "failed", member.problem)
                continue
            try:
                self._member(archive, member, label, depth)
            except MEMBER_READ_ERRORS as exc:
                self.settle(label, "failed", f"cannot read it from the archive: {one_line(exc)}")

    def _member(self, archive: Archive, member: Member, label: str, depth: int) -> None:
        # One stream per member, its head sniffed and then, if it is copied out, rewound: a UDF-only image's
        # file is one 7z run, which a second open would repeat.
        with archive.open(member) as fp:
            head = fp.read(SNIFF_BYTES)
            if not (is_zip_head(head) and not sniff(head).is_dicom):
                self._plain_member(archive, member, label, fp)
                return
        try:
            inner = open_nested(archive, member, label=label, depth=depth + 1, budget=self.budget)
        except (ResourceLimitError, InputError) as exc:
            self.settle(label, "failed", f"a zip archive that cannot be opened: {exc.message}")
            return
        try:
            self._archive(inner, f"{label}{NESTED_SEPARATOR}", depth=depth + 1)
        except InputError as exc:
            # a zip on the medium is one of its files: refused whole (nothing of it read), the rest goes on
            self.settle(label, "failed", f"a zip archive refused: {exc.message}")
        finally:
            inner.close()

    def _plain_member(self, archive: Archive, member: Member, label: str, fp: BinaryIO) -> None:
        extents = member.key if archive.kind == "iso" else None
        if extents is not None and len(extents) <= 1:
            start = extents[0][0] if extents else 0
            name = self.names.joinpath(*label.split("/"))
            self.sources.append(_Source(label, name, Extent(archive.path, start, member.size)))
            return
        if self.copied + member.size > self.max_copied:
            self.settle(
                label,
                "failed",
                f"not read: the medium's archives hold more than {self.max_copied} bytes to read out",
            )
            return
        copy = self.scratch()  # a zip member (or a file of an image in several extents): read it out once
        fp.seek(0)
        with open(copy, "xb") as out:
            written = _copy_at_most(fp, out, member.size)
        self.copied += written
        if written != member.size:
            held = "more" if written > member.size else str(written)
            self.settle(label, "failed", f"its archive says {member.size} bytes, it holds {held}")
            return
        self.sources.append(_Source(label, copy))


def _copy_at_most(source: BinaryIO, out: BinaryIO, size: int) -> int:
    """Copy ``size`` bytes, and one more if there is one (a member longer than its archive says)."""
    written = 0
    while written <= size:
        chunk = source.read(min(CHUNK_SIZE_BYTES, size + 1 - written))
        if not chunk:
            break
        out.write(chunk)
        written += len(chunk)
    return written


#: How the reason of a file left out because it is not DICOM begins (the import tells these apart by it).
NOT_DICOM = "not a DICOM file"


def _describe(label: str, head: bytes) -> str:
    """Why a file is left out, for a person: what its content is."""
    if label == MANIFEST_NAME:
        return f"{NOT_DICOM}: the manifest of the files dcmseal wrote on this medium; left out"
    if label.rpartition("/")[2].lower() == "autorun.inf":
        return f"{NOT_DICOM}: an autorun.inf (it launches a program when the disc is inserted); left out"
    signature = identify(head, text=True) if head else None
    if signature is None:
        return f"{NOT_DICOM} (no DICM at offset 128, no CMS envelope, no data set): left out"
    if signature.family in (Family.EXECUTABLE, Family.SCRIPT):
        return f"{NOT_DICOM}: a {signature.description}; never run, left out"
    return f"{NOT_DICOM}: a {signature.description}; left out"


def _prepare(source: _Source, plain: Path) -> str:
    """Classify ``source`` by content and put its plain bytes at ``plain``: its kind (secure files wait)."""
    with source.stream() as fp:
        head = fp.read(SNIFF_BYTES)
        size = source.extent.length if source.extent is not None else os.fstat(fp.fileno()).st_size
        sniffed = source.sniffed = sniff(head, size)
        if sniffed.kind == "part10":
            fp.seek(0)
            with open(plain, "xb") as out:
                shutil.copyfileobj(fp, out, CHUNK_SIZE_BYTES)
            try:
                read_file_meta(plain)
            except NotPart10Error:
                # DICM but a broken or missing group 0002 (foreign-media.md): the data set behind it decides
                found = dataset_after_meta(head, size)
                if found is not None:
                    start, transfer_syntax = found
                    plain.unlink()
                    with open(plain, "xb") as out:
                        wrap_dataset(fp, transfer_syntax, out, start=start)
                    source.changes.append(
                        f"a broken or missing File Meta group: rebuilt from the data set ({UID(transfer_syntax).name})"
                    )
        elif sniffed.kind == "dataset":
            assert sniffed.transfer_syntax is not None
            with open(plain, "xb") as out:
                wrap_dataset(fp, sniffed.transfer_syntax, out)
            source.changes.append(
                f"a data set without File Meta ({UID(sniffed.transfer_syntax).name}): given a PS3.10 header"
            )
        elif sniffed.kind == "other":
            source.changes.append(_describe(source.label, head))
    return sniffed.kind


def _unseal(
    request: OpenRequest, secure: list[tuple[Path, Path]], extents: dict[Path, Extent], step: Progress
) -> BatchReport:
    """Unseal the Secure DICOM Files found (asking for a password only if there are some and none was given)."""
    if not secure:
        return BatchReport(operation="unseal", outcomes=(), pbkdf2_derivations=0, workers=0, elapsed_s=0.0)
    passwords = request.passwords
    if not passwords and not request.private_keys and request.ask_password is not None:
        passwords = (request.ask_password().encode("ascii"),)
    if not passwords and not request.private_keys:
        raise UsageError(
            f"{len(secure)} file(s) on this medium are encrypted: give --password-file, --password-env or --key",
            path=request.medium,
        )
    plan = UnsealPlan(
        passwords=passwords,
        private_keys=request.private_keys,
        certificates=request.certificates,
        max_iterations=request.max_iterations,
        accept_unprotected=request.accept_unprotected,
        kdf_budget_per_medium=request.kdf_budget_per_medium,
    )
    opened = 0

    def on_outcome(_outcome: object) -> None:
        nonlocal opened
        opened += 1
        step("open", opened, len(secure))

    # Each failure is in the result (and the one-line error when the key opens nothing): no log line each.
    return unseal_files(
        secure, plan, workers=request.workers, on_outcome=on_outcome, extents=extents, log_failures=False
    )


def _examine(
    ready: list[_Source], request: OpenRequest, results: dict[str, OpenedFile]
) -> tuple[list[_Source], list[_Source]]:
    """The instances and the DICOMDIRs among the plain files; a file whose File Meta does not parse fails, one
    the scanner calls malicious (an executable preamble, a polyglot) or unparsable (truncated, nested past
    the bound) is quarantined (:func:`dcmseal.scan.scan_file`)."""
    instances: list[_Source] = []
    dicomdirs: list[_Source] = []
    layouts = LayoutCache()  # the files of a series share their structure: walked once, then checked
    for source in ready:
        assert source.plain is not None
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
                        status="quarantined",
                        reason=f"{worst_finding.message}: left out of the File-set",
                        sop_instance_uid=meta.sop_instance_uid,
                        encrypted=source.encrypted,
                    )
                    continue
        except Exception as exc:
            logger.debug("%s: not usable", source.label, exc_info=True)
            source.plain.unlink(missing_ok=True)
            results[source.label] = OpenedFile(
                path=source.label, status="failed", reason=one_line(exc), encrypted=source.encrypted
            )
            continue
        instances.append(source)
    return instances, dicomdirs


def _place(
    results: dict[str, OpenedFile], source: _Source, *, file_id: str | None = None, reason: str | None = None
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
    instances: list[_Source],
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
    by_conformed: dict[Path, _Source] = {}
    for source in instances:
        assert source.plain is not None
        target = conformed_dir / source.plain.name
        try:
            outcome = conform(source.plain, target, profile, durable=False, link=True)
        except Exception as exc:
            logger.debug("%s: cannot be converted", source.label, exc_info=True)
            results[source.label] = OpenedFile(
                path=source.label, status="failed", reason=one_line(exc), encrypted=source.encrypted
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
                path=noted.label, status="failed", reason=note.message, encrypted=noted.encrypted
            )
        elif noted is not None and note.kind is NoteKind.DUPLICATE:
            first = next(s for s in instances if s.sop_instance_uid == noted.sop_instance_uid)
            results[noted.label] = OpenedFile(
                path=noted.label,
                status="skipped",
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


def open_to_folder(
    request: OpenRequest,
    *,
    audit: AuditSink,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Progress | None = None,
) -> OpenResult:
    """Open ``request.medium`` into a conformant File-set at ``request.out``.

    The medium is a folder (a mounted disc, a USB stick), an ISO 9660 image (Joliet, Rock Ridge, ISO/UDF
    bridge), a UDF-only image (through 7z) or a zip (zips inside it opened, within bounds), read by
    :mod:`dcmseal.reader`; its files are
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
        return _open_to_folder(request, audit=audit, now=now, progress=progress)
    except UsageError:
        raise  # nothing was read: the command was incomplete
    except DcmsealError as exc:
        audit_unopened(audit, medium=request.medium, operator=request.operator, error=exc, now=now)
        raise


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
        inventory = _Inventory(request.medium, staging)
        inventory.read()
        results.update(inventory.settled)
        plain_dir = staging / "plain"
        plain_dir.mkdir()
        secure: list[tuple[Path, Path]] = []
        extents: dict[Path, Extent] = {}
        by_path: dict[Path, _Source] = {}  # a secure file's source path (unique: a file, a copy, an ISO name)
        ready: list[_Source] = []
        for number, source in enumerate(inventory.sources, 1):
            step("read", number, len(inventory.sources))
            plain = plain_dir / f"F{number:07d}"
            try:
                kind = _prepare(source, plain)
            except Exception as exc:
                logger.debug("%s: cannot be read", source.label, exc_info=True)
                plain.unlink(missing_ok=True)
                results[source.label] = OpenedFile(
                    path=source.label, status="failed", reason=one_line(exc), encrypted=source.encrypted
                )
                continue
            if kind == "other":
                results[source.label] = OpenedFile(
                    path=source.label,
                    status="skipped",
                    reason=source.changes[0],
                    kind=ReasonKind.NOT_DICOM,
                    encrypted=source.encrypted,
                )
                continue
            source.plain = plain
            by_path[source.path] = source
            if kind == "secure":
                source.encrypted = True
                secure.append((source.path, plain))
                if source.extent is not None:
                    extents[source.path] = source.extent
            else:
                ready.append(source)
                results[source.label] = OpenedFile(
                    path=source.label, status="copied", encrypted=source.encrypted
                )
        if not secure and not ready:
            # An empty folder, or one of other files only, is not a medium: nothing would be "verified".
            count = len(inventory.sources) + len(inventory.settled)
            raise InputError(
                f"no DICOM file on this medium ({count} other file(s))"
                if count
                else "holds no file: not a medium",
                path=request.medium,
            )
        report = _unseal(request, secure, extents, step)
        for outcome in report.outcomes:
            source = by_path[outcome.source]
            if outcome.status is FileStatus.FAILED:
                results[source.label] = OpenedFile(
                    path=source.label,
                    status="failed",
                    reason=outcome.reason,
                    kind=outcome.kind,
                    encrypted=source.encrypted,
                )
            else:
                verified = not isinstance(outcome.result, UnsealResult) or outcome.result.verified
                results[source.label] = OpenedFile(
                    path=source.label,
                    status="opened",
                    integrity="verified" if verified else "not-verified",
                    encrypted=source.encrypted,
                )
                ready.append(source)
        if (
            secure
            and len(report.failed) == len(secure)
            and all(f.kind is ReasonKind.WRONG_KEY for f in report.failed)
        ):
            raise DecryptionError(path=request.medium)

        instances, dicomdirs = _examine(ready, request, results)
        root_dicomdir = next((d for d in dicomdirs if d.label.upper() == "DICOMDIR"), None)
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
        if root_dicomdir is not None and root_dicomdir.plain is not None:
            try:
                dicomdir = read_dicomdir(root_dicomdir.plain)
                fileset_id = dicomdir.fileset_id
                disagreements = check_agreement(dicomdir, facts)
            except Exception as exc:
                logger.debug("the DICOMDIR cannot be read", exc_info=True)
                notes.append(f"the DICOMDIR cannot be read ({one_line(exc)}); one is built from the files")
        else:
            notes.append("the medium has no usable DICOMDIR; one is built from the files")
        if disagreements:
            notes.append(
                f"the DICOMDIR disagrees with the files in {len(disagreements)} place(s); it is rebuilt"
            )
        keep = (
            dicomdir is not None
            and not disagreements
            and all(not s.changes and is_conformant_file_id(s.label.split("/")) for s in instances)
        )
        final = staging / "final"
        final.mkdir()
        if keep:
            assert dicomdir is not None
            assert root_dicomdir is not None
            for source in [*instances, root_dicomdir]:
                assert source.plain is not None
                target = final.joinpath(*source.label.split("/"))
                make_dirs(target.parent)
                os.rename(source.plain, target)
                _place(results, source, file_id=source.label)
            summary_source = [
                InstanceFacts(
                    patient_id=entry.patient_id,
                    study_instance_uid=entry.study_instance_uid,
                    sop_class_uid=entry.referenced_sop_class_uid,
                )
                for entry in dicomdir.entries
                if entry.study_instance_uid
            ]
        else:
            summary_source = _rebuild(instances, staging, final, fileset_id, results, notes)
            for source in dicomdirs:
                reason = (
                    "the medium's DICOMDIR: a hint, checked against the files; the File-set has a new one"
                    if source is root_dicomdir
                    else "a DICOMDIR below the medium's root: its files are indexed in the File-set's DICOMDIR"
                )
                _place(results, source, reason=reason)
        for source in dicomdirs:
            if keep and source is not root_dicomdir:
                _place(results, source, reason="a DICOMDIR below the medium's root: left out of the File-set")
        write_folder(final, request.out, overwrite=request.overwrite)
        rebuilt = not keep and bool(instances)

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
                studies=[  # an instance without a Study Instance UID names no study (PS3.15 A.5.1: an ID)
                    StudyRef.from_counts(s.study_instance_uid, dict(s.sop_class_counts))
                    for s in studies
                    if s.study_instance_uid
                ],
                encrypted=bool(secure),
                # Some files not read in, or read without integrity: a minor failure (PS3.15 Table A.5.2-1).
                outcome=EventOutcome.MINOR_FAILURE if problems else EventOutcome.SUCCESS,
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
        dicomdir_rebuilt=rebuilt,
        kdf_derivations=report.pbkdf2_derivations,
        notes=tuple(notes),
        elapsed_s=time.perf_counter() - started,
        fileset_id=fileset_id,
    )
