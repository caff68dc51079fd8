"""Burn a secure medium (STD-GEN-SEC-*): collect, conform, plan the File-set, seal every file, write, record."""

from __future__ import annotations

import functools
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dcmseal import cms
from dcmseal.audit import (
    AuditSink,
    AuditUser,
    EventOutcome,
    StudyRef,
    audit_patients,
    export_event,
    media_type_of,
)
from dcmseal.config import DEFAULT_PBKDF2_ITERATIONS, DEFAULT_SALT_BYTES
from dcmseal.errors import DcmsealError, ExitCode, InputError, UsageError
from dcmseal.events import Emitter, HandlerSpec
from dcmseal.keys.escrow import certificate_fingerprint, seal_password_for_escrow
from dcmseal.keys.passwords import check_password, new_pbkdf2_params, password_octets
from dcmseal.keys.registry import MediumRecord, RecipientRecord, Registry, StudyRecord
from dcmseal.media.burndocs import encapsulate_documents
from dcmseal.media.fileset import (
    FileSetPlan,
    NoteKind,
    build_fileset,
    file_id_to_path,
    fileset_id_from_label,
    fileset_id_of,
)
from dcmseal.media.iso import sanitize_volume_id
from dcmseal.media.output import place_medium, staging_dir
from dcmseal.media.profiles import (
    Medium,
    Profile,
    choose_profile,
    general_purpose_name,
)
from dcmseal.media.readme import MediumText, cover_letter, readers_subjects, readme_text
from dcmseal.media.sealing import SealCounter, copy_plain, prepare_streams, seal_into_image
from dcmseal.media.sources import Rejected, SourceCollection, collect
from dcmseal.media.summary import InstanceFacts, StudyFacts, da_date, summarize
from dcmseal.media.target import removal_advice
from dcmseal.media.transcode import conform
from dcmseal.media.webviewer import add_viewer, viewer_files
from dcmseal.part10 import (
    PreambleKind,
    SealedStream,
    SealPlan,
    classify_preamble,
    seal_files,
)
from dcmseal.part10.fileformat import PREAMBLE_BYTES, ZERO_PREAMBLE
from dcmseal.webauth import HttpCredentials

__all__ = ["BurnRequest", "BurnResult", "BurnedFile", "burn"]

logger = logging.getLogger(__name__)

README_NAME = "README.TXT"


@dataclass(frozen=True, slots=True, kw_only=True)
class BurnRequest:
    """Everything a burn needs; the CLI builds it, tests build it directly."""

    sources: tuple[str, ...]
    out: Path
    operator: str
    output_format: str = "iso"
    profile: Profile | None = None
    #: A ``str`` is NFC-normalised; PS3.15 D.1 allows ISO-IR 6 only, so it is kept as its ASCII bytes.
    password: str | bytes | None = field(default=None, repr=False)
    certificates: tuple[x509.Certificate, ...] = ()
    escrow_certificate: x509.Certificate | None = None
    label: str = ""
    #: The Study Instance UID documents (PDF, CDA, STL, OBJ, MTL) in the sources join; needed only when
    #: the DICOM sources hold more than one study.
    document_study: str | None = None
    sender: str | None = None
    strict: bool = False
    allow_expired: bool = False
    cipher: cms.ContentCipher = cms.ContentCipher.AES256_CBC
    digest: cms.DigestAlgorithm = cms.DigestAlgorithm.SHA256
    iterations: int = DEFAULT_PBKDF2_ITERATIONS
    prf: cms.Prf = cms.Prf.SHA256
    salt_bytes: int = DEFAULT_SALT_BYTES
    workers: int = 0
    overwrite: bool = False
    #: False burns a plain medium for internal use (PS3.11 STD-GEN-* without SEC): nothing is sealed.
    encrypt: bool = True
    #: Put the offline web viewer (INDEX.HTM, VIEWER/) on the medium.
    viewer: bool = True
    #: How WADO-RS study sources are signed in to (HTTP Basic or a bearer token).
    http_credentials: HttpCredentials | None = None
    #: A medium without some of the sources' instances (they cannot be decoded or indexed) is a success.
    allow_partial: bool = False
    #: Accept a password the policy refuses (:func:`dcmseal.keys.check_password`); see ``password_problems``.
    allow_weak_password: bool = False
    #: Why the policy would refuse ``password``, when ``allow_weak_password`` let it through (to warn).
    password_problems: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if not self.sources:
            raise UsageError("nothing to burn: give at least one source")
        if self.password is not None:
            # The password policy applies to every medium, whoever builds the request (issue 17 §1).
            octets, strength = check_password(
                self.password,
                allow_weak=self.allow_weak_password,
                iterations=self.iterations,
                prf=self.prf.value,
            )
            object.__setattr__(self, "password", octets)  # the one conversion: str or bytes, the same octets
            object.__setattr__(self, "password_problems", strength.problems)
        keyed = self.password is not None or self.certificates or self.escrow_certificate is not None
        if self.encrypt and not keyed:
            raise UsageError("a medium needs a password or a recipient certificate")
        if not self.encrypt and keyed:
            raise UsageError(
                "a plain medium (--no-encrypt) takes no password, recipient or escrow certificate"
            )

    @property
    def password_bytes(self) -> bytes | None:
        """The password's ISO-IR 6 octets, as PBKDF2 derives from them (``password`` converted at init)."""
        return None if self.password is None else password_octets(self.password)


