"""Plan a File-set (PS3.10 §8): File IDs, directory records and the DICOMDIR, from each header read once."""

from __future__ import annotations

import contextlib
import copy
import enum
import gc
import hashlib
import logging
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.fileset import (  # data: SOP class -> record type
    _FOUR_LEVEL_SOP_CLASSES,
    _SINGLE_LEVEL_SOP_CLASSES,
)
from pydicom.tag import BaseTag
from pydicom.uid import UID

from dcmseal.errors import InputError, NotPart10Error
from dcmseal.fsutil import link_or_copy, make_dirs
from dcmseal.media.dicomdir import (
    ALPHANUMERIC_ABOVE,
    LONG_VRS,
    MEDIA_STORAGE_DIRECTORY_SOP_CLASS,
    REFERENCED_FILE_ID_TAG,
    DirectoryRecord,
    encode_element,
    encode_text,
    encode_with_pydicom,
    file_id_component,
    write_dicomdir,
)
from dcmseal.media.profiles import MAX_COMPONENT_CHARS, MAX_FILE_ID_COMPONENTS, Profile, is_allowed
from dcmseal.part10.fileformat import read_file_meta
from dcmseal.part10.header import Header, RawValue, read_header, read_items
from dcmseal.uids import INVENTED_PATIENT_ID_PREFIX, derived_uid, new_uid

__all__ = [
    "DICOMDIR_NAME",
    "MAX_FILESET_ID_CHARS",
    "MEDIA_STORAGE_DIRECTORY_SOP_CLASS",
    "DicomDir",
    "DirectoryEntry",
    "Disagreement",
    "DisagreementKind",
    "FileFacts",
    "FileSetPlan",
    "NoteKind",
    "PlanNote",
    "PlannedFile",
    "build_fileset",
    "check_agreement",
    "file_id_to_path",
    "fileset_id_from_label",
    "fileset_id_of",
    "is_conformant_file_id",
    "path_to_file_id",
    "read_dicomdir",
    "read_file_facts",
]

logger = logging.getLogger(__name__)

#: PS3.10 §8.6: the one reserved File ID, in the root of the File-set.
DICOMDIR_NAME = "DICOMDIR"
#: PS3.10 §8.5: a File-set ID has 0 to 16 characters from the File ID character set.
MAX_FILESET_ID_CHARS = 16

