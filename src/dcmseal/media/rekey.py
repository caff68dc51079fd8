"""Rekey a medium for new recipients: every envelope re-addressed, the content ciphertext reused as it is."""

from __future__ import annotations

import logging
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from dcmseal import cms
from dcmseal.audit import AuditSink, AuditUser, StudyRef, audit_patients, export_event, media_type_of
from dcmseal.config import (
    DEFAULT_KDF_BUDGET_PER_MEDIUM,
    DEFAULT_MAX_PBKDF2_ITERATIONS,
    DEFAULT_PBKDF2_ITERATIONS,
    DEFAULT_SALT_BYTES,
)
from dcmseal.errors import DcmsealError, InputError, UsageError
from dcmseal.events import Emitter, FileSealed, HandlerSpec
from dcmseal.fsutil import atomic_write, make_dirs
from dcmseal.keys.escrow import certificate_fingerprint, seal_password_for_escrow
from dcmseal.keys.passwords import check_password, new_pbkdf2_params, password_octets, password_tuple
from dcmseal.keys.registry import MediumRecord, RecipientRecord, Registry, StudyRecord
from dcmseal.media.burn import README_NAME
from dcmseal.media.fileset import read_dicomdir
from dcmseal.media.iso import sanitize_volume_id
from dcmseal.media.output import place_medium, staging_dir
from dcmseal.media.readme import MediumText, cover_letter, readers_subjects, readme_text
from dcmseal.media.summary import InstanceFacts, StudyFacts, da_date, summarize
from dcmseal.media.webviewer import INDEX_NAME, VIEWER_DIR_NAME
from dcmseal.part10 import UnsealPlan, is_secure_file, unseal_file
from dcmseal.reader.iso import is_iso_image
from dcmseal.reader.medium import medium_as_folder
from dcmseal.scan.viewer import find_viewers, known_bundle, sha256_of

__all__ = ["RekeyRequest", "RekeyResult", "rekey"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RekeyRequest:
    """An existing medium, a key that opens it, and who the new medium is for."""

    medium: Path
    out: Path
    operator: str
    #: Passwords that open the medium: a ``str`` is NFC-normalised and UTF-8 encoded (RFC 8018 §3).
    passwords: tuple[str | bytes, ...] = field(default=(), repr=False)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)
    certificates: tuple[bytes | None, ...] = ()
    #: The new medium's password: ISO-IR 6 (PS3.15 D.1), a ``str`` or its ASCII bytes.
    new_password: str | bytes | None = field(default=None, repr=False)
    recipients: tuple[x509.Certificate, ...] = ()
    escrow_certificate: x509.Certificate | None = None
    keep_recipients: bool = False
    output_format: str | None = None  # None: as the medium (ISO image in, ISO image out)
    sender: str | None = None
    iterations: int = DEFAULT_PBKDF2_ITERATIONS
    prf: cms.Prf = cms.Prf.SHA256
    salt_bytes: int = DEFAULT_SALT_BYTES
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    overwrite: bool = False
    #: Re-address envelopes without a digest or signature inside too (each named in the notes).
    accept_unprotected: bool = False
    #: PBKDF2 iterations opening the medium may cost.
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM
    #: Accept a new password the policy refuses (:func:`dcmseal.keys.check_password`).
    allow_weak_password: bool = False
    #: Why the policy would refuse ``new_password``, when ``allow_weak_password`` let it through (to warn).
    password_problems: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if self.new_password is None and not self.recipients and not self.keep_recipients:
            raise UsageError("rekey needs a new password, a --recipient, or --keep-recipients")
        # The one conversion of the passwords: str or bytes, the same octets from here on.
        object.__setattr__(self, "passwords", self.password_bytes)
        if self.new_password is not None:
            # The same policy as seal and burn, with the PBKDF2 parameters the new medium will use.
            octets, strength = check_password(
                self.new_password,
                allow_weak=self.allow_weak_password,
                iterations=self.iterations,
                prf=self.prf.value,
            )
            object.__setattr__(self, "new_password", octets)
            object.__setattr__(self, "password_problems", strength.problems)

    @property
    def password_bytes(self) -> tuple[bytes, ...]:
        """The octets of the passwords that open the medium (:func:`dcmseal.keys.password_octets`)."""
        return password_tuple(self.passwords)

    @property
    def new_password_bytes(self) -> bytes | None:
        """The new password's ISO-IR 6 octets (``new_password`` converted at init)."""
        return None if self.new_password is None else password_octets(self.new_password)


@dataclass(frozen=True, slots=True, kw_only=True)
class RekeyResult:
    """The new medium."""

    medium_id: str
    source: Path
    output: Path
    output_format: str
    files: int
    recipients: tuple[str, ...]
    pbkdf2_derivations: int
    cover_letter: str
    notes: tuple[str, ...]
    elapsed_s: float

    def to_json(self) -> dict[str, object]:
        return {
            "schema": "dcmseal.rekey/1",
            "medium_id": self.medium_id,
            "source": str(self.source),
            "output": str(self.output),
            "format": self.output_format,
            "files": self.files,
            "recipients": list(self.recipients),
            "pbkdf2_derivations": self.pbkdf2_derivations,
            "notes": list(self.notes),
            "elapsed_s": round(self.elapsed_s, 3),
            "cover_letter": self.cover_letter,
        }


