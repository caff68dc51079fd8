"""Encapsulated documents as DICOM data (PS3.3 C.24, A.45, A.85): the kinds of documents and their instances.

A domain package, not a workflow: ``scan`` judges encapsulated documents with it, ``media.burn`` puts documents
on a medium with it, and ``documents`` (the encapsulate/extract workflow) is built on it. It sits beside
``part10`` rather than inside it: ``part10`` holds the facts of the Part 10 file format whatever the IOD, this
package builds one family of IODs (and reads CDA, STL and OBJ content to do so).
"""

from __future__ import annotations

from dcmseal.encapsulated.build import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    MODEL_UNITS,
    EncapsulatedDataset,
    Encapsulation,
    ModelOptions,
    PatientInfo,
    build_instances,
    companion_path,
    write_instances,
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
    "MODEL_UNITS",
    "CdaHeader",
    "DocumentKind",
    "EncapsulatedDataset",
    "Encapsulation",
    "ModelOptions",
    "PatientInfo",
    "ascii_stl_to_binary",
    "build_instances",
    "companion_path",
    "detect_kind",
    "read_cda_header",
    "write_instances",
]