_COMPONENT = re.compile(rf"[A-Z0-9_]{{1,{MAX_COMPONENT_CHARS}}}")
_NOT_FILE_ID_CHAR = re.compile(r"[^A-Z0-9_]")
_ISO_VERSION = re.compile(r"\.?;\d+$")
# Each round supplies one missing key; a record type has fewer Type 1 keys than this.
_MAX_INVENTIONS = 16
# PS3.3 F.5 keys dcmseal knows how to supply for the DICOMDIR when the instance lacks them (PS3.11 Table D.3-2
# note: "either these attributes are present in the Image IOD, or they are in some other way supplied by the
# File-set Creator"); any other missing key is invented from its VR.
_STUDY_KEYS = ("StudyDate", "StudyTime", "StudyID")
_SERIES_KEYS = ("Modality", "SeriesNumber")
_DATE_SOURCES = ("SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate")
_TIME_SOURCES = ("SeriesTime", "AcquisitionTime", "ContentTime", "InstanceCreationTime")
_DEFAULT_DATE = "19000101"
_DEFAULT_TIME = "000000"
_ENUMERATED_DEFAULTS = {"CompletionFlag": "PARTIAL", "VerificationFlag": "UNVERIFIED"}
_VR_DEFAULTS = {
    "DA": _DEFAULT_DATE,
    "TM": _DEFAULT_TIME,
    "DT": _DEFAULT_DATE + _DEFAULT_TIME,
    "IS": "1",
    "DS": "0",
    "CS": "UNKNOWN",
    "SH": "UNKNOWN",
    "LO": "UNKNOWN",
    "ST": "UNKNOWN",
    "LT": "UNKNOWN",
}
# Table H.3-2: these keys may sit in the first item of a Shared Functional Groups Sequence macro.
_FUNCTIONAL_GROUP_KEYS = frozenset(
    {"ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "ReferencedImageSequence"}
)


# --- File IDs (PS3.10 §8.2, §8.5) ---------------------------------------------------------------------------


def _components(file_id: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(file_id, str):
        return tuple(re.split(r"[\\/]", file_id))
    return tuple(str(part) for part in file_id)


def _why_not_conformant(parts: tuple[str, ...]) -> str | None:
    if not parts:
        return "it has no component"
    if len(parts) > MAX_FILE_ID_COMPONENTS:
        return f"it has {len(parts)} components, at most {MAX_FILE_ID_COMPONENTS} are allowed"
    for part in parts:
        if not _COMPONENT.fullmatch(part):
            return (
                f"component {part!r} is not 1 to {MAX_COMPONENT_CHARS} characters from A-Z, 0-9 and _ "
                "(no lower case, no extension)"
            )
    return None


def is_conformant_file_id(file_id: str | Sequence[str]) -> bool:
    """Whether ``file_id`` is a conformant File ID (PS3.10 §8.2, §8.5; PS3.3 F.3.2.2).

    1 to 8 components, each of 1 to 8 characters from ``A-Z``, ``0-9`` and ``_``. A string is split at ``/`` and
    ``\\`` (the value separator of (0004,1500) Referenced File ID).
    """
    return _why_not_conformant(_components(file_id)) is None


def file_id_to_path(root: Path, file_id: str | Sequence[str]) -> Path:
    """Return where File ID ``file_id`` lives under the File-set root ``root``.

    Raises
    ------
    ValueError
        ``file_id`` is not conformant; a conformant File ID cannot leave ``root`` (no ``..``, no separators).
    """
    parts = _components(file_id)
    why = _why_not_conformant(parts)
    if why is not None:
        raise ValueError(f"non-conformant File ID {'/'.join(parts)!r}: {why}")
    return Path(root).joinpath(*parts)


def path_to_file_id(root: Path, path: Path, *, lenient: bool = False) -> tuple[str, ...]:
    """Return the File ID of ``path``, a file under the File-set root ``root``.

    With ``lenient``, names as an ISO 9660 or FAT reader may present them are accepted: lower case is folded to
    upper case and an ISO 9660 version suffix (``";1"``, ``".;1"``) is removed before the check.

    Raises
    ------
    ValueError
        ``path`` is not under ``root``, or a component is not conformant (PS3.10 §8.2).
    """
    try:
        relative = Path(path).relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is not inside the File-set root {root}") from None
    parts = relative.parts
    if lenient:
        parts = tuple(_ISO_VERSION.sub("", part).upper() for part in parts)
    why = _why_not_conformant(parts)
    if why is not None:
        raise ValueError(f"{path}: not a conformant File ID: {why}")
    return parts


def fileset_id_from_label(label: str) -> str:
    """Turn a free-text label into a File-set ID (PS3.10 §8.5): upper case, ``[A-Z0-9_]``, at most 16 characters.

    Every other character becomes ``_``; runs of ``_`` are collapsed and trimmed from both ends.
    """
    cleaned = _NOT_FILE_ID_CHAR.sub("_", label.upper())
    cleaned = re.sub(r"_+", "_", cleaned).strip("_")
    return cleaned[:MAX_FILESET_ID_CHARS].rstrip("_")


def fileset_id_of(medium_id: str) -> str:
    """The File-set ID (and Volume Identifier) of a medium burned without a label: its medium ID in File ID
    characters, ``DCMS-0123456789AB`` -> ``DCMS0123456789AB`` (16 characters, the most PS3.10 §8.5 allows)."""
    return fileset_id_from_label(medium_id.replace("-", ""))


# --- Planning ------------------------------------------------------------------------------------------------


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


@dataclass(slots=True)
class _Planner:
    """Per-File-set memory: what each study and series record holds, so that inventions agree."""

    study_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    series_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    series_per_study: dict[str, int] = field(default_factory=dict)
    instances_per_series: dict[str, int] = field(default_factory=dict)
    patients: dict[str, tuple[tuple[str, str], Path]] = field(default_factory=dict)


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
    instance: _Instance
    path: tuple[DirectoryRecord, ...]  # from the top record down to the instance's own record


def _plan(
    instances: Sequence[Path], staging: Path, *, fileset_id: str, profile: Profile, fileset_uid: str | None
) -> FileSetPlan:
    """The work of :func:`build_fileset` (``staging`` exists and is empty)."""
    uid = fileset_uid or new_uid()
    label = fileset_id_from_label(fileset_id)
    root = DirectoryRecord("ROOT", "", {})
    planner = _Planner()
    notes: list[PlanNote] = []
    first_seen: dict[str, Path] = {}
    placed: list[_Placed] = []
    for source in map(Path, instances):
        header = read_header(source, _WANTED, stop_after=_STOP_AFTER, present=_PRESENT)
        if not is_allowed(profile, header.transfer_syntax_uid):
            raise ValueError(
                f"{source}: {UID(header.transfer_syntax_uid).name} is not allowed by {profile.value}; "
                "conform the file first"
            )
        instance = _Instance(header)
        mismatch = _align_with_meta(instance)
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
            path = _insert(root, instance, record_types)
        except InputError as exc:
            # One instance the DICOMDIR cannot index (no Study Instance UID, a key that does not decode) is
            # left out, with its reason; it does not stop the rest of the File-set.
            notes.append(PlanNote(kind=NoteKind.LEFT_OUT, path=source, message=exc.message))
            continue
        first_seen[sop_instance] = source
        _tidy_document_record(path[-1], instance)
        _add_profile_keys(path, instance, profile)
        _remember(planner, instance)
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


def _known_study_date(instance: _Instance) -> str:
    """The instance's Study Date, unless it is the placeholder written when the source had no date."""
    value = instance.text_or_empty("StudyDate")
    return "" if value == _DEFAULT_DATE else value


# --- What the records hold (PS3.3 F.5) -------------------------------------------------------------------------

# pydicom's record creators (pydicom.fileset DIRECTORY_RECORDERS) as data, so that the records keep the keys and
# the order of checks they had: per record type, the Type 1 keys checked first, then the record's keys, each
# "req" (checked above, copied), "opt" (copied, or an empty element when absent), "cond" (copied only when
# present, and then it must not be empty) or "type3" (a Type 3 key PS3.3 F.5 allows beyond pydicom's: copied
# when present and not empty, never a reason to refuse an instance).
_Fields = tuple[tuple[str, str], ...]
_GENERIC_CONTENT: tuple[tuple[str, ...], _Fields] = (
    ("InstanceNumber", "ContentDate", "ContentTime"),
    (("InstanceNumber", "req"), ("ContentDate", "req"), ("ContentTime", "req")),
)
_GENERIC_CONTENT_ID: tuple[tuple[str, ...], _Fields] = (
    ("InstanceNumber", "ContentDate", "ContentTime", "ContentLabel"),
    (
        ("InstanceNumber", "req"),
        ("ContentDate", "req"),
        ("ContentTime", "req"),
        ("ContentLabel", "req"),
        ("ContentDescription", "opt"),
        ("ContentCreatorName", "opt"),
    ),
)
_EMPTY: tuple[tuple[str, ...], _Fields] = ((), ())
_RECORD_KEYS: dict[str, tuple[tuple[str, ...], _Fields]] = {
    "PATIENT": (("PatientID",), (("PatientName", "opt"), ("PatientID", "req"))),
    "STUDY": (
        ("StudyDate", "StudyTime", "StudyID"),
        (
            ("StudyDate", "req"),
            ("StudyTime", "req"),
            ("StudyDescription", "opt"),
            ("StudyInstanceUID", "cond"),
            ("StudyID", "req"),
            ("AccessionNumber", "opt"),
        ),
    ),
    "SERIES": (
        ("Modality", "SeriesInstanceUID", "SeriesNumber"),
        (
            ("Modality", "req"),
            ("SeriesInstanceUID", "req"),
            ("SeriesNumber", "req"),
            # What a viewer's series list shows without opening the series (the medium's own viewer does).
            ("SeriesDescription", "type3"),
            ("SeriesDate", "type3"),
            ("SeriesTime", "type3"),
            ("BodyPartExamined", "type3"),
        ),
    ),
    "IMAGE": (("InstanceNumber",), (("InstanceNumber", "req"),)),
    "RT DOSE": (
        ("InstanceNumber", "DoseSummationType"),
        (("InstanceNumber", "req"), ("DoseSummationType", "req")),
    ),
    "RT STRUCTURE SET": (
        ("InstanceNumber", "StructureSetLabel"),
        (
            ("InstanceNumber", "req"),
            ("StructureSetLabel", "req"),
            ("StructureSetDate", "opt"),
            ("StructureSetTime", "opt"),
        ),
    ),
    "RT PLAN": (
        ("InstanceNumber", "RTPlanLabel"),
        (("InstanceNumber", "req"), ("RTPlanLabel", "req"), ("RTPlanDate", "opt"), ("RTPlanTime", "opt")),
    ),
    "RT TREAT RECORD": (
        ("InstanceNumber",),
        (("InstanceNumber", "req"), ("TreatmentDate", "opt"), ("TreatmentTime", "opt")),
    ),
    "PRESENTATION": (
        ("PresentationCreationDate", "PresentationCreationTime", "InstanceNumber", "ContentLabel"),
        (
            ("PresentationCreationDate", "req"),
            ("PresentationCreationTime", "req"),
            ("InstanceNumber", "req"),
            ("ContentLabel", "req"),
            ("ContentDescription", "opt"),
            ("ContentCreatorName", "opt"),
            ("ReferencedSeriesSequence", "cond"),
            ("BlendingSequence", "cond"),
        ),
    ),
    "WAVEFORM": _GENERIC_CONTENT,
    "SR DOCUMENT": (
        (
            "InstanceNumber",
            "CompletionFlag",
            "VerificationFlag",
            "ContentDate",
            "ContentTime",
            "ConceptNameCodeSequence",
        ),
        (
            ("InstanceNumber", "req"),
            ("CompletionFlag", "req"),
            ("VerificationFlag", "req"),
            ("ContentDate", "req"),
            ("ContentTime", "req"),
            ("VerificationDateTime", "cond"),
            ("ConceptNameCodeSequence", "req"),
            ("ContentSequence", "cond"),
        ),
    ),
    "KEY OBJECT DOC": (
        ("InstanceNumber", "ContentDate", "ContentTime", "ConceptNameCodeSequence"),
        (
            ("ContentDate", "req"),
            ("ContentTime", "req"),
            ("InstanceNumber", "req"),
            ("ConceptNameCodeSequence", "req"),
            ("ContentSequence", "cond"),
        ),
    ),
    "SPECTROSCOPY": (
        (
            "ImageType",
            "ContentDate",
            "ContentTime",
            "InstanceNumber",
            "NumberOfFrames",
            "Rows",
            "Columns",
            "DataPointRows",
            "DataPointColumns",
        ),
        (
            ("ImageType", "req"),
            ("ContentDate", "req"),
            ("ContentTime", "req"),
            ("InstanceNumber", "req"),
            ("ReferencedImageEvidenceSequence", "cond"),
            ("NumberOfFrames", "req"),
            ("Rows", "req"),
            ("Columns", "req"),
            ("DataPointRows", "req"),
            ("DataPointColumns", "req"),
        ),
    ),
    "RAW DATA": _GENERIC_CONTENT,
    "REGISTRATION": _GENERIC_CONTENT_ID,
    "FIDUCIAL": _GENERIC_CONTENT_ID,
    "HANGING PROTOCOL": (
        (
            "HangingProtocolCreator",
            "HangingProtocolCreationDateTime",
            "HangingProtocolDefinitionSequence",
            "NumberOfPriorsReferenced",
        ),
        (
            ("HangingProtocolCreator", "req"),
            ("HangingProtocolCreationDateTime", "req"),
            ("HangingProtocolDefinitionSequence", "req"),
            ("NumberOfPriorsReferenced", "req"),
            ("HangingProtocolUserIdentificationCodeSequence", "opt"),
        ),
    ),
    "ENCAP DOC": (
        ("InstanceNumber", "MIMETypeOfEncapsulatedDocument"),
        (
            ("ContentDate", "opt"),
            ("ContentTime", "opt"),
            ("InstanceNumber", "req"),
            ("DocumentTitle", "opt"),
            ("HL7InstanceIdentifier", "cond"),
            ("ConceptNameCodeSequence", "opt"),
            ("MIMETypeOfEncapsulatedDocument", "req"),
        ),
    ),
    "VALUE MAP": _GENERIC_CONTENT_ID,
    "STEREOMETRIC": _EMPTY,
    "PALETTE": (("ContentLabel",), (("ContentLabel", "req"), ("ContentDescription", "opt"))),
    "IMPLANT": (
        ("Manufacturer", "ImplantName", "ImplantPartNumber"),
        (
            ("Manufacturer", "req"),
            ("ImplantName", "req"),
            ("ImplantSize", "cond"),
            ("ImplantPartNumber", "req"),
        ),
    ),
    "IMPLANT ASSY": (
        ("ImplantAssemblyTemplateName", "Manufacturer", "ProcedureTypeCodeSequence"),
        (
            ("ImplantAssemblyTemplateName", "req"),
            ("Manufacturer", "req"),
            ("ProcedureTypeCodeSequence", "req"),
        ),
    ),
    "IMPLANT GROUP": (
        ("ImplantTemplateGroupName", "ImplantTemplateGroupIssuer"),
        (("ImplantTemplateGroupName", "req"), ("ImplantTemplateGroupIssuer", "req")),
    ),
    "PLAN": _EMPTY,
    "MEASUREMENT": _GENERIC_CONTENT_ID,
    "SURFACE": _GENERIC_CONTENT_ID,
    "SURFACE SCAN": (("ContentDate", "ContentTime"), (("ContentDate", "req"), ("ContentTime", "req"))),
    "TRACT": _GENERIC_CONTENT_ID,
    "ASSESSMENT": (
        ("InstanceNumber", "InstanceCreationDate"),
        (("InstanceNumber", "req"), ("InstanceCreationDate", "req"), ("InstanceCreationTime", "opt")),
    ),
    "RADIOTHERAPY": (
        ("InstanceNumber",),
        (
            ("InstanceNumber", "req"),
            ("UserContentLabel", "cond"),
            ("UserContentLongLabel", "cond"),
            ("ContentDescription", "opt"),
            ("ContentCreatorName", "opt"),
        ),
    ),
}
_FOUR_LEVELS = ("PATIENT", "STUDY", "SERIES")
# Keywords read for the plan itself: identity, inventions (dates and times), SR verification, H.3-2 lookups.
_PLANNING_KEYWORDS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "PatientName",
    "PatientBirthDate",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    *_DATE_SOURCES,
    *_TIME_SOURCES,
    "VerifyingObserverSequence",
    "SharedFunctionalGroupsSequence",
)
# Presence only (its value can be large and is never read): it makes the leaf an ENCAP DOC record.
_ENCAPSULATED_DOCUMENT = 0x00420011
_RT_PLAN_LABEL = 0x300A0002


def _keyword_table() -> dict[str, tuple[int, str]]:
    keywords: set[str] = set(_PLANNING_KEYWORDS)
    for checks, fields in _RECORD_KEYS.values():
        keywords.update(checks)
        keywords.update(keyword for keyword, _ in fields)
    for profile in Profile:
        for names in profile.additional_keys.values():
            keywords.update(names)
    table: dict[str, tuple[int, str]] = {}
    for keyword in sorted(keywords):
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise RuntimeError(f"{keyword} is not in pydicom's data dictionary")
        table[keyword] = (tag, dictionary_VR(tag))
    return table


_KEYS = _keyword_table()
_WANTED = frozenset(tag for tag, _ in _KEYS.values())
_PRESENT = frozenset({_ENCAPSULATED_DOCUMENT, _RT_PLAN_LABEL})
_STOP_AFTER = max(_WANTED | _PRESENT)

# Values whose raw bytes are what pydicom would write back after reading them ("canonical"): copied as they
# are. Anything else (another character set, unusual padding or spacing, big endian numbers, sequences) goes
# through pydicom's decoder and element writer, so the record holds what pydicom's FileSet would have put there.
_ASCII_TEXT = rb"[\x21-\x5b\x5d-\x7e](?:[\x20-\x5b\x5d-\x7e]*[\x21-\x5b\x5d-\x7e])?"
_PN_TEXT = rb"[\x21-\x3c\x3e-\x5b\x5d-\x7e](?:[\x20-\x3c\x3e-\x5b\x5d-\x7e]*[\x21-\x3c\x3e-\x5b\x5d-\x7e])?"
_CANONICAL = {
    "UI": re.compile(rb"[0-9.]+(?:\\[0-9.]+)*"),
    "IS": re.compile(rb"[+-]?[0-9]+(?:\\[+-]?[0-9]+)*"),
    "DS": re.compile(rb"[0-9+\-.eE]+(?:\\[0-9+\-.eE]+)*"),
    "DA": re.compile(rb"[0-9]+(?:\\[0-9]+)*"),
    "TM": re.compile(rb"[0-9.]+(?:\\[0-9.]+)*"),
    "DT": re.compile(rb"[0-9.+\-]+(?:\\[0-9.+\-]+)*"),
    **{
        vr: re.compile(_ASCII_TEXT + rb"(?:\\" + _ASCII_TEXT + rb")*")
        for vr in ("AE", "AS", "CS", "SH", "LO")
    },
    # Person names without component groups: pydicom drops empty trailing "=" groups when it writes them back.
    "PN": re.compile(_PN_TEXT + rb"(?:\\" + _PN_TEXT + rb")*"),
    **{vr: re.compile(rb"[\x20-\x7e\r\n\t]*[\x21-\x7e\r\n\t]") for vr in ("ST", "LT", "UT", "UR", "UC")},
}
#: Fixed-size binary values: the same bytes in little endian whichever way they were read.
_BINARY_VRS = frozenset(
    {"US", "UL", "SS", "SL", "FL", "FD", "AT", "SV", "UV", "OB", "OW", "OD", "OF", "OL", "OV"}
)
_NUMBER_TEXT_VRS = frozenset({"IS", "DS"})


def _canonical_text(vr: str, raw: bytes) -> bytes | None:
    """The value of a text element without its padding, if pydicom would write ``raw`` back unchanged."""
    if len(raw) & 1:
        return None
    pad = b"\x00" if vr == "UI" else b" "
    value = raw[:-1] if raw[-1:] == pad else raw
    pattern = _CANONICAL.get(vr)
    if pattern is None or not pattern.fullmatch(value):
        return None
    return value


# What pydicom raises for values it cannot decode or encode (hostile or broken input).
_PYDICOM_VALUE_ERRORS = (
    ValueError,
    KeyError,
    EOFError,
    NotImplementedError,
    TypeError,
    struct.error,
    BytesLengthException,
)


class _Instance:
    """What planning knows of one instance: its raw header, plus what planning supplied (never written back)."""

    __slots__ = ("_scratch", "encodings", "header", "removed", "supplied")

    def __init__(self, header: Header) -> None:
        self.header = header
        self.supplied: dict[str, str] = {}
        self.removed: set[str] = set()
        self._scratch: Dataset | None = None
        charset = header.values.get(_KEYS["SpecificCharacterSet"][0])
        self.encodings: list[str] | None = None
        if charset is not None and charset.value.strip(b" \x00"):
            self.encodings = [part.strip().decode("ascii", "replace") for part in charset.value.split(b"\\")]

    def _raw(self, keyword: str) -> RawValue | None:
        if keyword in self.removed:
            return None
        return self.header.values.get(_KEYS[keyword][0])

    def has(self, keyword: str) -> bool:
        """``keyword in ds``."""
        return keyword in self.supplied or self._raw(keyword) is not None

    def is_empty(self, keyword: str) -> bool:
        """Whether the element holds no value (VM 0, as pydicom's record creators test it)."""
        if keyword in self.supplied:
            return not self.supplied[keyword]
        raw = self._raw(keyword)
        if raw is None:
            return True
        if raw.vr in _BINARY_VRS or raw.vr == "SQ":
            return not raw.value
        return not raw.value.strip(b" \x00")

    def set(self, keyword: str, value: str) -> None:
        """Give ``keyword`` a value in our in-memory view (the file is not touched)."""
        self.supplied[keyword] = value

    def text(self, keyword: str) -> str:
        """``str(ds.get(keyword, "") or "")``: the value as text, "" when absent, empty or zero."""
        if keyword in self.supplied:
            return self.supplied[keyword]
        raw = self._raw(keyword)
        if raw is None or not raw.value:
            return ""
        vr = _KEYS[keyword][1]
        if raw.vr == vr and vr in _CANONICAL:
            value = _canonical_text(vr, raw.value)
            if value is not None and b"\\" not in value:
                if vr in _NUMBER_TEXT_VRS and float(value) == 0:
                    return ""
                return value.decode("ascii")
        found = self.value(keyword)
        return str(found or "")

    def text_or_empty(self, keyword: str) -> str:
        """:meth:`text`, or "" when the value does not decode (for what only informs: notes, counts, the plan)."""
        try:
            return self.text(keyword)
        except InputError:
            return ""

    def value(self, keyword: str) -> object:
        """The value as pydicom decodes it (the slow path: sequences, other character sets, odd encodings)."""
        raw = self._raw(keyword)
        if raw is None:
            return self.supplied.get(keyword)
        if self._scratch is None:
            self._scratch = Dataset()
            charset = self._raw("SpecificCharacterSet")
            if charset is not None:
                self._scratch[0x00080005] = self._raw_element(0x00080005, charset)
        tag = _KEYS[keyword][0]
        self._scratch[tag] = self._raw_element(tag, raw)
        try:
            return self._scratch[tag].value
        except _PYDICOM_VALUE_ERRORS as exc:
            raise InputError(
                f"cannot build its DICOMDIR records: {keyword} does not decode: {exc}", path=self.header.path
            ) from exc

    def _raw_element(self, tag: int, raw: RawValue) -> RawDataElement:
        implicit = self.header.implicit_vr
        return RawDataElement(
            BaseTag(tag),
            None if implicit else raw.vr,
            len(raw.value),
            raw.value,
            0,
            implicit,
            self.header.little_endian,
        )

    def element(self, keyword: str) -> bytes:
        """``keyword`` as a record element (dictionary VR, as ``record.Keyword = ds.Keyword`` makes it)."""
        tag, vr = _KEYS[keyword]
        if keyword in self.supplied:
            return encode_text(tag, vr, self.supplied[keyword], self.encodings)
        raw = self._raw(keyword)
        if raw is None or not raw.value:
            return encode_element(tag, vr, b"")
        if raw.vr == vr:
            if vr in _BINARY_VRS:
                if self.header.little_endian and (vr in LONG_VRS or len(raw.value) <= 0xFFFF):
                    return encode_element(tag, vr, raw.value)
            elif _canonical_text(vr, raw.value) is not None:
                return encode_element(tag, vr, raw.value)
        return self.pydicom_element(tag, vr, self.value(keyword))

    def pydicom_element(self, tag: int, vr: str, value: object) -> bytes:
        """A record element holding a pydicom value, encoded as pydicom's writer does."""
        try:
            return encode_with_pydicom(DataElement(tag, vr, copy.deepcopy(value)), self.encodings)
        except _PYDICOM_VALUE_ERRORS as exc:
            raise InputError(
                f"cannot build its DICOMDIR records: ({tag >> 16:04X},{tag & 0xFFFF:04X}) does not encode: {exc}",
                path=self.header.path,
            ) from exc


def _align_with_meta(instance: _Instance) -> str:
    """Make our view of the data set carry the File Meta UIDs; return what differed, "" when nothing did.

    PS3.3 F.3.2.2: Referenced SOP Class/Instance UID in File are the File Meta (0002,0002)/(0002,0003) values,
    which is also what a reader checks the DICOMDIR against (:func:`read_file_facts`).
    """
    differs = []
    header = instance.header
    for keyword, meta_value in (
        ("SOPClassUID", header.sop_class_uid),
        ("SOPInstanceUID", header.sop_instance_uid),
    ):
        value = instance.text(keyword)
        if value and value != meta_value:
            differs.append(f"{keyword} {value} (File Meta: {meta_value})")
        instance.set(keyword, meta_value)
    if not differs:
        return ""
    return f"the data set's {' and '.join(differs)} differ; the DICOMDIR references the File Meta values"


def _leaf_type(instance: _Instance) -> str:
    """pydicom's ``_four_level_record_type``: the record type of the instance under its SERIES record."""
    modality = instance.text("Modality")
    if modality in ("RTINTENT", "RTSEGANN", "RTRAD"):
        return "RADIOTHERAPY"
    if modality == "PLAN":
        return "PLAN"
    if _ENCAPSULATED_DOCUMENT in instance.header.present:
        return "ENCAP DOC"
    if _RT_PLAN_LABEL in instance.header.present:
        return "RT PLAN"
    return str(_FOUR_LEVEL_SOP_CLASSES.get(UID(instance.header.sop_class_uid), "IMAGE"))


def _record_types(instance: _Instance) -> tuple[str, ...]:
    single = _SINGLE_LEVEL_SOP_CLASSES.get(UID(instance.header.sop_class_uid))
    if single is not None:
        return (str(single),)
    return (*_FOUR_LEVELS, _leaf_type(instance))


def _first_missing(instance: _Instance, record_types: tuple[str, ...]) -> tuple[str, str, str] | None:
    """The first key a record creator would refuse, as (record type, keyword, problem), in pydicom's order."""
    for record_type in record_types:
        checks, fields = _RECORD_KEYS[record_type]
        for keyword in checks:
            if not instance.has(keyword):
                return record_type, keyword, "is missing"
            if instance.is_empty(keyword):
                return record_type, keyword, "cannot be empty"
        for keyword, mode in fields:
            if mode != "cond" or not instance.has(keyword) or not instance.is_empty(keyword):
                continue
            if _KEYS[keyword][1] == "SQ":
                # An optional sequence present but empty: the record leaves it out, as if it were absent.
                instance.removed.add(keyword)
                continue
            return record_type, keyword, "cannot be empty"
        if record_type == "STUDY" and not instance.has("StudyInstanceUID"):
            # pydicom would key the STUDY record by a UID only the leaf has; PS3.3 F.5.2 needs the study's own.
            return record_type, "StudyInstanceUID", "is missing"
    return None


def _records(instance: _Instance, source: Path, planner: _Planner, notes: list[PlanNote]) -> tuple[str, ...]:
    """The instance's record types, top down, once each Type 1 key it lacks is supplied (PS3.11 D.3-2 note)."""
    supplied: set[str] = set()
    for _ in range(_MAX_INVENTIONS):
        record_types = _record_types(instance)
        missing = _first_missing(instance, record_types)
        if missing is None:
            return record_types
        record_type, keyword, problem = missing
        tag = _KEYS[keyword][0]
        reason = (
            f"cannot build its DICOMDIR records: the {record_type} record needs ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
            f"{keyword}, which {problem} (PS3.3 F.5)"
        )
        if keyword in supplied or (keyword == "StudyInstanceUID" and not instance.has(keyword)):
            raise InputError(reason, path=source)
        supplied.add(keyword)
        note = _supply(instance, keyword, planner)
        if note is None:
            raise InputError(reason, path=source)
        if note:
            notes.append(PlanNote(kind=NoteKind.INVENTED, path=source, message=note))
    raise InputError("cannot build its DICOMDIR records: too many missing keys", path=source)


def _record(instance: _Instance, record_type: str, four_levels: bool) -> DirectoryRecord:
    """One directory record from the instance, as pydicom's creator for ``record_type`` makes it."""
    _, fields = _RECORD_KEYS[record_type]
    elements: dict[int, bytes] = {}
    if four_levels and instance.has("SpecificCharacterSet"):
        elements[_KEYS["SpecificCharacterSet"][0]] = instance.element("SpecificCharacterSet")
    for keyword, mode in fields:
        if mode == "cond" and not instance.has(keyword):
            continue
        if mode == "type3" and (not instance.has(keyword) or instance.is_empty(keyword)):
            continue
        elements[_KEYS[keyword][0]] = instance.element(keyword)
    if record_type not in _FOUR_LEVELS:
        header = instance.header
        for tag, value in (
            (0x00041510, header.sop_class_uid),
            (0x00041511, header.sop_instance_uid),
            (0x00041512, header.transfer_syntax_uid),
        ):
            elements[tag] = encode_element(tag, "UI", value.encode("ascii", "replace"))
    return DirectoryRecord(record_type, _key(instance, record_type), elements)


def _insert(
    root: DirectoryRecord, instance: _Instance, record_types: tuple[str, ...]
) -> tuple[DirectoryRecord, ...]:
    """Link the instance's records under ``root``, joining the PATIENT/STUDY/SERIES records with the same keys.

    A record that already exists is not built again: the first instance's record stands (as in pydicom). The
    new records are all built before any is linked, so an instance whose keys do not encode leaves no trace.

    Raises
    ------
    InputError
        A record key does not decode or encode.
    """
    path: list[DirectoryRecord] = []
    parent = root
    levels = record_types[:-1]
    while len(path) < len(levels):
        found = parent.by_key.get(_key(instance, levels[len(path)]))
        if found is None:
            break
        path.append(found)
        parent = found
    new = [_record(instance, record_type, True) for record_type in levels[len(path) :]]
    leaf = _record(instance, record_types[-1], len(record_types) > 1)
    for record in new:
        parent = parent.child(record)
        path.append(parent)
    parent.append(leaf)
    path.append(leaf)
    return tuple(path)


def _key(instance: _Instance, record_type: str) -> str:
    """The key that makes a record unique among its siblings (PS3.3 F.5.1-F.5.3; pydicom's RecordNode.key)."""
    if record_type == "PATIENT":
        return instance.text("PatientID")
    if record_type == "STUDY":
        return instance.text("StudyInstanceUID")
    if record_type == "SERIES":
        return instance.text("SeriesInstanceUID")
    return instance.header.sop_instance_uid


def _supply(instance: _Instance, keyword: str, planner: _Planner) -> str | None:
    """Give ``keyword`` a value in our view of the instance (the file is never changed).

    Returns the note to report, ``""`` when the value is the one its existing STUDY or SERIES record already
    holds (nothing new for the user), or None when dcmseal cannot supply the key.
    """
    study = _study_key(instance)
    if keyword in _STUDY_KEYS and keyword in planner.study_keys.get(study, {}):
        # The STUDY record already exists: reuse its value, nothing new is invented.
        instance.set(keyword, planner.study_keys[study][keyword])
        return ""
    series = instance.text("SeriesInstanceUID")
    if keyword in _SERIES_KEYS and keyword in planner.series_keys.get(series, {}):
        instance.set(keyword, planner.series_keys[series][keyword])
        return ""

    value: str | None
    if keyword == "PatientID":
        value = _invent_patient_id(instance)
        why = "from a hash of the patient's name and birth date (or of the study when there is no name)"
    elif keyword == "StudyID":
        value = _digest(study)[:8]
        why = "from a hash of the Study Instance UID"
    elif keyword == "StudyDate":
        value = _first_value(instance, _DATE_SOURCES) or _DEFAULT_DATE
        why = "from the series, acquisition or content date (19000101 when none is known)"
    elif keyword == "StudyTime":
        value = _first_value(instance, _TIME_SOURCES) or _DEFAULT_TIME
        why = "from the series, acquisition or content time (000000 when none is known)"
    elif keyword == "SeriesNumber":
        value = str(planner.series_per_study.get(study, 0) + 1)
        why = "from the order of the series in the input"
    elif keyword == "InstanceNumber":
        value = str(planner.instances_per_series.get(series, 0) + 1)
        why = "from the order of the instance in its series in the input"
    elif keyword == "Modality":
        value, why = "OT", "Other"
    elif keyword == "SeriesInstanceUID":
        value = derived_uid("dcmseal-series", study, instance.text("Modality"))
        why = "derived from the Study Instance UID and the modality"
    elif keyword in _ENUMERATED_DEFAULTS:
        value, why = _ENUMERATED_DEFAULTS[keyword], "the most cautious enumerated value"
    else:
        value, why = _by_vr(instance, keyword)
        if value is None:
            return None
    instance.set(keyword, value)
    return f"{keyword} is empty or missing; the DICOMDIR uses the invented value {value!r} ({why})"


def _by_vr(instance: _Instance, keyword: str) -> tuple[str | None, str]:
    vr = _KEYS[keyword][1]
    if vr == "SQ":
        return None, ""  # a required sequence cannot be made up
    if vr == "UI":
        return derived_uid(
            "dcmseal", keyword, instance.header.sop_instance_uid
        ), "derived from the SOP Instance UID"
    if vr == "DA":
        return _first_value(instance, _DATE_SOURCES) or _DEFAULT_DATE, "from the instance's other dates"
    if vr == "TM":
        return _first_value(instance, _TIME_SOURCES) or _DEFAULT_TIME, "from the instance's other times"
    value = _VR_DEFAULTS.get(vr)
    return value, f"the placeholder for VR {vr}"


def _first_value(instance: _Instance, keywords: Sequence[str]) -> str:
    for keyword in keywords:
        value = instance.text(keyword).strip()
        if value:
            return value
    return ""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()


def _study_key(instance: _Instance) -> str:
    # A STUDY record is keyed by its Study Instance UID, else by the instance it references.
    return instance.text("StudyInstanceUID") or instance.header.sop_instance_uid


def _patient_identity(instance: _Instance) -> tuple[str, str]:
    name = "^".join(part.strip() for part in instance.text_or_empty("PatientName").upper().split("^"))
    return name.rstrip("^ "), instance.text_or_empty("PatientBirthDate").strip()


def _invent_patient_id(instance: _Instance) -> str:
    name, birth = _patient_identity(instance)
    basis = f"{name}|{birth}" if name else f"study|{_study_key(instance)}"
    return f"{INVENTED_PATIENT_ID_PREFIX}{_digest(basis)[:8]}"


def _remember(planner: _Planner, instance: _Instance) -> None:
    """Record the keys of the records this instance created or joined, and count it in its series."""
    study = _study_key(instance)
    series = instance.text_or_empty("SeriesInstanceUID")
    if series and series not in planner.series_keys:
        planner.series_per_study[study] = planner.series_per_study.get(study, 0) + 1
    study_keys = planner.study_keys.setdefault(study, {})
    for keyword in _STUDY_KEYS:
        if keyword not in study_keys:
            value = instance.text_or_empty(keyword)
            if value:
                study_keys[keyword] = value
    series_keys = planner.series_keys.setdefault(series, {})
    for keyword in _SERIES_KEYS:
        if keyword not in series_keys:
            value = instance.text_or_empty(keyword)
            if value:
                series_keys[keyword] = value
    planner.instances_per_series[series] = planner.instances_per_series.get(series, 0) + 1


def _patient_conflict(planner: _Planner, instance: _Instance, source: Path) -> PlanNote | None:
    patient_id = instance.text_or_empty("PatientID")
    if not patient_id:
        return None
    identity = _patient_identity(instance)
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


def _tidy_document_record(record: DirectoryRecord, instance: _Instance) -> None:
    """Trim SR DOCUMENT and KEY OBJECT DOC records to what PS3.3 F.5 allows.

    pydicom's creators copy the whole Content Sequence, i.e. the report (and its identifiers), into the
    DICOMDIR; the record keys hold only the Document Title's modifiers, the items with relationship HAS CONCEPT
    MOD. For a VERIFIED report, Verification DateTime (Type 1C in the record) lives in the instance's Verifying
    Observer Sequence.
    """
    if record.record_type not in ("SR DOCUMENT", "KEY OBJECT DOC"):
        return
    content = _KEYS["ContentSequence"][0]
    if content in record.elements:
        del record.elements[content]
        try:
            items = instance.value("ContentSequence") or []
            modifiers = [item for item in items if item.get("RelationshipType") == "HAS CONCEPT MOD"]  # type: ignore[attr-defined]
            if modifiers:
                record.elements[content] = instance.pydicom_element(content, "SQ", modifiers)
        except (InputError, *_PYDICOM_VALUE_ERRORS):
            logger.debug(
                "%s: Content Sequence does not decode; the record goes without it", instance.header.path
            )
    verification = _KEYS["VerificationDateTime"][0]
    if instance.text_or_empty("VerificationFlag") == "VERIFIED" and not record.has_value(verification):
        try:
            observers = instance.value("VerifyingObserverSequence") or []
            stamps = [
                str(item.VerificationDateTime)
                for item in observers  # type: ignore[attr-defined]
                if item.get("VerificationDateTime")
            ]
        except (InputError, *_PYDICOM_VALUE_ERRORS):
            stamps = []
        if stamps:
            record.elements[verification] = encode_text(verification, "DT", max(stamps), instance.encodings)


def _add_profile_keys(path: tuple[DirectoryRecord, ...], instance: _Instance, profile: Profile) -> None:
    """Copy the profile's additional keys (PS3.11 Tables D.3-2, H.3-2) into the instance's records."""
    keys = profile.additional_keys
    for record in reversed(path):
        for keyword in keys.get(record.record_type, ()):
            tag = _KEYS[keyword][0]
            if record.has_value(tag):
                continue  # set by the record creator or by an earlier instance of the same patient or series
            try:
                if instance.has(keyword) and not instance.is_empty(keyword):
                    record.elements[tag] = instance.element(keyword)
                    continue
                nested = _functional_group_value(instance, keyword)
                if nested is not None:
                    record.elements[tag] = instance.pydicom_element(tag, _KEYS[keyword][1], nested)
            except (InputError, *_PYDICOM_VALUE_ERRORS):
                # An optional key (Type 1C "if present") that does not decode stays out of the record.
                logger.debug("%s: %s does not decode; left out of the record", instance.header.path, keyword)


def _functional_group_value(instance: _Instance, keyword: str) -> object | None:
    """``keyword``'s non-empty value in the first Shared Functional Groups item's macros (Table H.3-2)."""
    if keyword not in _FUNCTIONAL_GROUP_KEYS or not instance.has("SharedFunctionalGroupsSequence"):
        return None
    groups = instance.value("SharedFunctionalGroupsSequence") or []
    for group in list(groups)[:1]:  # type: ignore[call-overload]
        for element in group:
            if element.VR != "SQ":
                continue
            for item in element.value[:1]:
                nested: object | None = item.get(keyword)
                if nested is not None and nested != "" and nested != []:
                    return nested
    return None


# --- Reading a DICOMDIR back ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryEntry:
    """A directory record that references a file (PS3.3 F.3.2.2), with the keys of the records above it."""

    record_type: str
    file_id: tuple[str, ...]
    referenced_sop_class_uid: str
    referenced_sop_instance_uid: str
    referenced_transfer_syntax_uid: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    #: Byte offset of the record's item in the DICOMDIR (0 when unknown).
    offset: int = 0
    #: The STUDY record's Study Date (DA); "" when it has none, or the placeholder a burn writes for none.
    study_date: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DicomDir:
    """What a DICOMDIR says: the File-set's identity and every file it references."""

    path: Path
    fileset_uid: str
    fileset_id: str
    transfer_syntax_uid: str
    entries: tuple[DirectoryEntry, ...]

    def by_file_id(self) -> dict[tuple[str, ...], DirectoryEntry]:
        """The entries by File ID (the first when two records reference one file)."""
        found: dict[tuple[str, ...], DirectoryEntry] = {}
        for entry in self.entries:
            found.setdefault(entry.file_id, entry)
        return found


_NEXT = "OffsetOfTheNextDirectoryRecord"
_LOWER = "OffsetOfReferencedLowerLevelDirectoryEntity"
_FIRST = "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"
_Context = tuple[str, str, str, str]  # patient ID, Study Instance UID, Series Instance UID, Study Date
_RecordLike = Dataset | Mapping[str, object]  # a record as pydicom reads it, or as _read_dicomdir_fast does


def read_dicomdir(path: Path) -> DicomDir:
    """Read a plain (already decrypted) DICOMDIR: File-set identity and every referenced file (PS3.3 F.3).

    The record hierarchy is followed through its offsets from the root; records no offset reaches (orphans, or
    a root offset that points at the wrong record) are walked as extra roots, and a DICOMDIR without any
    offsets is read in sequence order. Explicit or implicit VR and big endian encodings are accepted, as
    pydicom reads them. Records whose Record In-use Flag is 0000H are skipped.

    Raises
    ------
    NotPart10Error
        ``path`` is not a PS3.10 file.
    InputError
        ``path`` is a PS3.10 file but not a Media Storage Directory (DICOMDIR).
    """
    path = Path(path)
    fast = _read_dicomdir_fast(path)
    if fast is not None:
        return fast
    try:
        ds = dcmread(path)
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError) as exc:
        raise NotPart10Error(f"not a readable DICOMDIR: {exc}", path=path) from exc
    sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class != MEDIA_STORAGE_DIRECTORY_SOP_CLASS and "DirectoryRecordSequence" not in ds:
        raise InputError(
            f"not a DICOMDIR: its SOP class is {sop_class or 'missing'}, not Media Storage Directory Storage "
            f"({MEDIA_STORAGE_DIRECTORY_SOP_CLASS})",
            path=path,
        )
    records = list(ds.get("DirectoryRecordSequence", None) or [])
    entries = tuple(_entries(ds, records))
    return DicomDir(
        path=path,
        fileset_uid=str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or ""),
        fileset_id=str(ds.get("FileSetID", "") or ""),
        transfer_syntax_uid=str(ds.file_meta.get("TransferSyntaxUID", "") or ""),
        entries=entries,
    )


