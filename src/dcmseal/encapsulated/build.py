"""Build the Encapsulated PDF/CDA/STL/OBJ/MTL instances of a document (PS3.3 A.45, A.85) as Part 10 Datasets."""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from dcmseal.encapsulated.kinds import (
    DocumentKind,
    ascii_stl_to_binary,
    detect_kind,
    is_binary_stl,
    read_cda_header,
)
from dcmseal.errors import InputError, MissingInputError, NotPart10Error, ResourceLimitError
from dcmseal.fsutil import atomic_write
from dcmseal.part10.fileformat import ZERO_PREAMBLE
from dcmseal.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, new_uid

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "MODEL_UNITS",
    "EncapsulatedDataset",
    "Encapsulation",
    "ModelOptions",
    "PatientInfo",
    "build_instances",
    "companion_path",
    "write_instances",
]


#: Documents larger than this are refused before they are read: 1 GiB is far beyond any report or print model,
#: and an OB value must stay below 2**32 - 2 bytes anyway (PS3.5 §7.1.1, even length in a 32-bit field).
DEFAULT_MAX_DOCUMENT_BYTES = 1024**3
_MAX_OB_BYTES = 0xFFFFFFFE - 1

# Patient (C.7.1.1), General Study (C.7.2.1) and Patient Study (C.7.2.2) attributes copied from a study instance.
_PATIENT_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "TypeOfPatientID",
    "PatientBirthDate", "PatientBirthTime", "PatientSex", "OtherPatientIDsSequence", "EthnicGroup",
    "PatientComments", "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
    "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization", "PatientSpeciesDescription",
    "PatientBreedDescription",
)  # fmt: skip
_STUDY_KEYWORDS = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "IssuerOfAccessionNumberSequence", "StudyDescription", "ProcedureCodeSequence",
    "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy", "ReferencedStudySequence",
)  # fmt: skip
_PATIENT_STUDY_KEYWORDS = (
    "AdmittingDiagnosesDescription", "PatientAge", "PatientSize", "PatientWeight", "Occupation",
    "AdditionalPatientHistory", "AdmissionID", "PregnancyStatus",
)  # fmt: skip


def _software_version() -> str:
    try:
        return version("dcmseal")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientInfo:
    """Demographics for a document that does not join an existing study."""

    patient_id: str
    patient_name: str  # DICOM PN, Family^Given
    birth_date: str = ""  # YYYYMMDD
    sex: str = ""  # M, F, O or ""

    def __post_init__(self) -> None:
        if self.sex not in ("", "M", "F", "O"):
            raise ValueError(f"sex must be M, F, O or empty, not {self.sex!r}")
        if self.birth_date and (len(self.birth_date) != 8 or not self.birth_date.isdigit()):
            raise ValueError(f"birth_date must be YYYYMMDD, not {self.birth_date!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EncapsulatedDataset:
    """One instance built: a Part 10 Dataset (File Meta Information and zero preamble set) and its document."""

    dataset: Dataset
    kind: DocumentKind
    source: Path
    document_length: int

    @property
    def sop_class_uid(self) -> str:
        return str(self.dataset.SOPClassUID)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)


@dataclass(frozen=True, slots=True, kw_only=True)
class Encapsulation:
    """The instances built for one document: the document's first, then any companion (the MTL of an OBJ)."""

    instances: tuple[EncapsulatedDataset, ...]
    study_instance_uid: str
    series_instance_uid: str
    notes: tuple[str, ...] = ()


def _read_document(doc: Path, max_bytes: int) -> bytes:
    try:
        size = doc.stat().st_size
    except FileNotFoundError:
        raise MissingInputError(doc) from None
    except OSError as exc:
        raise InputError(f"cannot read the document: {exc.strerror or exc}", path=doc) from None
    limit = min(max_bytes, _MAX_OB_BYTES)
    if size > limit:
        raise ResourceLimitError(
            f"the document is {size} bytes, above the limit of {limit} bytes (raise it with --max-size)",
            path=doc,
        )
    try:
        with doc.open("rb") as fp:
            data = fp.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read the document: {exc.strerror or exc}", path=doc) from None
    if len(data) > limit:  # grew since stat
        raise ResourceLimitError(f"the document is above the limit of {limit} bytes", path=doc)
    return data


