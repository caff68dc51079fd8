"""Encapsulate documents as Encapsulated PDF/CDA/STL/OBJ/MTL files, and extract their documents byte for byte."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from dcmseal.audit import (
    AccessedInstance,
    AuditSink,
    AuditUser,
    EventActionCode,
    emit_events,
    instances_accessed_events,
)
from dcmseal.encapsulated.build import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    MODEL_UNITS,
    ModelOptions,
    PatientInfo,
    build_instances,
    write_instances,
)
from dcmseal.encapsulated.kinds import DocumentKind
from dcmseal.errors import InputError, MissingInputError, NotPart10Error
from dcmseal.fsutil import atomic_write
from dcmseal.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "MODEL_UNITS",
    "EncapsulateResult",
    "EncapsulatedInstance",
    "ExtractResult",
    "ModelOptions",
    "PatientInfo",
    "encapsulate",
    "extract",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class EncapsulatedInstance:
    """One Part 10 file written."""

    path: Path
    kind: DocumentKind
    source: Path
    sop_class_uid: str
    sop_instance_uid: str
    document_length: int

    def to_json(self) -> dict[str, Any]:
        """Stable snake_case keys."""
        return {
            "path": str(self.path),
            "kind": self.kind.value,
            "source": str(self.source),
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "document_length": self.document_length,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EncapsulateResult:
    """What encapsulate wrote: the document's instance first, then any companion (the MTL of an OBJ)."""

    instances: tuple[EncapsulatedInstance, ...]
    study_instance_uid: str
    series_instance_uid: str
    notes: tuple[str, ...] = field(default=())
    #: Why the audit message could not be written (the instances stand regardless).
    audit_error: str | None = None

    @property
    def primary(self) -> EncapsulatedInstance:
        """The instance of the document asked for."""
        return self.instances[0]

    def to_json(self) -> dict[str, Any]:
        """One JSON document (schema dcmseal.encapsulate/1)."""
        return {
            "schema": "dcmseal.encapsulate/1",
            "status": "ok",
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "instances": [i.to_json() for i in self.instances],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractResult:
    """The document written back from an Encapsulated Document instance."""

    source: Path
    path: Path
    kind: DocumentKind
    length: int
    removed_pad_byte: bool
    #: Why the audit message could not be written (the document stands regardless).
    audit_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Stable snake_case keys."""
        return {
            "source": str(self.source),
            "path": str(self.path),
            "kind": self.kind.value,
            "length": self.length,
            "removed_pad_byte": self.removed_pad_byte,
        }


def encapsulate(
    doc: Path,
    out: Path,
    *,
    audit: AuditSink,
    operator: str,
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
    overwrite: bool = False,
    now: Callable[[], dt.datetime] = dt.datetime.now,
) -> EncapsulateResult:
    """Encapsulate ``doc`` as an Encapsulated PDF/CDA/STL/OBJ/MTL instance written to ``out`` (PS3.3 A.45, A.85).

    Parameters
    ----------
    doc
        The document; its kind comes from its content, never its name.
    out
        The Part 10 file to write (Explicit VR Little Endian, zero preamble, atomically).
    audit
        Where the DICOM Instances Accessed message (PS3.15 A.5.3.2, EventActionCode C: instances created)
        goes once the instances are written; a sink that fails is said in ``audit_error``.
    operator
        Who encapsulates, for the audit trail.
    study
        A DICOM file, or a folder whose first DICOM file is used: Patient, General Study and Patient Study
        attributes are copied so the document joins that study, in a new series.
    patient
        Demographics when there is no ``study``. With neither, the Patient attributes are empty (Type 2), except
        for a CDA, whose header supplies them.
    title
        Document Title (0042,0010); defaults to the CDA title or the file name.
    burned_in_annotation
        Burned In Annotation (0028,0301): YES unless the document is known to carry no identification.
    override
        Encapsulate a CDA whose header names another patient than ``study``/``patient``.
    kind
        The kind the caller expects; content of another kind is refused.
    mtl_for_obj
        The MTL of an OBJ: encapsulated too (beside ``out``, as ``<stem>_mtl.dcm``) and referenced by the OBJ.
    model
        The unit of a 3D model's coordinates and the device serial number (STL, OBJ, MTL); defaults to
        millimetres and this workstation's host name.
    max_bytes
        Documents above this size are refused before being read.

    Raises
    ------
    InputError
        Empty, unsupported or mismatching content, a CDA for another patient, an existing output.
    ResourceLimitError
        The document is above ``max_bytes``.
    """
    built = build_instances(
        doc, study=study, patient=patient, title=title, series_description=series_description,
        burned_in_annotation=burned_in_annotation, override=override, kind=kind, mtl_for_obj=mtl_for_obj,
        model=model, max_bytes=max_bytes, now=now,
    )  # fmt: skip
    paths = write_instances(built, out, overwrite=overwrite)
    instances = tuple(
        EncapsulatedInstance(
            path=path,
            kind=item.kind,
            source=item.source,
            sop_class_uid=item.sop_class_uid,
            sop_instance_uid=item.sop_instance_uid,
            document_length=item.document_length,
        )
        for path, item in zip(paths, built.instances, strict=True)
    )
    for instance in instances:
        logger.info(
            "%s: encapsulated %s as %s", instance.path, instance.kind.value, instance.sop_instance_uid
        )
    # PS3.15 A.5.3.2 (DICOM Instances Accessed) with C: new instances were created on this system. Export
    # (A.5.3.4) and Import (A.5.3.5) describe data crossing the security domain on media, which this does not.
    audited = [_accessed(item.dataset) for item in built.instances]
    audit_error = emit_events(
        audit,
        instances_accessed_events(
            audited,
            user=AuditUser(user_id=operator),
            action=EventActionCode.CREATE,
            description=f"dcmseal encapsulate: {built.instances[0].kind.value} document {doc.name}",
        ),
    )
    return EncapsulateResult(
        instances=instances,
        study_instance_uid=built.study_instance_uid,
        series_instance_uid=built.series_instance_uid,
        notes=built.notes,
        audit_error=audit_error,
    )


def extract(
    file: Path, out_dir: Path, *, audit: AuditSink, operator: str, overwrite: bool = False
) -> ExtractResult:
    """Write the document of an Encapsulated Document instance to ``out_dir``, byte for byte (PS3.3 C.24.2).

    The name is the instance file's stem with the kind's extension (.pdf, .xml, .stl, .obj, .mtl). Encapsulated
    Document Length (0042,0015) gives the true length, so the pad byte of an odd-length document is dropped.
    Once the document is written, a DICOM Instances Accessed message (PS3.15 A.5.3.2, EventActionCode R: the
    instance was read) goes to ``audit``, by ``operator``; a sink that fails is said in ``audit_error``.

    Raises
    ------
    NotPart10Error
        ``file`` is not a DICOM file.
    InputError
        Not an Encapsulated Document instance, a length beyond the value, or an existing output.
    """
    try:
        ds = dcmread(file)
    except (InvalidDicomError, EOFError, ValueError):
        raise NotPart10Error(
            "not a DICOM Part 10 file (no 'DICM' after the 128-byte preamble)", path=file
        ) from None
    except FileNotFoundError:
        raise MissingInputError(file) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=file) from None
    kind = DocumentKind.from_sop_class(str(ds.get("SOPClassUID", "")))
    if kind is None or "EncapsulatedDocument" not in ds:
        raise InputError(
            f"not an Encapsulated Document instance (SOP Class {ds.get('SOPClassUID', 'missing')})", path=file
        )
    value = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    if length is None:
        data = value
    else:
        if int(length) > len(value):
            raise InputError(
                f"Encapsulated Document Length {int(length)} is beyond the {len(value)} bytes of the value",
                path=file,
            )
        data = value[: int(length)]
    dst = out_dir / (file.stem + kind.extension)
    try:
        with atomic_write(dst, overwrite=overwrite) as fp:
            fp.write(data)
    except FileExistsError:
        raise InputError("the output exists (use --force to replace it)", path=dst) from None
    logger.info("%s: extracted %s (%d bytes)", file, dst, len(data))
    # PS3.15 A.5.3.2 with R: the instance was read and its document written beside it on this system. Export
    # (A.5.3.4) is data leaving the security domain on a Destination Media (Table A.5.3.4-1 requires one); a
    # file written into a local folder is neither, and where it goes next is not known here.
    audit_error = emit_events(
        audit,
        instances_accessed_events(
            [_accessed(ds)],
            user=AuditUser(user_id=operator),
            action=EventActionCode.READ,
            description=f"dcmseal extract: {kind.value} document written to {dst.name}",
        ),
    )
    return ExtractResult(
        source=file,
        path=dst,
        kind=kind,
        length=len(data),
        removed_pad_byte=len(data) < len(value),
        audit_error=audit_error,
    )


def _accessed(ds: Dataset) -> AccessedInstance:
    """What the audit message says of an instance: its Patient ID, study and SOP Class."""
    return AccessedInstance(
        patient_id=str(ds.get("PatientID", "") or ""),
        study_instance_uid=str(ds.get("StudyInstanceUID", "") or ""),
        sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
    )
