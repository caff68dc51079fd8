"""PS3.10 §7.1 file facts: is it a DICOM File, its File Meta Information, and what its preamble holds."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from dcmseal.errors import NotPart10Error
from dcmseal.part10.encoding import LONG_VRS

__all__ = [
    "DICM_OFFSET",
    "DICM_ZERO_PREAMBLE",
    "HEADER_BYTES",
    "PREAMBLE_BYTES",
    "ZERO_PREAMBLE",
    "FileMeta",
    "PreambleKind",
    "classify_preamble",
    "is_part10",
    "read_file_meta",
]

PREAMBLE_BYTES = 128
DICM_OFFSET = 128
HEADER_BYTES = 132
#: An unused preamble (PS3.10 §7.1), and what dcmseal writes in place of any other (§7.5).
ZERO_PREAMBLE = bytes(PREAMBLE_BYTES)
#: "DICM" and zeros: a preamble some writers use, harmless (PS3.10 §8.3 Note 3).
DICM_ZERO_PREAMBLE = b"DICM" + bytes(PREAMBLE_BYTES - 4)


class PreambleKind(enum.StrEnum):
    """What the 128-byte File Preamble holds, as far as sealing needs to know (the scanner goes further)."""

    ZERO = "zero"  # all 00H, what PS3.10 §7.1 asks when unused
    DICM_ZERO = "dicm-zero"  # "DICM" + 124 x 00H, PS3.10 §8.3 Note 3
    TIFF = "tiff"  # a TIFF or BigTIFF header: dual personality, PS3.10 §7.5
    OTHER = "other"  # anything else: stray bytes or active content


_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def classify_preamble(preamble: bytes) -> PreambleKind:
    """Classify a 128-byte preamble (PS3.10 §7.1, §7.5, §8.3)."""
    if preamble == ZERO_PREAMBLE:
        return PreambleKind.ZERO
    if preamble == DICM_ZERO_PREAMBLE:
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
    values, _end = parse_meta_group(head, size, path)
    return FileMeta(
        sop_class_uid=values[0x00020002],
        sop_instance_uid=values[0x00020003],
        transfer_syntax_uid=values[0x00020010],
        preamble=classify_preamble(head[:PREAMBLE_BYTES]),
    )


def parse_meta_group(head: bytes, size: int, path: Path) -> tuple[dict[int, str], int]:
    """The File Meta UIDs (by tag) of a Part 10 file and the offset where its data set starts.

    ``head`` holds the file's first bytes (preamble and ``DICM`` checked by the caller), ``size`` its length.
    The group is read from those bytes when it has the plain explicit VR little endian layout of PS3.10 §7.1,
    else by pydicom (slower, more tolerant).

    Raises
    ------
    NotPart10Error
        A group that does not parse or lacks one of its Type 1 UIDs.
    """
    parsed = _parse_meta(head, size, path)
    values, end = parsed if parsed is not None else _pydicom_meta(path)
    missing = [name for tag, name in _META_UIDS.items() if not values.get(tag)]
    if missing:
        raise NotPart10Error(f"the File Meta Information lacks {', '.join(missing)}", path=path)
    return values, end


#: The meta group is small; one read of this size covers it in practice (a larger one falls back).
_META_READ_BYTES = 16 * 1024
_META_UIDS = {
    0x00020002: "MediaStorageSOPClassUID",
    0x00020003: "MediaStorageSOPInstanceUID",
    0x00020010: "TransferSyntaxUID",
}


def _parse_meta(head: bytes, size: int, path: Path) -> tuple[dict[int, str], int] | None:
    """The UIDs of the File Meta group and its end, read straight from its explicit VR little endian bytes.

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
        if vr in LONG_VRS:
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
    return values, offset


def _pydicom_meta(path: Path) -> tuple[dict[int, str], int]:
    # pydicom is imported here, not at the top: it costs a third of a second, and most files never get here.
    import struct

    from pydicom.errors import BytesLengthException, InvalidDicomError
    from pydicom.filereader import _read_file_meta_info

    try:
        with open(path, "rb") as fp:
            fp.seek(HEADER_BYTES)
            meta = _read_file_meta_info(fp)
            end = fp.tell()
        # pydicom converts values when they are read: a malformed one raises here, not above.
        values = {tag: str(meta.get(name, "") or "") for tag, name in _META_UIDS.items()}
    except OSError as exc:
        raise NotPart10Error(f"the File Meta Information cannot be read: {exc}", path=path) from exc
    # What pydicom raises for malformed meta groups (truncated lengths, bad value sizes): all bad input.
    except (
        InvalidDicomError,
        BytesLengthException,
        struct.error,
        ValueError,
        KeyError,
        EOFError,
        NotImplementedError,
    ) as exc:
        raise NotPart10Error(f"the File Meta Information does not parse: {exc}", path=path) from exc
    return values, end
