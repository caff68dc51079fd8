"""The File-set planner as it was before dcmseal wrote its own DICOMDIR: pydicom FileSet records, the reference.

A verbatim copy of ``dcmseal.media.fileset``'s planning (pydicom 3 ``FileSet`` with the keyed record index and the
linking ``write``), kept only for tests: the new planner must give the same DICOMDIR for the same inputs.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import gc
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomFileLike
from pydicom.fileset import FileInstance, FileSet, RecordNode
from pydicom.uid import UID, generate_uid

from dcmseal.errors import InputError, NotPart10Error
from dcmseal.media.profiles import MAX_COMPONENT_CHARS, MAX_FILE_ID_COMPONENTS, Profile, is_allowed
from dcmseal.part10.fileformat import read_file_meta

logger = logging.getLogger(__name__)

#: PS3.10 §8.6: the one reserved File ID, in the root of the File-set.
DICOMDIR_NAME = "DICOMDIR"
#: PS3.10 §8.6 / PS3.4 Annex I: Media Storage Directory Storage, the SOP class of the DICOMDIR.
MEDIA_STORAGE_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
#: PS3.10 §8.5: a File-set ID has 0 to 16 characters from the File ID character set.
MAX_FILESET_ID_CHARS = 16

_COMPONENT = re.compile(rf"[A-Z0-9_]{{1,{MAX_COMPONENT_CHARS}}}")
_NOT_FILE_ID_CHAR = re.compile(r"[^A-Z0-9_]")
_TAG_IN_MESSAGE = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)")
_ISO_VERSION = re.compile(r"\.?;\d+$")
# pydicom's record creators name one missing key per ValueError; a record type has fewer Type 1 keys than this.
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

    pydicom's :class:`~pydicom.fileset.FileSet` chooses the directory records from each SOP class (PATIENT,
    STUDY, SERIES, then IMAGE, ENCAP DOC, SR DOCUMENT, RT DOSE, ...) and conformant File IDs
    (``PT000000/ST000000/SE000000/IM000000``); the profile's additional keys are added to the records
    (PS3.11 Tables D.3-2, H.3-2). ``staging`` ends up holding ``DICOMDIR`` and a byte-for-byte copy of every
    instance at its File ID: instances are never modified.

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
        An instance is not a PS3.10 file.
    InputError
        A directory record cannot be built for an instance (a missing key dcmseal cannot supply).
    ValueError
        ``staging`` is not empty, or an instance's transfer syntax is not allowed by ``profile``.
    """
    staging = Path(staging)
    if staging.exists() and any(staging.iterdir()):
        raise ValueError(f"{staging}: the staging directory must be empty")
    staging.mkdir(parents=True, exist_ok=True)

    with _gc_paused():
        return _plan(instances, staging, fileset_id=fileset_id, profile=profile, fileset_uid=fileset_uid)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a File-set is planned.

    Planning allocates millions of small pydicom objects, and each one counts toward the collector's
    thresholds: in a burn (whose process also holds the registry, the CLI, ...) the full collections
    it triggers took about 17 % of planning. What planning keeps alive it keeps anyway; the few cycles
    it drops are collected once the collector is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _plan(
    instances: Sequence[Path], staging: Path, *, fileset_id: str, profile: Profile, fileset_uid: str | None
) -> FileSetPlan:
    """The work of :func:`build_fileset` (``staging`` exists and is empty)."""
    fs = _PlanningFileSet()
    if fileset_uid:
        fs.UID = UID(fileset_uid)
    label = fileset_id_from_label(fileset_id)
    fs.ID = label or None

    planner = _Planner()
    notes: list[PlanNote] = []
    first_seen: dict[str, Path] = {}
    planned: dict[str, tuple[Path, Dataset, str]] = {}
    for source in map(Path, instances):
        meta = read_file_meta(source)
        if not is_allowed(profile, meta.transfer_syntax_uid):
            raise ValueError(
                f"{source}: {UID(meta.transfer_syntax_uid).name} is not allowed by {profile.value}; "
                "conform the file first"
            )
        ds = _read_header(source)
        mismatch = _align_with_meta(ds, meta.sop_class_uid, meta.sop_instance_uid)
        if mismatch:
            notes.append(PlanNote(kind=NoteKind.META_MISMATCH, path=source, message=mismatch))
        uid = str(ds.SOPInstanceUID)
        if uid in first_seen:
            notes.append(
                PlanNote(
                    kind=NoteKind.DUPLICATE,
                    path=source,
                    message=f"SOP Instance UID {uid} is already in the File-set from {first_seen[uid]}; "
                    "this file is left out",
                )
            )
            continue
        try:
            instance = _add(fs, ds, source, planner, notes)
        except InputError as exc:
            # One instance the DICOMDIR cannot index (no Study Instance UID, say) is left out, with
            # its reason; it does not stop the rest of the File-set.
            notes.append(PlanNote(kind=NoteKind.LEFT_OUT, path=source, message=exc.message))
            continue
        first_seen[uid] = source
        _tidy_document_record(instance, ds)
        _add_profile_keys(instance, ds, profile)
        _remember(planner, ds)
        conflict = _patient_conflict(planner, ds, source)
        if conflict is not None:
            notes.append(conflict)
        planned[uid] = (source, ds, instance.node.record_type)

    fs.write(staging.resolve())
    dicomdir = staging / DICOMDIR_NAME
    files = []
    by_uid = {str(instance.SOPInstanceUID): instance for instance in fs}
    for uid, (source, ds, record_type) in planned.items():
        file_id = Path(by_uid[uid].FileID).parts
        # The write linked (or copied) the instance itself, byte for byte: see _PlanningFileSet.write.
        staged = staging.joinpath(*file_id)
        files.append(
            PlannedFile(
                source=source,
                staged=staged,
                file_id=file_id,
                record_type=record_type,
                sop_class_uid=str(ds.SOPClassUID),
                sop_instance_uid=uid,
                transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                patient_id=str(ds.get("PatientID", "") or ""),
                study_instance_uid=str(ds.get("StudyInstanceUID", "") or ""),
                series_instance_uid=str(ds.get("SeriesInstanceUID", "") or ""),
                modality=str(ds.get("Modality", "") or ""),
            )
        )
    logger.info("File-set %s: %d instances, %d notes", fs.UID, len(files), len(notes))
    return FileSetPlan(
        fileset_uid=str(fs.UID),
        fileset_id=label,
        profile=profile,
        dicomdir=dicomdir,
        files=tuple(files),
        notes=tuple(notes),
    )


