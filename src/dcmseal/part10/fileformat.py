"""PS3.10 §7.1 file facts: is it a DICOM File, its File Meta Information, and what its preamble holds."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info

from dcmseal.errors import NotPart10Error

__all__ = [
    "DICM_OFFSET",
    "HEADER_BYTES",
    "PREAMBLE_BYTES",
    "FileMeta",
    "PreambleKind",
    "classify_preamble",
    "is_part10",
    "read_file_meta",
    "read_patient_context",
]

PREAMBLE_BYTES = 128
DICM_OFFSET = 128
HEADER_BYTES = 132


class PreambleKind(enum.StrEnum):
    """What the 128-byte File Preamble holds, as far as sealing needs to know (the scanner goes further)."""

    ZERO = "zero"  # all 00H, what PS3.10 §7.1 asks when unused
    DICM_ZERO = "dicm-zero"  # "DICM" + 124 x 00H, PS3.10 §8.3 Note 3
    TIFF = "tiff"  # a TIFF or BigTIFF header: dual personality, PS3.10 §7.5
    OTHER = "other"  # anything else: stray bytes or active content


_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def classify_preamble(preamble: bytes) -> PreambleKind:
    """Classify a 128-byte preamble (PS3.10 §7.1, §7.5, §8.3)."""
    if preamble == bytes(PREAMBLE_BYTES):
        return PreambleKind.ZERO
    if preamble == b"DICM" + bytes(PREAMBLE_BYTES - 4):
        return PreambleKind.DICM_ZERO
    if preamble[:4] in _TIFF_MAGICS:
        return PreambleKind.TIFF
    return PreambleKind.OTHER


def is_part10(head: bytes) -> bool:
    """Whether ``head`` (at least the first 132 bytes) carries the ``DICM`` prefix at offset 128."""
    return head[DICM_OFFSET:HEADER_BYTES] == b"DICM"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileMeta:
    """The File Meta Information facts dcmseal reports (no patient data)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    preamble: PreambleKind


def read_file_meta(path: Path) -> FileMeta:
    """Check that ``path`` is a PS3.10 file and read its File Meta Information (the data set is not read).

    Raises
    ------
    NotPart10Error
        No ``DICM`` at offset 128, or a File Meta group that does not parse or lacks its Type 1 UIDs.
    """
    with open(path, "rb") as fp:
        head = fp.read(HEADER_BYTES + 12)
        size = os.fstat(fp.fileno()).st_size
    if len(head) < HEADER_BYTES or not is_part10(head):
        raise NotPart10Error(
            "not a DICOM PS3.10 file (no 'DICM' at offset 128); only Part 10 files can become Secure DICOM Files",
            path=path,
        )
    # (0002,0000) File Meta Information Group Length, explicit VR UL, first after "DICM" (PS3.10 §7.1):
    # pydicom reads a value cut short by the end of the file without complaint, so check the length.
    if head[HEADER_BYTES : HEADER_BYTES + 6] == b"\x02\x00\x00\x00UL" and len(head) == HEADER_BYTES + 12:
        meta_end = HEADER_BYTES + 12 + int.from_bytes(head[HEADER_BYTES + 8 : HEADER_BYTES + 12], "little")
        if meta_end > size:
            raise NotPart10Error(
                f"truncated: the File Meta Information announces {meta_end} bytes, the file has {size}",
                path=path,
            )
    try:
        meta = read_file_meta_info(path)
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError) as exc:
        raise NotPart10Error(f"the File Meta Information does not parse: {exc}", path=path) from exc
    missing = [
        k
        for k in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")
        if k not in meta
    ]
    if missing:
        raise NotPart10Error(f"the File Meta Information lacks {', '.join(missing)}", path=path)
    return FileMeta(
        sop_class_uid=str(meta.MediaStorageSOPClassUID),
        sop_instance_uid=str(meta.MediaStorageSOPInstanceUID),
        transfer_syntax_uid=str(meta.TransferSyntaxUID),
        preamble=classify_preamble(head[:PREAMBLE_BYTES]),
    )


def read_patient_context(paths: list[Path], *, limit: int = 100) -> tuple[str, ...]:
    """Patient names, IDs and birth dates of up to ``limit`` Part 10 files, for the password policy.

    Only three elements are parsed per file (pydicom ``specific_tags``); files that are not Part 10
    are skipped silently: this is advice for the password check, not validation.
    """
    from pydicom import dcmread

    found: set[str] = set()
    for path in paths[:limit]:
        try:
            ds = dcmread(
                path, stop_before_pixels=True, specific_tags=["PatientName", "PatientID", "PatientBirthDate"]
            )
        except (InvalidDicomError, ValueError, KeyError, EOFError, OSError, AttributeError):
            continue
        for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
            value = str(ds.get(keyword, "") or "").strip()
            if value:
                found.add(value)
    return tuple(sorted(found))
