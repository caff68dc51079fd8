"""Plan a File-set (PS3.10 §8): place every instance under its records and File ID, then write the DICOMDIR."""

from __future__ import annotations

import contextlib
import enum
import gc
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import UID

from dcmseal.errors import InputError
from dcmseal.fsutil import link_or_copy, make_dirs
from dcmseal.media.dicomdir import (
    ALPHANUMERIC_ABOVE,
    REFERENCED_FILE_ID_TAG,
    DirectoryRecord,
    encode_element,
    file_id_component,
    write_dicomdir,
)
from dcmseal.media.fileset.fileid import DICOMDIR_NAME, fileset_id_from_label
from dcmseal.media.fileset.instance import Instance
from dcmseal.media.fileset.inventions import (
    DEFAULT_DATE,
    Planner,
    patient_identity,
    remember_keys,
    supply_key,
)
from dcmseal.media.fileset.keys import KEYS, PRESENT, STOP_AFTER, WANTED
from dcmseal.media.fileset.records import (
    add_profile_keys,
    align_with_meta,
    first_missing,
    insert_records,
    record_types_of,
    tidy_document_record,
)
from dcmseal.media.profiles import Profile, is_allowed
from dcmseal.part10.header import read_header
from dcmseal.uids import new_uid

__all__ = ["FileSetPlan", "NoteKind", "PlanNote", "PlannedFile", "build_fileset"]

logger = logging.getLogger(__name__)

# Each round supplies one missing key; a record type has fewer Type 1 keys than this.
_MAX_INVENTIONS = 16