@dataclass(frozen=True, slots=True, kw_only=True)
class BurnedFile:
    """One instance on the medium."""

    origin: str
    file_id: str
    sop_instance_uid: str
    conversion: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "file_id": self.file_id,
            "sop_instance_uid": self.sop_instance_uid,
            "status": "burned",
            "conversion": self.conversion,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BurnResult:
    """What was burned, where, for whom; the password is not in it."""

    medium_id: str
    output: Path
    output_format: str
    profile: Profile
    fileset_uid: str
    fileset_id: str
    files: tuple[BurnedFile, ...]
    rejected: tuple[Rejected, ...]
    notes: tuple[str, ...]
    recipients: tuple[str, ...]
    pbkdf2_derivations: int
    size_bytes: int
    readme: str
    cover_letter: str
    elapsed_s: float
    encrypted: bool = True
    viewer: bool = False
    #: For a folder on a stick: that it is synced, and what to do before pulling it.
    safe_to_remove: str | None = None
    allow_partial: bool = False

    @property
    def left_out(self) -> tuple[Rejected, ...]:
        """The DICOM instances of the sources that are not on the medium (files never DICOM aside)."""
        return tuple(r for r in self.rejected if r.instance)

    @property
    def exit_code(self) -> ExitCode:
        """INPUT when instances were left out (the medium is written, but it is not all the user gave)."""
        return ExitCode.INPUT if self.left_out and not self.allow_partial else ExitCode.OK

    #: What of the sealing PS3.15 D.1 does not name (e.g. a SHA-224 digest): each makes the medium fall
    #: outside its STD-GEN-SEC profile; empty for a conformant medium.
    outside_profile: tuple[str, ...] = ()

    @property
    def in_profile(self) -> bool:
        """Whether the medium keeps to its PS3.11 profile and, sealed, to PS3.15 D.1."""
        return not self.outside_profile

    @property
    def profile_name(self) -> str:
        """The PS3.11 profile the medium conforms to: the SEC profile, or its General Purpose twin when plain."""
        return self.profile.value if self.encrypted else general_purpose_name(self.profile)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": "dcmseal.burn/1",
            "medium_id": self.medium_id,
            "output": str(self.output),
            "format": self.output_format,
            "profile": self.profile_name,
            "in_profile": self.in_profile,
            "outside_profile": list(self.outside_profile),
            "encrypted": self.encrypted,
            "viewer": self.viewer,
            "fileset_uid": self.fileset_uid,
            "fileset_id": self.fileset_id,
            "files": [f.to_json() for f in self.files],
            "rejected": [{**r.to_json(), "status": "rejected"} for r in self.rejected],
            "notes": list(self.notes),
            "recipients": list(self.recipients),
            "complete": not self.left_out,
            "summary": {
                "burned": len(self.files),
                "rejected": len(self.rejected),
                "left_out": len(self.left_out),
                "converted": sum(1 for f in self.files if f.conversion),
                "pbkdf2_derivations": self.pbkdf2_derivations,
                "size_bytes": self.size_bytes,
                "elapsed_s": round(self.elapsed_s, 3),
            },
            "cover_letter": self.cover_letter,
            "safe_to_remove": self.safe_to_remove,
        }