def _first_dicom(study: Path) -> Dataset:
    """The study file, or the first file (sorted, hidden ones skipped) of a folder with a Study Instance UID."""
    if not study.is_dir():
        try:
            return dcmread(study, stop_before_pixels=True)
        except (InvalidDicomError, ValueError, EOFError):
            raise NotPart10Error("not a DICOM file to take the study from", path=study) from None
        except OSError as exc:
            raise InputError(f"cannot read the study file: {exc.strerror or exc}", path=study) from None
    candidates = sorted(
        p for p in study.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)
    )
    for candidate in candidates:
        try:
            ds = dcmread(candidate, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if "StudyInstanceUID" in ds:  # a DICOMDIR or other non-instance file names no study
            return ds
    raise InputError(
        "no DICOM file with a Study Instance UID in this folder to take the study from", path=study
    )


def _copy(source: Dataset, target: Dataset, keywords: tuple[str, ...]) -> None:
    for keyword in keywords:
        if keyword in source:
            target[keyword] = source[keyword]


def _pn_key(name: str) -> str:
    return "^".join(part.strip().casefold() for part in name.split("^")).rstrip("^")


def _check_cda_patient(doc: Path, data: bytes, ds: Dataset, *, override: bool, notes: list[str]) -> None:
    header = read_cda_header(data, path=doc)
    given_id = str(ds.get("PatientID", "") or "")
    given_name = str(ds.get("PatientName", "") or "")
    differences: list[str] = []
    if given_id and header.patient_ids and given_id not in header.patient_ids:
        differences.append(f"patient ID: CDA {', '.join(header.patient_ids)!r} vs DICOM {given_id!r}")
    if given_name and header.patient_name and _pn_key(given_name) != _pn_key(header.patient_name):
        differences.append(f"patient name: CDA {header.patient_name!r} vs DICOM {given_name!r}")
    if differences and not override:
        raise InputError(
            "the CDA header names another patient (recordTarget/patientRole): "
            + "; ".join(differences)
            + " (--override to encapsulate anyway)",
            path=doc,
        )
    if differences:
        notes.append(
            "CDA patient differs from the DICOM demographics (overridden): " + "; ".join(differences)
        )
    if not given_id and header.patient_ids:
        ds.PatientID = header.patient_ids[0]
    if not given_name and header.patient_name:
        ds.PatientName = header.patient_name
    # The header's birth date and sex fill what the study or the options left empty (never overwrite them).
    if header.birth_date and not str(ds.get("PatientBirthDate", "") or ""):
        ds.PatientBirthDate = header.birth_date
    if header.sex and not str(ds.get("PatientSex", "") or ""):
        ds.PatientSex = header.sex


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


#: Measurement Units Code Sequence (0040,08EA) of a 3D model (PS3.3 C.35.1, CID 7063): the unit of its
#: coordinates, which STL and OBJ files do not record. UCUM codes, as CID 7063 gives them.
MODEL_UNITS: dict[str, tuple[str, str]] = {
    "mm": ("mm", "mm"),
    "cm": ("cm", "cm"),
    "m": ("m", "m"),
    "um": ("um", "um"),
    "in": ("[in_i]", "inch"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelOptions:
    """What a 3D model file does not say and its IOD requires (PS3.3 A.85: Enhanced General Equipment, C.35.1)."""

    #: The unit of the model's coordinates: a key of :data:`MODEL_UNITS`.
    units: str = "mm"
    #: Device Serial Number (0018,1000), Type 1 in Enhanced General Equipment: the serial number of the
    #: device (or workstation) that made the model; defaults to this workstation's host name.
    device_serial_number: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        if self.units not in MODEL_UNITS:
            raise ValueError(f"units must be one of {', '.join(MODEL_UNITS)}, not {self.units!r}")
        if not self.device_serial_number.strip():
            raise ValueError("a device serial number cannot be empty (Type 1)")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Common:
    """Attributes shared by every instance of one encapsulate call (patient, study, series, equipment)."""

    base: Dataset
    series_uid: str
    frame_of_reference_uid: str
    now: dt.datetime
    model: ModelOptions = field(default_factory=ModelOptions)


def _build(
    common: _Common,
    kind: DocumentKind,
    data: bytes,
    *,
    title: str,
    instance_number: int,
    burned_in_annotation: bool,
    hl7_instance_identifier: str | None,
    references: tuple[tuple[str, str], ...] = (),
    concept_name: tuple[str, str, str] | None = None,
    content_datetime: str = "",
    mime_types: tuple[str, ...] = (),
) -> Dataset:
    ds = Dataset()
    ds.update(common.base)
    date, time = common.now.strftime("%Y%m%d"), common.now.strftime("%H%M%S")
    # SOP Common (C.12.1)
    ds.SOPClassUID = UID(kind.sop_class_uid)
    ds.SOPInstanceUID = new_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    # Encapsulated Document Series (C.24.1)
    ds.Modality = kind.modality
    ds.SeriesInstanceUID = UID(common.series_uid)
    # General Equipment (C.7.5.1) and SC Equipment (C.8.6.1) or Enhanced General Equipment (C.7.5.2)
    ds.Manufacturer = "dcmseal"
    if kind.is_model:
        ds.ManufacturerModelName = "dcmseal"
        ds.DeviceSerialNumber = common.model.device_serial_number  # Type 1
        ds.SoftwareVersions = _software_version()
    else:
        ds.ConversionType = "WSD"  # workstation
        ds.SoftwareVersions = _software_version()
    # Frame of Reference (C.7.4.1): STL and OBJ models have coordinates, an MTL has none
    if kind in (DocumentKind.STL, DocumentKind.OBJ):
        ds.FrameOfReferenceUID = UID(common.frame_of_reference_uid)
        ds.PositionReferenceIndicator = ""
    # Manufacturing 3D Model (C.35.1): the unit of the coordinates (UCUM, CID 7063)
    if kind.is_model:
        unit, meaning = MODEL_UNITS[common.model.units]
        ds.MeasurementUnitsCodeSequence = Sequence([_code(unit, "UCUM", meaning)])
    # Encapsulated Document (C.24.2). Content Date/Time and Acquisition DateTime are when the document's content
    # was made: the document's own time when it states one (a CDA's effectiveTime), else the conversion time.
    ds.InstanceNumber = instance_number
    when = content_datetime or common.now.strftime("%Y%m%d%H%M%S")
    ds.ContentDate, ds.ContentTime = when[:8], _dt_time(when)
    ds.AcquisitionDateTime = when
    ds.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = Sequence([_code(*concept_name)] if concept_name else [])
    if hl7_instance_identifier is not None:
        ds.HL7InstanceIdentifier = hl7_instance_identifier
    ds.MIMETypeOfEncapsulatedDocument = kind.mime_type
    # List of MIME Types (0042,0014), 1C: the document carries data of other types than (0042,0012).
    others = tuple(m for m in mime_types if m.lower() != kind.mime_type.lower())
    if others:
        ds.ListOfMIMETypes = list(others)
    # OB values have even length: an odd document gets one 00H; the true length goes in (0042,0015).
    ds.EncapsulatedDocument = data + b"\x00" if len(data) % 2 else data
    ds.EncapsulatedDocumentLength = len(data)
    # Common Instance Reference (C.12.2): required if other instances are referenced (the OBJ's MTL)
    if references:
        instances = Sequence()
        for sop_class, sop_instance in references:
            ref = Dataset()
            ref.ReferencedSOPClassUID = UID(sop_class)
            ref.ReferencedSOPInstanceUID = UID(sop_instance)
            instances.append(ref)
        series = Dataset()
        series.SeriesInstanceUID = UID(common.series_uid)
        series.ReferencedInstanceSequence = instances
        ds.ReferencedSeriesSequence = Sequence([series])
        # The Encapsulated Document module's own reference to the companion (the MTL of an OBJ, PS3.3 A.85.2).
        ds.ReferencedInstanceSequence = Sequence([Dataset(ref) for ref in instances])
    return ds


def _dt_time(value: str) -> str:
    """The TM of a DT (YYYYMMDDHHMMSS.FFFFFF&ZZXX): the time digits and fraction, without the offset."""
    time = re.split(r"[+-]", value[8:], maxsplit=1)[0]
    return time


def _load(
    doc: Path, expected: DocumentKind | None, max_bytes: int, notes: list[str]
) -> tuple[DocumentKind, bytes]:
    data = _read_document(doc, max_bytes)
    kind = detect_kind(data, path=doc)
    if expected is not None and kind is not expected:
        raise InputError(
            f"given as {expected.value.upper()} but the content is {kind.value.upper()}", path=doc
        )
    if kind is DocumentKind.STL and not is_binary_stl(data):
        data = ascii_stl_to_binary(data, path=doc)
        notes.append(
            f"{doc.name}: ASCII STL converted to binary STL (the Encapsulated STL IOD requires binary)"
        )
    return kind, data


def _as_part10(ds: Dataset) -> Dataset:
    """Give ``ds`` its File Meta Information (Explicit VR Little Endian) and a zero preamble."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.preamble = ZERO_PREAMBLE
    return ds


def build_instances(
    doc: Path,
    *,
    study: Path | None = None,
    patient: PatientInfo | None = None,
    title: str | None = None,
    series_description: str | None = None,
    burned_in_annotation: bool = True,
    override: bool = False,
    kind: DocumentKind | None = None,
    mtl_for_obj: Path | None = None,
    model: ModelOptions | None = None,
    max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    now: Callable[[], dt.datetime] = dt.datetime.now,
) -> Encapsulation:
    """The Encapsulated PDF/CDA/STL/OBJ/MTL instance of ``doc`` (PS3.3 A.45, A.85), and of its MTL if given.

    Nothing is written; :func:`write_instances` writes them. The parameters are those of
    :func:`dcmseal.documents.encapsulate`, which documents them.

    Raises
    ------
    InputError
        Empty, unsupported or mismatching content, a CDA for another patient.
    ResourceLimitError
        The document is above ``max_bytes``.
    """
    if study is not None and patient is not None:
        raise ValueError("give study or patient, not both")
    notes: list[str] = []
    doc_kind, data = _load(doc, kind, max_bytes, notes)
    mtl: tuple[Path, bytes] | None = None
    if mtl_for_obj is not None:
        if doc_kind is not DocumentKind.OBJ:
            raise InputError(
                f"an MTL goes with an OBJ, and this document is {doc_kind.value.upper()}", path=doc
            )
        _, mtl_data = _load(mtl_for_obj, DocumentKind.MTL, max_bytes, notes)
        mtl = (mtl_for_obj, mtl_data)

    base = Dataset()
    base.SpecificCharacterSet = "ISO_IR 192"
    timestamp = now()
    if study is not None:
        source = _first_dicom(study)
        _copy(source, base, _PATIENT_KEYWORDS + _STUDY_KEYWORDS + _PATIENT_STUDY_KEYWORDS)
        if "StudyInstanceUID" not in base:
            raise InputError("the study file has no Study Instance UID", path=study)
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                        "ReferringPhysicianName", "StudyID", "AccessionNumber"):  # fmt: skip
            base.setdefault(keyword, "")
        base.SeriesNumber = int(source.get("SeriesNumber", 0) or 0) + 1000
    else:
        base.PatientName = patient.patient_name if patient else ""
        base.PatientID = patient.patient_id if patient else ""
        base.PatientBirthDate = patient.birth_date if patient else ""
        base.PatientSex = patient.sex if patient else ""
        base.StudyInstanceUID = new_uid()
        base.StudyDate, base.StudyTime = timestamp.strftime("%Y%m%d"), timestamp.strftime("%H%M%S")
        base.ReferringPhysicianName = ""
        base.StudyID = ""
        base.AccessionNumber = ""
        base.SeriesNumber = 1
    if series_description:
        base.SeriesDescription = series_description

    hl7_id: str | None = None
    doc_title = title
    concept_name: tuple[str, str, str] | None = None
    content_datetime = ""
    mime_types: tuple[str, ...] = ()
    if doc_kind is DocumentKind.CDA:
        _check_cda_patient(doc, data, base, override=override, notes=notes)
        header = read_cda_header(data, path=doc)
        hl7_id = header.hl7_instance_identifier
        doc_title = title if title is not None else header.title
        concept_name, content_datetime, mime_types = (
            header.document_code,
            header.effective_time,
            header.media_types,
        )
    if doc_title is None:
        doc_title = doc.name

    common = _Common(
        base=base,
        series_uid=new_uid(),
        frame_of_reference_uid=new_uid(),
        now=timestamp,
        model=model or ModelOptions(),
    )
    references: tuple[tuple[str, str], ...] = ()
    companion: EncapsulatedDataset | None = None
    if mtl is not None:
        mtl_path, mtl_data = mtl
        mtl_ds = _build(
            common, DocumentKind.MTL, mtl_data, title=mtl_path.name, instance_number=2,
            burned_in_annotation=burned_in_annotation, hl7_instance_identifier=None,
        )  # fmt: skip
        references = ((str(mtl_ds.SOPClassUID), str(mtl_ds.SOPInstanceUID)),)
        companion = EncapsulatedDataset(
            dataset=_as_part10(mtl_ds), kind=DocumentKind.MTL, source=mtl_path, document_length=len(mtl_data)
        )
    ds = _build(
        common, doc_kind, data, title=doc_title, instance_number=1, burned_in_annotation=burned_in_annotation,
        hl7_instance_identifier=hl7_id, references=references, concept_name=concept_name,
        content_datetime=content_datetime, mime_types=mime_types,
    )  # fmt: skip
    primary = EncapsulatedDataset(
        dataset=_as_part10(ds), kind=doc_kind, source=doc, document_length=len(data)
    )
    return Encapsulation(
        instances=(primary,) if companion is None else (primary, companion),
        study_instance_uid=str(base.StudyInstanceUID),
        series_instance_uid=common.series_uid,
        notes=tuple(notes),
    )


def companion_path(out: Path) -> Path:
    """Where the companion of the instance written to ``out`` goes (the MTL of an OBJ): ``<stem>_mtl.dcm``."""
    return out.with_name(f"{out.stem}_mtl{out.suffix or '.dcm'}")


def _write(ds: Dataset, out: Path, *, overwrite: bool) -> None:
    try:
        with atomic_write(out, overwrite=overwrite) as fp:
            dcmwrite(fp, ds, enforce_file_format=True)
    except FileExistsError:
        raise InputError("the output exists (use --force to replace it)", path=out) from None


def write_instances(encapsulation: Encapsulation, out: Path, *, overwrite: bool = False) -> tuple[Path, ...]:
    """Write the instances of ``encapsulation``, each atomically: the document's to ``out``, a companion beside it.

    Returns the paths written, in the order of ``encapsulation.instances``. The companion is written first and
    removed again if the document's instance cannot be written, so either both appear or neither does.

    Raises
    ------
    InputError
        An output exists and ``overwrite`` is false.
    """
    primary, *companions = encapsulation.instances
    written = [(companion.dataset, companion_path(out)) for companion in companions]
    for dataset, path in written:
        _write(dataset, path, overwrite=overwrite)
    try:
        _write(primary.dataset, out, overwrite=overwrite)
    except BaseException:
        for _, path in written:
            path.unlink(missing_ok=True)
        raise
    return (out, *(path for _, path in written))
