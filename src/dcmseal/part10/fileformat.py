"""PS3.10 §7.1 file facts: is it a DICOM File, its File Meta Information, and what its preamble holds."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

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
        head = fp.read(_META_READ_BYTES)
        size = os.fstat(fp.fileno()).st_size
    if len(head) < HEADER_BYTES or not is_part10(head):
        raise NotPart10Error(
            "not a DICOM PS3.10 file (no 'DICM' at offset 128); only Part 10 files can become Secure DICOM Files",
            path=path,
        )
    values = _parse_meta(head, size, path)
    if values is None:  # not the plain explicit VR layout: let pydicom try (slower, more tolerant)
        values = _pydicom_meta(path)
    missing = [name for tag, name in _META_UIDS.items() if not values.get(tag)]
    if missing:
        raise NotPart10Error(f"the File Meta Information lacks {', '.join(missing)}", path=path)
    return FileMeta(
        sop_class_uid=values[0x00020002],
        sop_instance_uid=values[0x00020003],
        transfer_syntax_uid=values[0x00020010],
        preamble=classify_preamble(head[:PREAMBLE_BYTES]),
    )


#: The meta group is small; one read of this size covers it in practice (a larger one falls back).
_META_READ_BYTES = 16 * 1024
_META_UIDS = {
    0x00020002: "MediaStorageSOPClassUID",
    0x00020003: "MediaStorageSOPInstanceUID",
    0x00020010: "TransferSyntaxUID",
}
#: Explicit VR with a 2-byte reserved field and a 4-byte length (PS3.5 §7.1.2).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


def _parse_meta(head: bytes, size: int, path: Path) -> dict[int, str] | None:
    """The UIDs of the File Meta group, read straight from its explicit VR little endian bytes (PS3.10 §7.1).

    pydicom's reader costs milliseconds per file; this costs microseconds, which matters for sets of
    thousands. Returns None for layouts it does not handle (then pydicom reads the file).
    """
    offset = HEADER_BYTES
    values: dict[int, str] = {}
    declared_end: int | None = None
    while offset + 8 <= len(head):
        group, element = (
            int.from_bytes(head[offset : offset + 2], "little"),
            int.from_bytes(head[offset + 2 : offset + 4], "little"),
        )
        if group != 0x0002:
            break
        vr = head[offset + 4 : offset + 6]
        if not (vr.isalpha() and vr.isupper()):
            return None
        if vr in _LONG_VRS:
            if offset + 12 > len(head):
                return None
            length = int.from_bytes(head[offset + 8 : offset + 12], "little")
            value_at = offset + 12
        else:
            length = int.from_bytes(head[offset + 6 : offset + 8], "little")
            value_at = offset + 8
        if length == 0xFFFFFFFF or value_at + length > len(head):
            if value_at + length > size:
                raise NotPart10Error(
                    f"truncated: a File Meta Information element at offset {offset} needs {length} bytes the file does not have",
                    path=path,
                )
            return None
        value = head[value_at : value_at + length]
        tag = (group << 16) | element
        if tag == 0x00020000 and vr == b"UL" and length == 4:
            declared_end = value_at + 4 + int.from_bytes(value, "little")
            if declared_end > size:
                raise NotPart10Error(
                    f"truncated: the File Meta Information announces {declared_end} bytes, the file has {size}",
                    path=path,
                )
        elif tag in _META_UIDS:
            values[tag] = value.rstrip(b"\x00 ").decode("ascii", errors="replace")
        offset = value_at + length
    else:
        return None  # the meta group runs past what was read
    if declared_end is not None and declared_end != offset:
        raise NotPart10Error(
            f"the File Meta Information Group Length says the group ends at {declared_end}, it ends at {offset}",
            path=path,
        )
    return values


def _pydicom_meta(path: Path) -> dict[int, str]:
    # pydicom is imported here, not at the top: it costs a third of a second, and most files never get here.
    import struct

    from pydicom.errors import BytesLengthException, InvalidDicomError
    from pydicom.filereader import read_file_meta_info

    try:
        meta = read_file_meta_info(path)
    except OSError as exc:
        raise NotPart10Error(f"the File Meta Information cannot be read: {exc}", path=path) from exc
    # What pydicom raises for malformed meta groups (truncated lengths, bad value sizes): all bad input.
    except (InvalidDicomError, BytesLengthException, struct.error, ValueError, KeyError, EOFError) as exc:
        raise NotPart10Error(f"the File Meta Information does not parse: {exc}", path=path) from exc
    return {tag: str(meta.get(name, "") or "") for tag, name in _META_UIDS.items()}


def read_patient_context(paths: list[Path], *, limit: int = 100) -> tuple[str, ...]:
    """Patient names, IDs and birth dates of up to ``limit`` Part 10 files, for the password policy.

    Only the elements before group 0011 are walked (the Patient Module sits in group 0010), straight from the
    bytes for little endian files; other encodings go to pydicom (``specific_tags``). Files that are not Part 10
    are skipped silently: this is advice for the password check, not validation.
    """
    found: set[str] = set()
    for path in paths[:limit]:
        try:
            values = _patient_values(path)
        except OSError:
            continue
        if values is None:
            values = _pydicom_patient_values(path)
        found.update(value for value in values if value)
    return tuple(sorted(found))


#: (0010,0010) Patient's Name, (0010,0020) Patient ID, (0010,0030) Patient's Birth Date.
_PATIENT_TAGS = (0x00100010, 0x00100020, 0x00100030)
_PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate")
#: Enough for the File Meta and the groups before 0010 of any ordinary header.
_CONTEXT_READ_BYTES = 64 * 1024
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


def _patient_values(path: Path) -> list[str] | None:
    """The patient values of a little endian file, or None when this reader does not handle its layout."""
    with open(path, "rb") as fp:
        head = fp.read(_CONTEXT_READ_BYTES)
    if len(head) < HEADER_BYTES or not is_part10(head):
        return []
    meta_end, syntax = _meta_end_and_syntax(head)
    if meta_end is None or syntax not in (_EXPLICIT_LE, _IMPLICIT_LE):
        return None  # deflate, big endian, private syntaxes: pydicom
    whole_file = len(head) < _CONTEXT_READ_BYTES
    found = _walk_for_patient(head, meta_end, explicit=syntax == _EXPLICIT_LE, whole_file=whole_file)
    if found is None:
        return None
    return [found.get(tag, "") for tag in _PATIENT_TAGS]


def _meta_end_and_syntax(head: bytes) -> tuple[int | None, str]:
    offset, syntax = HEADER_BYTES, ""
    while offset + 8 <= len(head) and head[offset : offset + 2] == b"\x02\x00":
        vr = head[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            length, value_at = int.from_bytes(head[offset + 8 : offset + 12], "little"), offset + 12
        else:
            length, value_at = int.from_bytes(head[offset + 6 : offset + 8], "little"), offset + 8
        if length == _UNDEFINED or value_at + length > len(head):
            return None, ""
        if head[offset + 2 : offset + 4] == b"\x10\x00":
            syntax = head[value_at : value_at + length].rstrip(b"\x00 ").decode("ascii", errors="replace")
        offset = value_at + length
    return offset, syntax


def _walk_for_patient(head: bytes, offset: int, *, explicit: bool, whole_file: bool) -> dict[int, str] | None:
    """Walk top-level elements up to group 0010; None when the bytes read run out early or make no sense."""
    found: dict[int, str] = {}
    end = len(head)
    while offset + 8 <= end:
        tag, length, value_at = _element_header(head, offset, explicit)
        if value_at < 0:
            return None
        if tag > 0x0010FFFF:
            return found
        if length == _UNDEFINED:
            offset = _skip_undefined(head, value_at, explicit)
            if offset < 0:
                return None
            continue
        if value_at + length > end:
            return None if tag <= _PATIENT_TAGS[-1] else found
        if tag in _PATIENT_TAGS:
            found[tag] = head[value_at : value_at + length].rstrip(b"\x00 ").decode("ascii", errors="replace")
        offset = value_at + length
    return found if whole_file and offset == end else None


def _element_header(head: bytes, offset: int, explicit: bool) -> tuple[int, int, int]:
    """(tag, length, value offset) of the element at ``offset``; value offset -1 when it does not fit."""
    tag = (int.from_bytes(head[offset : offset + 2], "little") << 16) | int.from_bytes(
        head[offset + 2 : offset + 4], "little"
    )
    if not explicit or (tag >> 16) == 0xFFFE:  # items and delimiters have no VR in either encoding
        return tag, int.from_bytes(head[offset + 4 : offset + 8], "little"), offset + 8
    vr = head[offset + 4 : offset + 6]
    if vr in _LONG_VRS:
        if offset + 12 > len(head):
            return tag, 0, -1
        return tag, int.from_bytes(head[offset + 8 : offset + 12], "little"), offset + 12
    return tag, int.from_bytes(head[offset + 6 : offset + 8], "little"), offset + 8


def _skip_undefined(head: bytes, offset: int, explicit: bool, depth: int = 0) -> int:
    """The offset after an undefined-length sequence whose first item starts at ``offset``; -1 if unknown."""
    end = len(head)
    while depth <= 8 and offset + 8 <= end:
        tag, length, value_at = _element_header(head, offset, explicit)
        if tag == _SEQUENCE_END:
            return value_at
        if tag != _ITEM:
            return -1
        offset = _skip_item(head, value_at, explicit, depth) if length == _UNDEFINED else value_at + length
        if offset < 0:
            return -1
    return -1


def _skip_item(head: bytes, offset: int, explicit: bool, depth: int) -> int:
    """The offset after an undefined-length item whose first element starts at ``offset``; -1 if unknown."""
    end = len(head)
    while offset + 8 <= end:
        tag, length, value_at = _element_header(head, offset, explicit)
        if value_at < 0:
            return -1
        if tag == _ITEM_END:
            return value_at
        offset = (
            _skip_undefined(head, value_at, explicit, depth + 1)
            if length == _UNDEFINED
            else value_at + length
        )
        if offset < 0:
            return -1
    return -1


def _pydicom_patient_values(path: Path) -> list[str]:
    # pydicom is imported here, not at the top: it costs a third of a second, which a seal would pay for nothing.
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=list(_PATIENT_KEYWORDS))
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError, AttributeError):
        return []
    return [str(ds.get(keyword, "") or "").strip() for keyword in _PATIENT_KEYWORDS]