def _align_with_meta(ds: Dataset, sop_class_uid: str, sop_instance_uid: str) -> str:
    """Make our in-memory header carry the File Meta UIDs; return what differed, "" when nothing did.

    PS3.3 F.3.2.2: Referenced SOP Class/Instance UID in File are the File Meta (0002,0002)/(0002,0003) values,
    which is also what a reader checks the DICOMDIR against (:func:`read_file_facts`).
    """
    differs = []
    for keyword, meta_value in (("SOPClassUID", sop_class_uid), ("SOPInstanceUID", sop_instance_uid)):
        value = str(ds.get(keyword, "") or "")
        if value and value != meta_value:
            differs.append(f"{keyword} {value} (File Meta: {meta_value})")
        setattr(ds, keyword, meta_value)
    if not differs:
        return ""
    return f"the data set's {' and '.join(differs)} differ; the DICOMDIR references the File Meta values"


def _read_header(path: Path) -> Dataset:
    try:
        return dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError) as exc:
        raise NotPart10Error(f"the data set does not parse: {exc}", path=path) from exc


class _KeyedRecordNode(RecordNode):
    """A RecordNode that computes its key once and finds a child by key in a dict.

    pydicom recomputes every sibling's key on each insertion, and ``node in parent`` / ``parent[node]``
    scan the children in Python: with one series of 2,000 images, inserting was quadratic (about 2
    million key look-ups). Planning only ever appends children (``RecordNode.parent``'s setter), so
    the index catches up with the new tail of the list; a list replaced by pydicom is re-indexed.
    """

    _cached_key: str | None = None
    _by_key: dict[str, RecordNode] | None = None
    _indexed: int = 0
    _indexed_list: list[RecordNode] | None = None

    @property
    def key(self) -> str:
        if self._cached_key is None:
            self._cached_key = RecordNode.key.fget(self)  # type: ignore[attr-defined]
        return self._cached_key

    def _children_by_key(self) -> dict[str, RecordNode]:
        children = self.children
        if self._by_key is None or self._indexed_list is not children or self._indexed > len(children):
            self._by_key, self._indexed, self._indexed_list = {}, 0, children
        for child in children[self._indexed :]:
            self._by_key.setdefault(child.key, child)  # the first child with a key wins, as in pydicom
        self._indexed = len(children)
        return self._by_key

    def __contains__(self, key: str | RecordNode) -> bool:
        return (key.key if isinstance(key, RecordNode) else key) in self._children_by_key()

    def __getitem__(self, key: str | RecordNode) -> RecordNode:
        return self._children_by_key()[key.key if isinstance(key, RecordNode) else key]