# The record keys a reader of the hierarchy needs (PS3.3 F.3.2.2, F.5.1-F.5.3), by tag.
_DIRECTORY_KEYS = {
    0x00041400: "OffsetOfTheNextDirectoryRecord",
    0x00041410: "RecordInUseFlag",
    0x00041420: "OffsetOfReferencedLowerLevelDirectoryEntity",
    0x00041430: "DirectoryRecordType",
    0x00041500: "ReferencedFileID",
    0x00041510: "ReferencedSOPClassUIDInFile",
    0x00041511: "ReferencedSOPInstanceUIDInFile",
    0x00041512: "ReferencedTransferSyntaxUIDInFile",
    0x00080020: "StudyDate",
    0x00100020: "PatientID",
    0x0020000D: "StudyInstanceUID",
    0x0020000E: "SeriesInstanceUID",
}
_ROOT_KEYS = {0x00041130: "FileSetID", 0x00041200: _FIRST, 0x00041220: "DirectoryRecordSequence"}


class _FastRecord(dict[str, object]):
    """A directory record's keys as :func:`read_dicomdir` uses them, with pydicom's ``seq_item_tell``."""

    seq_item_tell: int = 0


def _read_dicomdir_fast(path: Path) -> DicomDir | None:
    """:func:`read_dicomdir` without pydicom: the record keys only; None when pydicom should read it instead.

    pydicom parses every element of every record (0.25 ms a record); this reads the dozen keys the hierarchy
    needs. Anything unusual (a non-ASCII key, a malformed record, no record sequence) goes to pydicom, which is
    more forgiving and names the problem.
    """
    try:
        header = read_header(path, frozenset(_ROOT_KEYS), stop_after=0x00041220)
        sequence = header.values.get(0x00041220)
        if sequence is None or sequence.vr != "SQ":
            return None
        root = _decode_keys(header.values, _ROOT_KEYS, header.little_endian)
        records: list[_FastRecord] = []
        for at, values in read_items(
            sequence, _DIRECTORY_KEYS, little_endian=header.little_endian, implicit_vr=header.implicit_vr
        ):
            record = _FastRecord(_decode_keys(values, _DIRECTORY_KEYS, header.little_endian))
            record.seq_item_tell = at
            records.append(record)
    except (NotPart10Error, UnicodeDecodeError, struct.error, OSError):
        return None  # pydicom reads it, or says in its own words why it cannot
    return DicomDir(
        path=path,
        fileset_uid=header.sop_instance_uid,
        fileset_id=str(root.get("FileSetID", "") or ""),
        transfer_syntax_uid=header.transfer_syntax_uid,
        entries=tuple(_entries(root, records)),
    )


