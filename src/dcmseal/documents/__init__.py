"""Encapsulate documents (PDF, CDA, STL, OBJ, MTL) as DICOM and extract them byte for byte."""

from __future__ import annotations

from dcmseal.documents.encapsulation import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    EncapsulatedInstance,
    EncapsulateResult,
    ExtractResult,
    ModelOptions,
    PatientInfo,
    encapsulate,
    extract,
)
from dcmseal.encapsulated.kinds import (
    CdaHeader,
    DocumentKind,
    ascii_stl_to_binary,
    detect_kind,
    read_cda_header,
)

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "CdaHeader",
    "DocumentKind",
    "EncapsulateResult",
    "EncapsulatedInstance",
    "ExtractResult",
    "ModelOptions",
    "PatientInfo",
    "ascii_stl_to_binary",
    "detect_kind",
    "encapsulate",
    "extract",
    "read_cda_header",
]