class NoteKind(enum.StrEnum):
    """What a :class:`PlanNote` reports."""

    INVENTED = "invented"  # a DICOMDIR key the instance lacks was supplied (PS3.11 Table D.3-2 note)
    DUPLICATE = "duplicate"  # a second file with an SOP Instance UID already planned; left out
    PATIENT_ID_CONFLICT = "patient-id-conflict"  # one Patient ID, different patients (PS3.11 §D.3.3)
    META_MISMATCH = "meta-mismatch"  # the File Meta SOP Class/Instance UID differs from the data set's
    LEFT_OUT = "left-out"  # the instance cannot be indexed in a DICOMDIR; it is not on the medium


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanNote:
    """Something the plan did or found that the user should know; names files by path, never by patient."""

    kind: NoteKind
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def to_json(self) -> dict[str, object]:
        """The note as JSON-ready values."""
        return {"kind": self.kind.value, "path": str(self.path), "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedFile:
    """One instance placed in the File-set."""

    source: Path
    staged: Path
    file_id: tuple[str, ...]
    record_type: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    #: As in the PATIENT record (invented when the instance has none, see the plan's notes).
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    #: The Study Date (DA, YYYYMMDD) as the source had it; "" when it had none (the record's is invented).
    study_date: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSetPlan:
    """A File-set written to a staging directory: DICOMDIR plus every instance under its File ID."""

    fileset_uid: str
    fileset_id: str
    profile: Profile
    dicomdir: Path
    files: tuple[PlannedFile, ...]
    notes: tuple[PlanNote, ...] = ()


def build_fileset(
    instances: Sequence[Path],
    staging: Path,
    *,
    fileset_id: str = "",
    profile: Profile,
    fileset_uid: str | None = None,
) -> FileSetPlan:
    """Write a File-set of ``instances`` into the empty directory ``staging`` (PS3.10 §8, PS3.3 Annex F).

    The directory records are chosen from each SOP class as pydicom's :class:`~pydicom.fileset.FileSet` chooses
    them (PATIENT, STUDY, SERIES, then IMAGE, ENCAP DOC, SR DOCUMENT, RT DOSE, ...; a single PALETTE, IMPLANT,
    ... record for the classes that have one), with the same keys (PS3.3 F.5) and conformant File IDs
    (``PT000000/ST000000/SE000000/IM000000``); the profile's additional keys are added to the records
    (PS3.11 Tables D.3-2, H.3-2). Each instance's header is read once, only as far as the record keys
    (:func:`dcmseal.part10.header.read_header`), and the DICOMDIR is encoded in one pass
    (:mod:`dcmseal.media.dicomdir`). ``staging`` ends up holding ``DICOMDIR`` and every instance at its File ID,
    hard-linked (copied across filesystems): instances are never modified.

    A key the DICOMDIR requires but an instance lacks is supplied in the DICOMDIR only, deterministically, and
    reported as a note: Patient ID from the patient's name and birth date (or the study), Study Date/Time from
    the series or content date/time (else 19000101/000000), Study ID from a hash of the Study Instance UID, Series
    Number and Instance Number from their order in the input, Modality "OT", other keys from their VR. A second
    file with an SOP Instance UID already planned is left out and reported; so is one Patient ID used for
    patients whose names or birth dates differ (they share one PATIENT record), and a data set whose SOP Class or
    Instance UID differs from its File Meta Information (the DICOMDIR references the File Meta values).

    Parameters
    ----------
    instances : Sequence[Path]
        PS3.10 files already in a transfer syntax of ``profile`` (see :func:`dcmseal.media.transcode.conform`).
    staging : Path
        An empty or missing directory.
    fileset_id : str
        A label; made into the File-set ID by :func:`fileset_id_from_label`.
    profile : Profile
        The PS3.11 profile the File-set follows.
    fileset_uid : str, optional
        The File-set UID (the DICOMDIR's Media Storage SOP Instance UID); a new UID by default.

    Returns
    -------
    FileSetPlan

    Raises
    ------
    NotPart10Error
        An instance is not a PS3.10 file, or its data set does not parse as far as the record keys.
    ValueError
        ``staging`` is not empty, or an instance's transfer syntax is not allowed by ``profile``.
    """
    staging = Path(staging)
    if staging.exists() and any(staging.iterdir()):
        raise ValueError(f"{staging}: the staging directory must be empty")
    make_dirs(staging)

    with _gc_paused():
        return _plan(instances, staging, fileset_id=fileset_id, profile=profile, fileset_uid=fileset_uid)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a File-set is planned.

    Planning allocates many small objects that live until the DICOMDIR is written; collections they trigger
    would scan them over and over. What planning keeps alive it keeps anyway; the few cycles it drops are
    collected once the collector is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(slots=True)
class _Placed:
    """One instance in the record tree, until its File ID is known."""

    source: Path
    instance: Instance
    path: tuple[DirectoryRecord, ...]  # from the top record down to the instance's own record


def _plan(
    instances: Sequence[Path], staging: Path, *, fileset_id: str, profile: Profile, fileset_uid: str | None
) -> FileSetPlan:
    """The work of :func:`build_fileset` (``staging`` exists and is empty)."""
    uid = fileset_uid or new_uid()
    label = fileset_id_from_label(fileset_id)
    root = DirectoryRecord("ROOT", "", {})
    planner = Planner()
    notes: list[PlanNote] = []
    first_seen: dict[str, Path] = {}
    placed: list[_Placed] = []
    for source in map(Path, instances):
        header = read_header(source, WANTED, stop_after=STOP_AFTER, present=PRESENT)
        if not is_allowed(profile, header.transfer_syntax_uid):
            raise ValueError(
                f"{source}: {UID(header.transfer_syntax_uid).name} is not allowed by {profile.value}; "
                "conform the file first"
            )
        instance = Instance(header)
        mismatch = align_with_meta(instance)
        if mismatch:
            notes.append(PlanNote(kind=NoteKind.META_MISMATCH, path=source, message=mismatch))
        sop_instance = header.sop_instance_uid
        if sop_instance in first_seen:
            notes.append(
                PlanNote(
                    kind=NoteKind.DUPLICATE,
                    path=source,
                    message=f"SOP Instance UID {sop_instance} is already in the File-set from "
                    f"{first_seen[sop_instance]}; this file is left out",
                )
            )
            continue
        try:
            record_types = _records(instance, source, planner, notes)
            path = insert_records(root, instance, record_types)
        except InputError as exc:
            # One instance the DICOMDIR cannot index (no Study Instance UID, a key that does not decode) is
            # left out, with its reason; it does not stop the rest of the File-set.
            notes.append(PlanNote(kind=NoteKind.LEFT_OUT, path=source, message=exc.message))
            continue
        first_seen[sop_instance] = source
        tidy_document_record(path[-1], instance)
        add_profile_keys(path, instance, profile)
        remember_keys(planner, instance)
        conflict = _patient_conflict(planner, instance, source)
        if conflict is not None:
            notes.append(conflict)
        placed.append(_Placed(source=source, instance=instance, path=path))

    files = _stage(placed, staging)
    dicomdir = staging / DICOMDIR_NAME
    write_dicomdir(dicomdir, root.children, fileset_uid=uid, fileset_id=label)
    logger.info("File-set %s: %d instances, %d notes", uid, len(files), len(notes))
    return FileSetPlan(
        fileset_uid=uid,
        fileset_id=label,
        profile=profile,
        dicomdir=dicomdir,
        files=tuple(files),
        notes=tuple(notes),
    )


def _stage(placed: list[_Placed], staging: Path) -> list[PlannedFile]:
    """Give every instance its File ID, reference it from its record and link it there (a copy if need be)."""
    alphanumeric = len(placed) > ALPHANUMERIC_ABOVE
    made: set[Path] = set()
    files: list[PlannedFile] = []
    for item in placed:
        file_id = tuple(
            file_id_component(r.record_type, r.index, alphanumeric=alphanumeric) for r in item.path
        )
        leaf = item.path[-1]
        leaf.elements[REFERENCED_FILE_ID_TAG] = encode_element(
            REFERENCED_FILE_ID_TAG, "CS", "\\".join(file_id).encode("ascii")
        )
        staged = staging.joinpath(*file_id)
        if staged.parent not in made:
            make_dirs(staged.parent)
            made.add(staged.parent)
        link_or_copy(item.source, staged)
        instance = item.instance
        files.append(
            PlannedFile(
                source=item.source,
                staged=staged,
                file_id=file_id,
                record_type=leaf.record_type,
                sop_class_uid=instance.header.sop_class_uid,
                sop_instance_uid=instance.header.sop_instance_uid,
                transfer_syntax_uid=instance.header.transfer_syntax_uid,
                patient_id=instance.text_or_empty("PatientID"),
                study_instance_uid=instance.text_or_empty("StudyInstanceUID"),
                series_instance_uid=instance.text_or_empty("SeriesInstanceUID"),
                modality=instance.text_or_empty("Modality"),
                study_date=_known_study_date(instance),
            )
        )
    return files


def _known_study_date(instance: Instance) -> str:
    """The instance's Study Date, unless it is the placeholder written when the source had no date."""
    value = instance.text_or_empty("StudyDate")
    return "" if value == DEFAULT_DATE else value


def _records(instance: Instance, source: Path, planner: Planner, notes: list[PlanNote]) -> tuple[str, ...]:
    """The instance's record types, top down, once each Type 1 key it lacks is supplied (PS3.11 D.3-2 note)."""
    supplied: set[str] = set()
    for _ in range(_MAX_INVENTIONS):
        record_types = record_types_of(instance)
        missing = first_missing(instance, record_types)
        if missing is None:
            return record_types
        record_type, keyword, problem = missing
        tag = KEYS[keyword][0]
        reason = (
            f"cannot build its DICOMDIR records: the {record_type} record needs ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
            f"{keyword}, which {problem} (PS3.3 F.5)"
        )
        if keyword in supplied or (keyword == "StudyInstanceUID" and not instance.has(keyword)):
            raise InputError(reason, path=source)
        supplied.add(keyword)
        note = supply_key(instance, keyword, planner)
        if note is None:
            raise InputError(reason, path=source)
        if note:
            notes.append(PlanNote(kind=NoteKind.INVENTED, path=source, message=note))
    raise InputError("cannot build its DICOMDIR records: too many missing keys", path=source)


def _patient_conflict(planner: Planner, instance: Instance, source: Path) -> PlanNote | None:
    patient_id = instance.text_or_empty("PatientID")
    if not patient_id:
        return None
    identity = patient_identity(instance)
    known = planner.patients.get(patient_id)
    if known is None:
        planner.patients[patient_id] = (identity, source)
        return None
    (name, birth), first = known
    differs = [
        what
        for what, mine, theirs in (("names", identity[0], name), ("birth dates", identity[1], birth))
        if mine and theirs and mine != theirs
    ]
    if not differs:
        return None
    return PlanNote(
        kind=NoteKind.PATIENT_ID_CONFLICT,
        path=source,
        message=f"its Patient ID is also used by {first} but the patient {' and '.join(differs)} differ; "
        "the DICOMDIR lists both under one PATIENT record (PS3.11 requires a unique Patient ID per patient)",
    )