def _decode_keys(values: Mapping[int, RawValue], names: Mapping[int, str], little: bool) -> dict[str, object]:
    """Decode the few VRs the directory keys use: UL, US, and ASCII text (split at backslashes)."""
    decoded: dict[str, object] = {}
    order = "<" if little else ">"
    for tag, raw in values.items():
        name = names.get(tag)
        if name is None or raw.vr == "SQ":
            continue
        if raw.vr in ("UL", "US"):
            width = 4 if raw.vr == "UL" else 2
            if len(raw.value) != width:
                raise struct.error(f"{name}: {len(raw.value)} bytes")
            decoded[name] = struct.unpack(order + ("I" if width == 4 else "H"), raw.value)[0]
            continue
        parts = [part.rstrip(b" \x00").decode("ascii") for part in raw.value.split(b"\\")]
        decoded[name] = parts if len(parts) > 1 else parts[0]
    return decoded


def _offset(record: _RecordLike, keyword: str) -> int:
    try:
        return int(record.get(keyword, 0) or 0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _entries(ds: _RecordLike, records: Sequence[_RecordLike]) -> Iterator[DirectoryEntry]:
    by_offset = {int(tell): r for r in records if (tell := getattr(r, "seq_item_tell", None)) is not None}
    linked = any(_offset(r, _NEXT) or _offset(r, _LOWER) for r in records)
    if not linked or len(by_offset) != len(records):
        yield from _entries_in_sequence_order(records)
        return
    pointed = {_offset(r, k) for r in records for k in (_NEXT, _LOWER)}
    roots = [_offset(ds, _FIRST)]
    roots += [offset for offset in sorted(by_offset) if offset not in pointed]
    visited: set[int] = set()
    for root in roots:
        # Pre-order walk with an explicit stack: hostile offsets can make cycles and deep chains.
        stack: list[tuple[int, _Context]] = [(root, ("", "", "", ""))]
        while stack:
            offset, context = stack.pop()
            record = by_offset.get(offset)
            if record is None or offset in visited:
                continue
            visited.add(offset)
            own = _context(record, context)
            entry = _entry(record, own, offset)
            if entry is not None:
                yield entry
            stack.append((_offset(record, _NEXT), context))
            stack.append((_offset(record, _LOWER), own))


def _entries_in_sequence_order(records: Sequence[_RecordLike]) -> Iterator[DirectoryEntry]:
    context: _Context = ("", "", "", "")
    for record in records:
        context = _context(record, context)
        entry = _entry(record, context, int(getattr(record, "seq_item_tell", 0) or 0))
        if entry is not None:
            yield entry


def _context(record: _RecordLike, parent: _Context) -> _Context:
    patient, study, series, date = parent
    kind = str(record.get("DirectoryRecordType", "") or "")
    if kind == "PATIENT":
        return str(record.get("PatientID", "") or ""), "", "", ""
    if kind == "STUDY":
        return (
            patient,
            str(record.get("StudyInstanceUID", "") or ""),
            "",
            str(record.get("StudyDate", "") or ""),
        )
    if kind == "SERIES":
        return patient, study, str(record.get("SeriesInstanceUID", "") or ""), date
    return patient, study, series, date


def _entry(record: _RecordLike, context: _Context, offset: int) -> DirectoryEntry | None:
    file_id = record.get("ReferencedFileID")
    if not file_id:
        return None
    if record.get("RecordInUseFlag") == 0:
        return None
    parts = (str(file_id),) if isinstance(file_id, str) else tuple(str(part) for part in file_id)  # type: ignore[union-attr]
    patient, study, series, date = context
    return DirectoryEntry(
        record_type=str(record.get("DirectoryRecordType", "") or ""),
        file_id=parts,
        referenced_sop_class_uid=str(record.get("ReferencedSOPClassUIDInFile", "") or ""),
        referenced_sop_instance_uid=str(record.get("ReferencedSOPInstanceUIDInFile", "") or ""),
        referenced_transfer_syntax_uid=str(record.get("ReferencedTransferSyntaxUIDInFile", "") or ""),
        patient_id=patient,
        study_instance_uid=study,
        series_instance_uid=series,
        offset=offset,
        study_date="" if date == _DEFAULT_DATE else date,
    )


# --- Checking a DICOMDIR against the files -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FileFacts:
    """What a file on the medium says about itself (its File Meta Information, PS3.10 §7.1)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def read_file_facts(path: Path) -> FileFacts:
    """Read :class:`FileFacts` from a PS3.10 file's File Meta Information.

    Raises
    ------
    NotPart10Error
        ``path`` is not a PS3.10 file.
    """
    meta = read_file_meta(path)
    return FileFacts(
        sop_class_uid=meta.sop_class_uid,
        sop_instance_uid=meta.sop_instance_uid,
        transfer_syntax_uid=meta.transfer_syntax_uid,
    )


class DisagreementKind(enum.StrEnum):
    """How a DICOMDIR and the files of its File-set disagree."""

    MISSING_FILE = "missing-file"  # a record references a file that is not there
    UNREFERENCED_FILE = "unreferenced-file"  # a DICOM file no record references (PS3.11 D.3.3)
    UID_MISMATCH = "uid-mismatch"  # (0004,1511) differs from the file's Media Storage SOP Instance UID
    CLASS_MISMATCH = "class-mismatch"  # (0004,1510) differs from the file's Media Storage SOP Class UID
    TS_MISMATCH = "ts-mismatch"  # (0004,1512) differs from the file's Transfer Syntax UID


@dataclass(frozen=True, slots=True, kw_only=True)
class Disagreement:
    """One way the DICOMDIR and a file disagree."""

    kind: DisagreementKind
    file_id: tuple[str, ...]
    expected: str
    found: str
    message: str

    def to_json(self) -> dict[str, object]:
        """The disagreement as JSON-ready values."""
        return {
            "kind": self.kind.value,
            "file_id": list(self.file_id),
            "expected": self.expected,
            "found": self.found,
            "message": self.message,
        }


def check_agreement(dicomdir: DicomDir, files: Mapping[tuple[str, ...], FileFacts]) -> list[Disagreement]:
    """List every disagreement between ``dicomdir`` and the DICOM files found on the medium.

    ``files`` maps the File ID of every DICOM file present (the DICOMDIR itself excepted) to what the file says
    (:func:`read_file_facts`). Checked (PS3.3 F.3.2.2, PS3.11 §D.3.3): each referenced file exists and has the
    SOP Instance UID, SOP Class UID and Transfer Syntax UID its record states (a key the record leaves empty is
    not compared), and each file is referenced. The list is ordered by File ID.
    """
    found: list[Disagreement] = []
    referenced: set[tuple[str, ...]] = set()
    for entry in dicomdir.entries:
        file_id = entry.file_id
        shown = "/".join(file_id)
        referenced.add(file_id)
        facts = files.get(file_id)
        if facts is None:
            found.append(
                Disagreement(
                    kind=DisagreementKind.MISSING_FILE,
                    file_id=file_id,
                    expected=entry.referenced_sop_instance_uid,
                    found="",
                    message=f"{shown}: referenced by a {entry.record_type} record but not on the medium",
                )
            )
            continue
        for kind, what, expected, actual in (
            (
                DisagreementKind.UID_MISMATCH,
                "SOP Instance UID",
                entry.referenced_sop_instance_uid,
                facts.sop_instance_uid,
            ),
            (
                DisagreementKind.CLASS_MISMATCH,
                "SOP Class UID",
                entry.referenced_sop_class_uid,
                facts.sop_class_uid,
            ),
            (
                DisagreementKind.TS_MISMATCH,
                "Transfer Syntax UID",
                entry.referenced_transfer_syntax_uid,
                facts.transfer_syntax_uid,
            ),
        ):
            if expected and expected != actual:
                found.append(
                    Disagreement(
                        kind=kind,
                        file_id=file_id,
                        expected=expected,
                        found=actual,
                        message=f"{shown}: the DICOMDIR records {what} {expected}, the file has {actual}",
                    )
                )
    for file_id in files:
        if file_id in referenced or file_id == (DICOMDIR_NAME,):
            continue
        facts = files[file_id]
        found.append(
            Disagreement(
                kind=DisagreementKind.UNREFERENCED_FILE,
                file_id=file_id,
                expected="",
                found=facts.sop_instance_uid,
                message=f"{'/'.join(file_id)}: a DICOM file that no DICOMDIR record references",
            )
        )
    found.sort(key=lambda d: (d.file_id, d.kind.value))
    return found