def _check_validity(
    certificates: tuple[x509.Certificate, ...], moment: datetime, allow_expired: bool
) -> None:
    for certificate in certificates:
        if certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc or allow_expired:
            continue
        state = "expired" if moment > certificate.not_valid_after_utc else "not yet valid"
        raise InputError(
            f"the recipient certificate {certificate.subject.rfc4514_string()} is {state} "
            f"(valid {certificate.not_valid_before_utc:%Y-%m-%d} to {certificate.not_valid_after_utc:%Y-%m-%d}); "
            "use --allow-expired to burn for it anyway"
        )


#: What a medium holds (PS3.12: 120 mm CD-R 700 MB; single-layer DVD 4.7 GB), less room for the
#: envelopes, the DICOMDIR and the file system.
CAPACITY_BYTES = {Medium.CD: 680_000_000, Medium.DVD: 4_600_000_000}


def _fit_capacity(profile: Profile, content_bytes: int, *, chosen: bool, notes: list[str]) -> Profile:
    """Check the content fits the profile's medium; an automatic CD choice moves up to DVD (same syntaxes)."""
    capacity = CAPACITY_BYTES.get(profile.medium)
    if capacity is None or content_bytes <= capacity:
        return profile
    if profile is Profile.CD and not chosen:
        notes.append(f"{content_bytes:,} bytes do not fit a CD: {Profile.DVD_JPEG.value} chosen instead")
        return _fit_capacity(Profile.DVD_JPEG, content_bytes, chosen=chosen, notes=notes)
    raise InputError(
        f"{content_bytes:,} bytes do not fit {profile.value} (about {capacity:,} bytes); "
        "split the study or choose a larger medium (--profile, or --format dir for USB)"
    )


def _preamble_kind(path: Path) -> PreambleKind:
    with open(path, "rb") as fp:
        return classify_preamble(fp.read(PREAMBLE_BYTES))


def _zero_preamble(path: Path) -> str | None:
    """Zero the preamble of a staged copy (nothing suspicious leaves on our media); say what it was."""
    with open(path, "r+b") as fp:
        kind = classify_preamble(fp.read(PREAMBLE_BYTES))
        if kind is PreambleKind.ZERO:
            return None
        fp.seek(0)
        fp.write(ZERO_PREAMBLE)
    return "TIFF dual-personality" if kind is PreambleKind.TIFF else "non-zero"


def _studies_for_registry(studies: tuple[StudyFacts, ...]) -> tuple[StudyRecord, ...]:
    return tuple(
        StudyRecord(
            study_instance_uid=s.study_instance_uid,
            patient_id=s.patient_id,
            modalities=tuple(m for m in s.modalities if m and "\\" not in m),
            instance_count=s.instance_count,
            study_date=da_date(s.study_date),
        )
        for s in studies
    )