def rekey(
    request: RekeyRequest,
    *,
    registry: Registry,
    audit: AuditSink,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    handlers: Sequence[HandlerSpec] = (),
) -> RekeyResult:
    """Write a new medium with the same content for new recipients ("a new doctor needs the disc").

    Any credential that opens the medium recovers each file's content-encryption key; the envelopes
    are re-addressed (:func:`dcmseal.cms.readdress`) and the encrypted content is copied unchanged,
    so the new medium verifies exactly as the old one. The escrow certificate is always a recipient;
    the old recipients are kept only with ``keep_recipients``. The new medium gets its own ID,
    registry record and Export audit message.

    ``handlers`` (:mod:`dcmseal.events`) receive :class:`~dcmseal.events.Progress` for the stages ``seal``
    (the medium's files, one by one) and ``write``, and :class:`~dcmseal.events.FileSealed` for each file
    re-addressed: ``path`` is the file as read from the old medium, ``output`` where it ends up (its place in
    a folder medium, or the image).
    """
    events = Emitter(handlers)
    started = time.perf_counter()
    moment = now()
    context = cms.Context()  # the run's: each key is derived once for the whole medium
    before = context.kdf_cache.derivations
    credentials = UnsealPlan(
        passwords=request.password_bytes, private_keys=request.private_keys, certificates=request.certificates
    ).credentials()
    new_recipients: list[cms.Recipient] = []
    new_password = request.new_password_bytes
    if new_password is not None:
        kdf = new_pbkdf2_params(iterations=request.iterations, prf=request.prf, salt_bytes=request.salt_bytes)
        new_recipients.append(cms.PasswordRecipient(password=new_password, kdf=kdf))
    certificates = request.recipients + (
        (request.escrow_certificate,) if request.escrow_certificate is not None else ()
    )
    new_recipients += [cms.CertificateRecipient(certificate=c) for c in certificates]
    output_format = request.output_format or ("iso" if is_iso_image(request.medium) else "dir")
    notes: list[str] = []
    unverified = 0  # files re-addressed without a digest or signature to verify
    budget = cms.KdfBudget.for_limits(request.max_iterations, request.kdf_budget_per_medium)
    with staging_dir(request.out, overwrite=request.overwrite, output_format=output_format) as staging:
        root = medium_as_folder(request.medium, staging / "in")
        medium_dir = staging / "medium"
        count = 0
        dicomdir_plain: Path | None = None
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        viewer = _viewer_names(root, files)
        for index, path in enumerate(files):
            events.progress("seal", index, len(files))
            relative = path.relative_to(root)
            target = medium_dir / relative
            make_dirs(target.parent)
            if relative.as_posix() == README_NAME:
                continue  # rewritten below for the new medium
            if relative.as_posix() in viewer:
                shutil.copyfile(path, target)  # the offline viewer is plain by design: carried over as it is
                continue
            if not is_secure_file(path):
                shutil.copyfile(path, target)
                notes.append(f"{relative.as_posix()}: not encrypted, copied as it is")
                continue
            try:
                with open(path, "rb") as source, atomic_write(target) as sink:
                    readdressed = cms.readdress(
                        source,
                        sink,
                        credentials,
                        new_recipients,
                        context=context,
                        max_iterations=request.max_iterations,
                        size=path.stat().st_size,
                        keep_existing=request.keep_recipients,
                        accept_unprotected=request.accept_unprotected,
                        kdf_budget=budget,
                    )
            except DcmsealError as exc:
                raise exc.with_path(path) from None
            if not readdressed.inner.verified:
                unverified += 1
                notes.append(
                    f"{relative.as_posix()}: integrity NOT verified (no digest or signature inside); "
                    "re-addressed as it is"
                )
            count += 1
            events.emit(
                FileSealed(
                    path=path, output=request.out / relative if output_format == "dir" else request.out
                )
            )
            if relative.as_posix() == "DICOMDIR":
                dicomdir_plain = staging / "DICOMDIR.plain"
                unseal_file(
                    path,
                    dicomdir_plain,
                    credentials=credentials,
                    context=context,
                    max_iterations=request.max_iterations,
                    accept_unprotected=request.accept_unprotected,
                    kdf_budget=budget,
                )
        events.progress("seal", len(files), len(files))
        if count == 0:
            raise InputError("no Secure DICOM File on this medium: nothing to rekey", path=request.medium)
        if viewer:
            notes.append(_viewer_note(root, viewer))
        fileset_uid, fileset_id = "", ""
        studies: list[tuple[str, str, StudyFacts]] = []
        if dicomdir_plain is not None:
            dicomdir = read_dicomdir(dicomdir_plain)
            fileset_uid, fileset_id = dicomdir.fileset_uid, dicomdir.fileset_id
            studies = [
                (s.study_instance_uid, s.patient_id, s)
                for s in summarize(
                    InstanceFacts(
                        patient_id=entry.patient_id,
                        study_instance_uid=entry.study_instance_uid,
                        sop_class_uid=entry.referenced_sop_class_uid,
                        study_date=entry.study_date,
                    )
                    for entry in dicomdir.entries
                    if entry.study_instance_uid and entry.referenced_sop_instance_uid
                )
            ]
        else:
            notes.append("the medium has no DICOMDIR: the registry record has no study summary")
        # Instances, as burn counts them: the DICOMDIR is a file of the medium, not an instance.
        instances = count - (1 if dicomdir_plain is not None else 0)
        medium_id = registry.new_medium_id()
        subjects = tuple(c.subject.rfc4514_string() for c in certificates)
        text = MediumText(
            medium_id=medium_id,
            created=moment,
            profile="(as the original medium)",
            file_count=instances,
            has_password=request.new_password is not None,
            certificate_subjects=readers_subjects(certificates, request.escrow_certificate),
            sender=request.sender,
            label=fileset_id,
            viewer=bool(viewer),
        )
        (medium_dir / README_NAME).write_bytes(readme_text(text).encode("ascii"))
        new_password = request.new_password_bytes
        escrowed = (
            seal_password_for_escrow(new_password, request.escrow_certificate)
            if new_password is not None and request.escrow_certificate is not None
            else None
        )

        def record() -> None:
            registry.record_medium(
                MediumRecord(
                    medium_id=medium_id,
                    file_set_uid=fileset_uid or "unknown",
                    created_at=moment,
                    operator=request.operator,
                    station=socket.gethostname(),
                    profile="rekeyed",
                    format=output_format,
                    label=fileset_id or None,
                    file_count=instances,
                    total_bytes=sum(p.stat().st_size for p in medium_dir.rglob("*") if p.is_file()),
                    recipients=((RecipientRecord.for_password(),) if request.new_password is not None else ())
                    + tuple(RecipientRecord.for_certificate(c) for c in certificates),
                    studies=tuple(
                        StudyRecord(
                            study_instance_uid=uid,
                            patient_id=patient,
                            instance_count=facts.instance_count,
                            study_date=da_date(facts.study_date),
                        )
                        for uid, patient, facts in studies
                    ),
                    escrowed_password=escrowed,
                    escrow_fingerprint=certificate_fingerprint(request.escrow_certificate)
                    if escrowed is not None and request.escrow_certificate is not None
                    else None,
                )
            )

        place_medium(
            medium_dir,
            request.out,
            output_format=output_format,
            staging=staging,
            volume_id=sanitize_volume_id(fileset_id or medium_id),
            udf=output_format == "iso",
            before_commit=record,
            progress=lambda done, total_files: events.progress("write", done, total_files),
            overwrite=request.overwrite,
            medium_id=medium_id,
            on_note=notes.append,
        )
    try:
        audit.emit(
            export_event(
                user=AuditUser(user_id=request.operator),
                medium_id=medium_id,
                media_type=media_type_of("dvd" if output_format == "iso" else "usb", output_format),
                patients=audit_patients(p for _, p, _ in studies),
                studies=[
                    StudyRef.from_counts(uid, dict(facts.sop_class_counts)) for uid, _, facts in studies
                ],
                description=f"rekeyed from {request.medium.name}"
                + (f"; {unverified} file(s) with integrity NOT verified" if unverified else ""),
                encrypted=True,
                now=now,
            )
        )
    except DcmsealError as exc:
        notes.append(f"the Export audit message could not be written: {exc}")
        logger.error("audit: %s", exc)
    return RekeyResult(
        medium_id=medium_id,
        source=request.medium,
        output=request.out,
        output_format=output_format,
        files=count,
        recipients=(("password",) if request.new_password is not None else ()) + subjects,
        pbkdf2_derivations=context.kdf_cache.derivations - before,
        cover_letter=cover_letter(text),
        notes=tuple(notes),
        elapsed_s=time.perf_counter() - started,
    )


def _viewer_names(root: Path, files: list[Path]) -> frozenset[str]:
    """The offline viewer's files on the medium (INDEX.HTM in the root, everything in VIEWER/), if it has one."""
    names = [p.relative_to(root).as_posix() for p in files]
    if INDEX_NAME not in names:
        return frozenset()
    return frozenset(n for n in names if n == INDEX_NAME or n.startswith(f"{VIEWER_DIR_NAME}/"))


def _viewer_note(root: Path, viewer: frozenset[str]) -> str:
    """One line for the kept viewer; it says so when the bundle is not the one this dcmseal burns."""

    def digest(name: str) -> str:
        with open(root / name, "rb") as fp:
            return sha256_of(fp)

    known = find_viewers(
        viewer, size_of=lambda name: (root / name).stat().st_size, digest_of=digest, bundle=known_bundle()
    )
    note = f"the offline viewer ({INDEX_NAME}, {VIEWER_DIR_NAME}/) was kept as it is"
    if not any(match.root == "" and match.names == viewer for match in known):
        note += ": it is not the viewer this dcmseal burns, so `dcmseal scan` flags it"
    return note