class _PlanningFileSet(FileSet):
    """pydicom's FileSet, with an ``add`` that scales to thousands of instances.

    ``FileSet.add`` (pydicom 3.0) is quadratic and slow per instance: it scans every instance already
    added for the new SOP Instance UID, recomputes each sibling record's key when it links the new
    record into the tree, and writes a staged copy of the data set. Planning adds only header data
    sets whose duplicates :func:`build_fileset` has already removed, so this ``add`` skips the scan,
    caches record keys, and remembers the source file instead of staging a copy (``write`` links
    it). The records themselves are pydicom's (``_recordify``).
    """

    _planned_sources: dict[str, Path]

    def add_source(self, ds: Dataset, source: Path) -> FileInstance:
        record_gen = self._recordify(ds)
        parent = _KeyedRecordNode(next(record_gen))
        node: RecordNode = parent
        for record in record_gen:
            node = _KeyedRecordNode(record)
            node.parent = parent
            parent = node
        instance = FileInstance(node)
        node.instance = instance
        self._tree.add(node)
        self._stage["+"][instance.SOPInstanceUID] = instance
        self._instances.append(instance)
        instance._apply_stage("+")
        # Where write() takes the instance from; pydicom's own write wants a staged file (see below).
        self._sources[instance.SOPInstanceUID] = source.resolve()
        return instance

    @property
    def _sources(self) -> dict[str, Path]:
        if not hasattr(self, "_planned_sources"):
            self._planned_sources = {}
        return self._planned_sources

    def write(
        self,
        path: str | os.PathLike[str] | None = None,
        use_existing: bool = False,
        force_implicit: bool = False,
    ) -> None:
        """pydicom's ``write`` for a new File-set of staged additions: link the instances, write the DICOMDIR.

        ``FileSet.write`` copies every instance (from a staged file) to its File ID and then reads the DICOMDIR it wrote back
        in (``load``): for a study of 1 GB that is a 1 GB copy and a second parse of every record.
        Planning needs neither: each instance is hard-linked from its source (copied only when a link
        cannot be made, e.g. across filesystems), and the records get their Referenced File IDs exactly
        as pydicom sets them before it encodes the DICOMDIR. Any other use goes to pydicom's ``write``.
        """
        if (
            path is None
            or use_existing
            or force_implicit
            or self.path is not None
            or self._stage["-"]
            or any(not instance.for_addition for instance in self)
        ):
            for instance in self:  # pydicom copies from the stage: give it a link to each source
                source = self._sources.get(instance.SOPInstanceUID)
                if source is not None and instance.for_addition and not os.path.lexists(instance.path):
                    os.symlink(source, instance.path)
            super().write(path, use_existing=use_existing, force_implicit=force_implicit)
            return
        self._root_path = Path(path)
        if not self.is_staged:
            return  # as pydicom: nothing to write
        root = self._root_path
        for instance in self:
            file_id = instance.FileID
            dst = root / file_id
            dst.parent.mkdir(parents=True, exist_ok=True)
            source = self._sources[instance.SOPInstanceUID]
            try:
                os.link(source, dst)
            except OSError:
                shutil.copyfile(source, dst)
            instance.node._record.ReferencedFileID = file_id.split(os.path.sep)
        with open(root / DICOMDIR_NAME, "wb") as fp:
            self._write_dicomdir(DicomFileLike(fp), force_implicit=False)


