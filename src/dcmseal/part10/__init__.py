"""Part 10 file facts and the Secure DICOM File (PS3.10 §7.4): the safe recipes over :mod:`dcmseal.cms`."""

from __future__ import annotations

from dcmseal.part10.batch import (
    BatchReport,
    FileOutcome,
    FileStatus,
    SealPlan,
    UnsealPlan,
    seal_files,
    seal_tree,
    unseal_files,
    unseal_tree,
)
from dcmseal.part10.fileformat import (
    FileMeta,
    PreambleKind,
    classify_preamble,
    is_part10,
    read_file_meta,
)
from dcmseal.part10.fill import seal_into
from dcmseal.part10.header import read_patient_context
from dcmseal.part10.secure import (
    InspectResult,
    SealedStream,
    SealResult,
    UnsealResult,
    inspect_file,
    is_secure_file,
    is_secure_head,
    prepare_seal,
    seal_file,
    unseal_file,
)

__all__ = [
    "BatchReport",
    "FileMeta",
    "FileOutcome",
    "FileStatus",
    "InspectResult",
    "PreambleKind",
    "SealPlan",
    "SealResult",
    "SealedStream",
    "UnsealPlan",
    "UnsealResult",
    "classify_preamble",
    "inspect_file",
    "is_part10",
    "is_secure_file",
    "is_secure_head",
    "prepare_seal",
    "read_file_meta",
    "read_patient_context",
    "seal_file",
    "seal_files",
    "seal_into",
    "seal_tree",
    "unseal_file",
    "unseal_files",
    "unseal_tree",
]