def burn(
    request: BurnRequest,
    *,
    registry: Registry,
    audit: AuditSink,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    handlers: Sequence[HandlerSpec] = (),
) -> BurnResult:
    """Burn ``request.sources`` to a secure medium at ``request.out`` (PS3.11 STD-GEN-SEC-*, PS3.15 D.1).

    Every file, DICOMDIR included, becomes a Secure DICOM File addressed to the password (one salt for
    the medium), the partner certificates and the escrow certificate. The registry records the medium
    (with the password sealed to the escrow key) before the output appears; an Export audit message
    follows. On any failure nothing appears at ``out`` and the staging folder (plaintext) is removed; a
    burn that fails after the command was accepted is audited as an Export that failed.

    ``handlers`` (:mod:`dcmseal.events`) receive :class:`~dcmseal.events.Progress` for the stages
    ``collect``, ``conform``, ``seal`` and ``write``, and :class:`~dcmseal.events.FileSealed` for each file
    sealed onto the medium (the DICOMDIR too): ``path`` is the source as collected (the user's own file for a
    local source), ``output`` where it ends up (its place in a folder medium, or the image).
    """
    try:
        return _burn(request, registry=registry, audit=audit, now=now, events=Emitter(handlers))
    except UsageError:
        raise  # the command was incomplete: nothing was read
    except DcmsealError as exc:
        medium = request.profile.medium if request.profile is not None else "cd"
        try:
            audit.emit(
                export_event(
                    user=AuditUser(user_id=request.operator),
                    medium_id=request.out.name or str(request.out),
                    media_type=media_type_of(medium, request.output_format),
                    patients=audit_patients(()),
                    outcome=EventOutcome.SERIOUS_FAILURE,
                    description=f"the medium was not written: {exc.message}",
                    encrypted=request.encrypt,
                    now=now,
                )
            )
        except DcmsealError as audit_exc:
            logger.error("audit: %s", audit_exc)
        raise