def _add(fs: FileSet, ds: Dataset, source: Path, planner: _Planner, notes: list[PlanNote]) -> FileInstance:
    """``fs.add(ds)``, supplying each Type 1 key pydicom reports missing until the records can be built."""
    supplied: set[str] = set()
    for _ in range(_MAX_INVENTIONS):
        try:
            if isinstance(fs, _PlanningFileSet):
                return fs.add_source(ds, source)
            return fs.add(ds)
        except ValueError as exc:
            keyword = _missing_keyword(exc)
            if keyword is None or keyword in supplied:
                raise InputError(f"cannot build its DICOMDIR records: {exc}", path=source) from exc
            supplied.add(keyword)
            note = _supply(ds, keyword, planner)
            if note is None:
                raise InputError(f"cannot build its DICOMDIR records: {exc}", path=source) from exc
            if note:
                notes.append(PlanNote(kind=NoteKind.INVENTED, path=source, message=note))
    raise InputError("cannot build its DICOMDIR records: too many missing keys", path=source)


def _missing_keyword(exc: ValueError) -> str | None:
    """The keyword of the element a pydicom record creator reported missing or empty, if it named one."""
    match = _TAG_IN_MESSAGE.search(str(exc))
    if match is None:
        return None
    keyword = keyword_for_tag(int(match.group(1) + match.group(2), 16))
    return keyword or None


def _supply(ds: Dataset, keyword: str, planner: _Planner) -> str | None:
    """Put a value for ``keyword`` in ``ds`` (our in-memory header only).

    Returns the note to report, ``""`` when the value is the one its existing STUDY or SERIES record already
    holds (nothing new for the user), or None when dcmseal cannot supply the key.
    """
    study = _study_key(ds)
    if keyword in _STUDY_KEYS and keyword in planner.study_keys.get(study, {}):
        # The STUDY record already exists: reuse its value, nothing new is invented.
        setattr(ds, keyword, planner.study_keys[study][keyword])
        return ""
    series = str(ds.get("SeriesInstanceUID", "") or "")
    if keyword in _SERIES_KEYS and keyword in planner.series_keys.get(series, {}):
        setattr(ds, keyword, planner.series_keys[series][keyword])
        return ""

    value: str | None
    if keyword == "PatientID":
        value = _invent_patient_id(ds)
        why = "from a hash of the patient's name and birth date (or of the study when there is no name)"
    elif keyword == "StudyID":
        value = _digest(study)[:8]
        why = "from a hash of the Study Instance UID"
    elif keyword == "StudyDate":
        value = _first_value(ds, _DATE_SOURCES) or _DEFAULT_DATE
        why = "from the series, acquisition or content date (19000101 when none is known)"
    elif keyword == "StudyTime":
        value = _first_value(ds, _TIME_SOURCES) or _DEFAULT_TIME
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
        value = str(generate_uid(entropy_srcs=["dcmseal-series", study, str(ds.get("Modality", ""))]))
        why = "derived from the Study Instance UID and the modality"
    elif keyword in _ENUMERATED_DEFAULTS:
        value, why = _ENUMERATED_DEFAULTS[keyword], "the most cautious enumerated value"
    else:
        value, why = _by_vr(ds, keyword)
        if value is None:
            return None
    setattr(ds, keyword, value)
    return f"{keyword} is empty or missing; the DICOMDIR uses the invented value {value!r} ({why})"