@dataclass(frozen=True, slots=True, kw_only=True)
class _Run:
    """What every stage of one burn shares: the request, its staging folder, its clock, where notes go."""

    request: BurnRequest
    staging: Path
    events: Emitter
    moment: datetime
    #: The partner certificates and the escrow certificate: every certificate the files are sealed to.
    recipients: tuple[x509.Certificate, ...]
    notes: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Conformed:
    """The instances in a transfer syntax of ``profile``, staged; and those that could not be."""

    profile: Profile
    collection: SourceCollection
    files: tuple[Path, ...]
    #: staged copy -> the source file as collected, and the name the user knows it by
    sources: Mapping[Path, Path]
    origins: Mapping[Path, str]
    conversions: Mapping[Path, str]
    left_out: tuple[Rejected, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Planned:
    """The File-set planned for the medium, and every source instance that is not in it."""

    medium_id: str
    label: str
    plan: FileSetPlan
    rejected: tuple[Rejected, ...]
    #: How many DICOM instances of the sources are not on the medium.
    missing: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _Sealed:
    """The medium's files sealed into the medium folder, or prepared to be sealed into the image (``streams``)."""

    medium_dir: Path
    streams: dict[Path, SealedStream] | None
    counter: SealCounter
    derivations: int
    outside_profile: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Registered:
    """What the registry records of the medium (written just before the medium takes its place)."""

    profile_name: str
    studies: tuple[StudyFacts, ...]
    text: MediumText
    readme: str
    record: MediumRecord


def _burn(
    request: BurnRequest,
    *,
    registry: Registry,
    audit: AuditSink,
    now: Callable[[], datetime],
    events: Emitter,
) -> BurnResult:
    started = time.perf_counter()
    moment = now()
    recipients = request.certificates + (
        (request.escrow_certificate,) if request.escrow_certificate is not None else ()
    )
    _check_validity(request.certificates, moment, request.allow_expired)
    if request.viewer:
        viewer_files()  # a missing bundle fails now, before any work
    with staging_dir(
        request.out, overwrite=request.overwrite, output_format=request.output_format
    ) as staging:
        run = _Run(
            request=request, staging=staging, events=events, moment=moment, recipients=recipients, notes=[]
        )
        conformed = _conform(run, _collect(run))
        planned = _plan(run, conformed, medium_id=registry.new_medium_id())
        sealed = _seal(run, conformed, planned)
        registered = _register(run, conformed, planned, sealed)
        size = _write(run, conformed, planned, sealed, registered, registry=registry)
    _audit(run, conformed.profile, planned, registered.studies, audit=audit, now=now)
    return _result(run, conformed, planned, sealed, registered, size=size, started=started)


def _collect(run: _Run) -> SourceCollection:
    """Stage ``collect``: the sources' DICOM instances, with their documents encapsulated into their study."""
    request, notes = run.request, run.notes
    run.events.progress("collect", 0, len(request.sources))
    collection = collect(request.sources, run.staging / "sources", credentials=request.http_credentials)
    notes.extend(collection.notes)
    documents, still_rejected = encapsulate_documents(
        collection, run.staging / "documents", request.document_study
    )
    collection = SourceCollection(
        instances=collection.instances + documents,
        rejected=still_rejected,
        notes=collection.notes + tuple(f"{d.shown}: encapsulated as DICOM" for d in documents),
    )
    if documents:
        notes.append(f"{len(documents)} document(s) encapsulated into their study")
    if collection.rejected and request.strict:
        first = collection.rejected[0]
        raise InputError(
            f"{len(collection.rejected)} source file(s) cannot go on the medium (--strict); first: {first.reason}",
            path=first.path or first.origin,
        )
    if not collection.instances:
        raise InputError("nothing to burn: no DICOM instance in the sources")
    return collection


def _conform(run: _Run, collection: SourceCollection) -> _Conformed:
    """Stage ``conform``: each instance staged in a transfer syntax of the profile, its preamble zeroed.

    An instance that cannot be decoded or converted is left out (the burn goes on without it); the profile
    chosen automatically moves from CD to DVD when the content does not fit a CD.
    """
    request, notes = run.request, run.notes
    instances = collection.instances
    profile = request.profile or choose_profile(
        {i.transfer_syntax_uid for i in instances},
        output="iso" if request.output_format == "iso" else "dir",
    )
    conformed: list[Path] = []
    conversions: dict[Path, str] = {}
    origins: dict[Path, str] = {}
    sources: dict[Path, Path] = {}
    left_out_early: list[Rejected] = []
    for index, instance in enumerate(instances):
        run.events.progress("conform", index, len(instances))
        target = run.staging / "conformed" / f"{index:08d}"
        target.parent.mkdir(exist_ok=True)
        # A source kept as it is becomes a hard link (no copy) unless its preamble must be zeroed, which
        # writes to the staged file and so must never reach the source's own bytes.
        clean_preamble = _preamble_kind(instance.path) is PreambleKind.ZERO
        # Name the file as the user knows it: its own path, archive.zip:member.dcm, or the study URL.
        shown = instance.shown
        try:
            result = conform(instance.path, target, profile, durable=False, link=clean_preamble)
        except DcmsealError as exc:
            # One instance that cannot be decoded or converted leaves the rest to burn: it is listed as
            # left out (and the burn reports a partial medium), never the end of the whole burn.
            target.unlink(missing_ok=True)
            left_out_early.append(
                # One line however the decoders worded it (pydicom lists each plugin on a line of its own).
                Rejected(
                    origin=instance.origin,
                    path=None,
                    reason=" ".join(exc.message.split()),
                    name=shown,
                    instance=True,
                )
            )
            continue
        zeroed = None if clean_preamble else _zero_preamble(target)
        if zeroed is not None:
            notes.append(f"{shown}: {zeroed} preamble zeroed (PS3.10 §7.5)")
        conformed.append(target)
        origins[target] = shown
        sources[target] = instance.path
        if result.converted:
            conversions[target] = f"{result.from_ts} -> {result.to_ts}: {result.reason}"
    if left_out_early and request.strict:
        first = left_out_early[0]
        raise InputError(f"cannot go on the medium (--strict): {first.reason}", path=first.shown)
    if not conformed:
        first = left_out_early[0]
        raise InputError(
            f"nothing to burn: no instance could be put on the medium; first: {first.reason}",
            path=first.shown,
        )
    if conversions:
        notes.append(f"{len(conversions)} instance(s) converted losslessly to fit {profile.value}")
    profile = _fit_capacity(
        profile, sum(p.stat().st_size for p in conformed), chosen=request.profile is not None, notes=notes
    )
    return _Conformed(
        profile=profile,
        collection=collection,
        files=tuple(conformed),
        sources=sources,
        origins=origins,
        conversions=conversions,
        left_out=tuple(left_out_early),
    )


def _plan(run: _Run, conformed: _Conformed, *, medium_id: str) -> _Planned:
    """Stage ``plan``: the File-set (File IDs, DICOMDIR); an instance it cannot index is left out."""
    request, origins = run.request, conformed.origins
    # The File-set ID and the Volume Identifier agree (PS3.12 F.1.1): the label, else the medium ID.
    label = fileset_id_from_label(request.label)
    plan = build_fileset(
        list(conformed.files),
        run.staging / "fileset",
        fileset_id=label or fileset_id_of(medium_id),
        profile=conformed.profile,
    )
    left_out = [n for n in plan.notes if n.kind is NoteKind.LEFT_OUT]
    rejected = (
        list(conformed.collection.rejected)
        + list(conformed.left_out)
        + [
            Rejected(
                origin=origins.get(n.path, str(n.path)),
                path=None,
                reason=n.message,
                name=origins.get(n.path, str(n.path)),
                instance=True,
            )
            for n in left_out
        ]
    )
    missing = sum(1 for r in rejected if r.instance)
    if left_out and request.strict:
        raise InputError(
            f"cannot go on the medium (--strict): {left_out[0].message}",
            path=origins.get(left_out[0].path),
        )
    if not plan.files:
        raise InputError("nothing to burn: no instance could be indexed in a DICOMDIR")
    run.notes.extend(
        note.message if note.path not in origins else f"{origins[note.path]}: {note.message}"
        for note in plan.notes
        if note.kind is not NoteKind.LEFT_OUT
    )
    return _Planned(medium_id=medium_id, label=label, plan=plan, rejected=tuple(rejected), missing=missing)


def _seal(run: _Run, conformed: _Conformed, planned: _Planned) -> _Sealed:
    """Stage ``seal``: every file of the File-set sealed into the medium folder (one salt for the medium).

    For an image, the files are only prepared here (sizes fixed, keys wrapped) and sealed straight into the
    image as it is written; a plain medium (no encryption) gets the files as they are.
    """
    request, plan = run.request, planned.plan
    kdf = (
        new_pbkdf2_params(iterations=request.iterations, prf=request.prf, salt_bytes=request.salt_bytes)
        if request.password is not None
        else None
    )
    medium_dir = run.staging / "medium"
    pairs = [(plan.dicomdir, medium_dir / "DICOMDIR")]
    pairs += [(f.staged, file_id_to_path(medium_dir, f.file_id)) for f in plan.files]
    counter = SealCounter(
        run.events,
        {source: _final_place(run.request, medium_dir, target) for source, target in pairs},
        {f.staged: conformed.sources.get(f.source, f.source) for f in plan.files},
        sealed=request.encrypt,
    )
    streams: dict[Path, SealedStream] | None = None
    outside_profile: tuple[str, ...] = ()
    if request.encrypt:
        seal_plan = SealPlan(
            password=request.password_bytes,
            kdf=kdf,
            certificates=tuple(c.public_bytes(serialization.Encoding.DER) for c in run.recipients),
            cipher=request.cipher,
            digest=request.digest,
        )
        outside_profile = seal_plan.outside_profile()
        for deviation in outside_profile:
            logger.warning("%s: %s", request.out, deviation)
        if request.output_format == "iso":
            # Sealed while the image is written: no sealed copy of the medium goes to disk first.
            streams, derivations = prepare_streams(pairs, seal_plan)
        else:
            report = seal_files(pairs, seal_plan, workers=request.workers, on_outcome=counter.on_outcome)
            derivations = report.pbkdf2_derivations
            if report.failed:
                first_failure = report.failed[0]
                raise InputError(
                    f"{len(report.failed)} file(s) could not be sealed; first: {first_failure.reason}",
                    path=first_failure.source,
                )
    else:
        copy_plain(pairs, counter, link=request.output_format == "iso")
        derivations = 0
    return _Sealed(
        medium_dir=medium_dir,
        streams=streams,
        counter=counter,
        derivations=derivations,
        outside_profile=outside_profile,
    )


def _final_place(request: BurnRequest, medium_dir: Path, target: Path) -> Path:
    """Where a file of the medium folder ends up: its place in a folder medium, or the image it goes into."""
    if request.output_format == "dir":
        return request.out / target.relative_to(medium_dir)
    return request.out


def _register(run: _Run, conformed: _Conformed, planned: _Planned, sealed: _Sealed) -> _Registered:
    """Stage ``register`` (its first half): the README and viewer laid out, and the registry's record made.

    The record is written by :func:`_write`, once the medium's files are complete and before it takes its place.
    """
    request, plan, recipients, medium_dir = run.request, planned.plan, run.recipients, sealed.medium_dir
    profile = conformed.profile
    profile_name = profile.value if request.encrypt else general_purpose_name(profile)
    text = MediumText(
        medium_id=planned.medium_id,
        created=run.moment,
        profile=profile_name,
        file_count=len(plan.files),
        has_password=request.password is not None,
        certificate_subjects=readers_subjects(recipients, request.escrow_certificate),
        sender=request.sender,
        label=planned.label,
        encrypted=request.encrypt,
        viewer=request.viewer,
        left_out=planned.missing,
    )
    readme = readme_text(text)
    medium_dir.mkdir(exist_ok=True)  # an image's sealed files are reserved in it: nothing of them is on disk
    (medium_dir / README_NAME).write_bytes(readme.encode("ascii"))
    if request.viewer:
        add_viewer(medium_dir)

    studies = summarize(
        InstanceFacts(
            patient_id=f.patient_id,
            study_instance_uid=f.study_instance_uid,
            sop_class_uid=f.sop_class_uid,
            modality=f.modality,
            study_date=f.study_date,
        )
        for f in plan.files
    )
    escrowed: bytes | None = None
    escrow_fingerprint: str | None = None
    password = request.password_bytes
    if password is not None and request.escrow_certificate is not None:
        escrowed = seal_password_for_escrow(password, request.escrow_certificate)
        escrow_fingerprint = certificate_fingerprint(request.escrow_certificate)
    recipient_records = ((RecipientRecord.for_password(),) if request.password is not None else ()) + tuple(
        RecipientRecord.for_certificate(c) for c in recipients
    )
    total = sum(p.stat().st_size for p in medium_dir.rglob("*") if p.is_file())
    total += sum(
        stream.size for stream in (sealed.streams or {}).values()
    )  # sealed into the image, not on disk
    record = MediumRecord(
        medium_id=planned.medium_id,
        file_set_uid=plan.fileset_uid,
        created_at=run.moment,
        operator=request.operator,
        station=socket.gethostname(),
        profile=profile_name,
        format=request.output_format,
        label=planned.label or None,
        file_count=len(plan.files),
        total_bytes=total,
        recipients=recipient_records,
        studies=_studies_for_registry(studies),
        escrowed_password=escrowed,
        escrow_fingerprint=escrow_fingerprint,
    )
    return _Registered(profile_name=profile_name, studies=studies, text=text, readme=readme, record=record)


def _write(
    run: _Run,
    conformed: _Conformed,
    planned: _Planned,
    sealed: _Sealed,
    registered: _Registered,
    *,
    registry: Registry,
) -> int:
    """Stage ``write``: the medium put in its place (an image sealed into as it is written); returns its size.

    The registry records the medium just before it appears (``before_commit``); a medium recorded that
    then fails to reach its place is taken out of the registry again.
    """
    request, plan, streams = run.request, planned.plan, sealed.streams
    recorded = False

    def record() -> None:
        nonlocal recorded
        registry.record_medium(registered.record)
        recorded = True

    try:
        return place_medium(
            sealed.medium_dir,
            request.out,
            output_format=request.output_format,
            staging=run.staging,
            volume_id=sanitize_volume_id(plan.fileset_id),
            udf=conformed.profile.needs_udf,
            before_commit=record,
            progress=lambda done, total_files: run.events.progress("write", done, total_files),
            # The image is laid out first; then every core seals files straight into their extents.
            reserved={target: stream.size for target, stream in streams.items()} if streams else None,
            fill=functools.partial(
                seal_into_image,
                streams=streams,
                workers=request.workers,
                on_sealed=sealed.counter.on_stream,
                names={f.staged: conformed.origins.get(f.source, str(f.source)) for f in plan.files},
            )
            if streams
            else None,
            overwrite=request.overwrite,
            medium_id=planned.medium_id,
            on_note=run.notes.append,
        )
    except BaseException:
        if recorded:
            # The medium was recorded when its files were complete, but it did not reach its place.
            try:
                registry.forget_medium(planned.medium_id)
            except DcmsealError as forget_exc:  # the burn's own error is the one to report
                logger.error(
                    "medium %s stays in the registry, never written: %s", planned.medium_id, forget_exc
                )
        raise


def _audit(
    run: _Run,
    profile: Profile,
    planned: _Planned,
    studies: tuple[StudyFacts, ...],
    *,
    audit: AuditSink,
    now: Callable[[], datetime],
) -> None:
    """Stage ``audit``: the Export message (PS3.15 A.5.3.7); a failure to write it becomes a note, not an error."""
    request, missing = run.request, planned.missing
    try:
        audit.emit(
            export_event(
                user=AuditUser(user_id=request.operator),
                medium_id=planned.medium_id,
                media_type=media_type_of(profile.medium, request.output_format),
                patients=audit_patients(s.patient_id for s in studies),
                studies=[
                    StudyRef.from_counts(s.study_instance_uid, dict(s.sop_class_counts)) for s in studies
                ],
                medium_label=planned.plan.fileset_id,
                encrypted=request.encrypt,
                # A partial medium is said so: what is on it (the studies above) and how much is not.
                outcome=EventOutcome.MINOR_FAILURE if missing else EventOutcome.SUCCESS,
                description=f"{missing} instance(s) of the sources left out (cannot be put on the medium)"
                if missing
                else None,
                now=now,
            )
        )
    except DcmsealError as exc:
        # The medium exists and is registered; a missing audit message must be seen, not hidden.
        run.notes.append(f"the Export audit message could not be written: {exc}")
        logger.error("audit: %s", exc)


def _result(
    run: _Run,
    conformed: _Conformed,
    planned: _Planned,
    sealed: _Sealed,
    registered: _Registered,
    *,
    size: int,
    started: float,
) -> BurnResult:
    request, plan, origins = run.request, planned.plan, conformed.origins
    by_staged = {f.staged: f for f in plan.files}
    files = tuple(
        BurnedFile(
            origin=origins.get(f.source, str(f.source)),
            file_id="/".join(f.file_id),
            sop_instance_uid=f.sop_instance_uid,
            conversion=conformed.conversions.get(f.source),
        )
        for f in by_staged.values()
    )
    subjects = tuple(c.subject.rfc4514_string() for c in run.recipients)
    return BurnResult(
        medium_id=planned.medium_id,
        output=request.out,
        output_format=request.output_format,
        profile=conformed.profile,
        fileset_uid=plan.fileset_uid,
        fileset_id=plan.fileset_id,
        files=files,
        rejected=planned.rejected,
        notes=tuple(run.notes),
        recipients=(("password",) if request.password is not None else ()) + subjects,
        pbkdf2_derivations=sealed.derivations,
        size_bytes=size,
        readme=registered.readme,
        cover_letter=cover_letter(registered.text),
        elapsed_s=time.perf_counter() - started,
        encrypted=request.encrypt,
        viewer=request.viewer,
        safe_to_remove=removal_advice(request.out),
        allow_partial=request.allow_partial,
        outside_profile=sealed.outside_profile,
    )