def _by_vr(ds: Dataset, keyword: str) -> tuple[str | None, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None, ""
    vr = dictionary_VR(tag)
    if vr == "SQ":
        if keyword in ds and not ds[keyword].value:
            # Present and empty: pydicom's creators check such optional sequences only when present.
            del ds[keyword]
        return None, ""
    if vr == "UI":
        return str(
            generate_uid(entropy_srcs=["dcmseal", keyword, str(ds.SOPInstanceUID)])
        ), "derived from the SOP Instance UID"
    if vr == "DA":
        return _first_value(ds, _DATE_SOURCES) or _DEFAULT_DATE, "from the instance's other dates"
    if vr == "TM":
        return _first_value(ds, _TIME_SOURCES) or _DEFAULT_TIME, "from the instance's other times"
    value = _VR_DEFAULTS.get(vr)
    return value, f"the placeholder for VR {vr}"


def _first_value(ds: Dataset, keywords: Sequence[str]) -> str:
    for keyword in keywords:
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            return value
    return ""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()


def _study_key(ds: Dataset) -> str:
    # pydicom keys a STUDY record by its Study Instance UID, else by the instance it references.
    return str(ds.get("StudyInstanceUID", "") or ds.SOPInstanceUID)


def _patient_identity(ds: Dataset) -> tuple[str, str]:
    name = "^".join(part.strip() for part in str(ds.get("PatientName", "") or "").upper().split("^"))
    return name.rstrip("^ "), str(ds.get("PatientBirthDate", "") or "").strip()


def _invent_patient_id(ds: Dataset) -> str:
    name, birth = _patient_identity(ds)
    basis = f"{name}|{birth}" if name else f"study|{_study_key(ds)}"
    return f"DCMSEAL_{_digest(basis)[:8]}"


def _remember(planner: _Planner, ds: Dataset) -> None:
    """Record the keys of the records this instance created or joined, and count it in its series."""
    study = _study_key(ds)
    series = str(ds.get("SeriesInstanceUID", "") or "")
    if series and series not in planner.series_keys:
        planner.series_per_study[study] = planner.series_per_study.get(study, 0) + 1
    study_keys = planner.study_keys.setdefault(study, {})
    for keyword in _STUDY_KEYS:
        if ds.get(keyword):
            study_keys.setdefault(keyword, str(ds.get(keyword)))
    series_keys = planner.series_keys.setdefault(series, {})
    for keyword in _SERIES_KEYS:
        if ds.get(keyword):
            series_keys.setdefault(keyword, str(ds.get(keyword)))
    planner.instances_per_series[series] = planner.instances_per_series.get(series, 0) + 1


def _patient_conflict(planner: _Planner, ds: Dataset, source: Path) -> PlanNote | None:
    patient_id = str(ds.get("PatientID", "") or "")
    if not patient_id:
        return None
    identity = _patient_identity(ds)
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


def _record(node: RecordNode) -> Dataset:
    # pydicom exposes a node's directory record only as RecordNode._record; its documented alternative, replacing
    # entries of the module-level DIRECTORY_RECORDERS, would change every FileSet in the process.
    record: Dataset = node._record
    return record


def _tidy_document_record(instance: FileInstance, ds: Dataset) -> None:
    """Trim what pydicom copies into SR DOCUMENT and KEY OBJECT DOC records to what PS3.3 F.5 allows.

    pydicom copies the whole Content Sequence, i.e. the report (and its identifiers) into the DICOMDIR; the record
    keys hold only the Document Title's modifiers, the items with relationship HAS CONCEPT MOD. For a VERIFIED
    report, Verification DateTime (Type 1C in the record) lives in the instance's Verifying Observer Sequence.
    """
    record = _record(instance.node)
    if record.get("DirectoryRecordType") not in ("SR DOCUMENT", "KEY OBJECT DOC"):
        return
    if "ContentSequence" in record:
        modifiers = [
            item for item in record.ContentSequence if item.get("RelationshipType") == "HAS CONCEPT MOD"
        ]
        del record.ContentSequence
        if modifiers:
            record.ContentSequence = copy.deepcopy(modifiers)
    if record.get("VerificationFlag") == "VERIFIED" and not record.get("VerificationDateTime"):
        stamps = [
            str(item.VerificationDateTime)
            for item in ds.get("VerifyingObserverSequence", [])
            if item.get("VerificationDateTime")
        ]
        if stamps:
            record.VerificationDateTime = max(stamps)


def _add_profile_keys(instance: FileInstance, ds: Dataset, profile: Profile) -> None:
    """Copy the profile's additional keys (PS3.11 Tables D.3-2, H.3-2) into the instance's records."""
    keys = profile.additional_keys
    for node in (instance.node, *instance.node.ancestors):
        record = _record(node)
        for keyword in keys.get(node.record_type, ()):
            if record.get(keyword):
                continue  # set by pydicom or by an earlier instance of the same patient or series
            value = _lookup(ds, keyword)
            if value is not None:
                setattr(record, keyword, copy.deepcopy(value))


def _lookup(ds: Dataset, keyword: str) -> object | None:
    """``keyword``'s non-empty value at the top level, or in the first Shared Functional Groups item (H.3-2)."""
    value: object | None = ds.get(keyword)
    if value is not None and value != "" and value != []:
        return value
    if keyword not in _FUNCTIONAL_GROUP_KEYS:
        return None
    for group in ds.get("SharedFunctionalGroupsSequence", [])[:1]:
        for element in group:
            if element.VR != "SQ":
                continue
            for item in element.value[:1]:
                nested: object | None = item.get(keyword)
                if nested is not None and nested != "" and nested != []:
                    return nested
    return None
