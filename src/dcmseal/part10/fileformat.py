"""PS3.10 §7.1 file facts: is it a DICOM File, its File Meta Information, and what its preamble holds."""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from dcmseal.errors import NotPart10Error
from dcmseal.part10.encoding import LONG_VRS, UNDEFINED_LENGTH, VRS

__all__ = [
    "DICM_OFFSET",
    "DICM_ZERO_PREAMBLE",
    "HEADER_BYTES",
    "PREAMBLE_BYTES",
    "ZERO_PREAMBLE",
    "FileMeta",
    "MetaStop",
    "PlainMeta",
    "PreambleKind",
    "classify_preamble",
    "is_part10",
    "read_file_meta",
    "read_plain_meta",
    "require_part10",
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


def require_part10(head: bytes, path: Path) -> None:
    """Refuse ``head`` (the first bytes of ``path``) unless it is a PS3.10 file's: one message everywhere."""
    if not is_part10(head):
        raise NotPart10Error(
            "not a DICOM PS3.10 file (no 'DICM' at offset 128); only Part 10 files can become Secure DICOM Files",
            path=path,
        )


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
    require_part10(head, path)
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
_META_HEADER = struct.Struct("<HH2sH").unpack_from
_U32 = struct.Struct("<I").unpack_from
_META_UIDS = {
    0x00020002: "MediaStorageSOPClassUID",
    0x00020003: "MediaStorageSOPInstanceUID",
    0x00020010: "TransferSyntaxUID",
}


class MetaStop(enum.StrEnum):
    """Where :func:`read_plain_meta` stopped."""

    END = "end"  # at the first header of another group: the group is whole
    VR = "vr"  # at a VR that is not two upper-case letters
    SHORT = "short"  # the bytes at hand end inside a header, or before the group ends
    OVERRUN = "overrun"  # at a value running past the bytes at hand (or of undefined length)


@dataclass(slots=True)
class PlainMeta:
    """A File Meta group read straight from its bytes as PS3.10 §7.1 lays it out (explicit VR little endian).

    ``end`` is where the read stopped: the data set's first byte when ``stop`` is :attr:`MetaStop.END`, else
    the header it stopped at.
    """

    stop: MetaStop
    end: int
    headers: list[int]  # the offset of each element header of the group read
    spans: dict[int, tuple[int, int]]  # the value of (0002,0002), (0002,0003), (0002,0010) by tag
    declared_end: int | None = None  # where a (0002,0000) UL of 4 bytes says the group ends
    odd_group_length: bool = False  # a (0002,0000) of another VR or length
    private_information: bool = False  # a (0002,0102) is present
    unknown_vr: bool = False  # a VR PS3.5 does not define (upper-case letters, read as a short header)
    overrun: tuple[int, int] | None = None  # (value offset, length) of the value at ``end`` past the bytes

    def value(self, head: bytes, tag: int) -> str | None:
        """The UID of ``tag`` as text (its 00H/space padding removed), None when the group has none."""
        span = self.spans.get(tag)
        return None if span is None else head[span[0] : span[1]].rstrip(b"\x00 ").decode("ascii", "replace")


def read_plain_meta(head: bytes) -> PlainMeta:
    """Read the File Meta group from ``head`` (the file's first bytes) as PS3.10 §7.1 lays it out.

    pydicom's reader costs milliseconds per file; this costs microseconds, which matters for sets of
    thousands. It stops at the first header of another group, or at what it does not handle (see
    :class:`MetaStop`); each caller decides what that means: :func:`parse_meta_group` falls back to pydicom
    or refuses the file, the scanner reads the group again element by element with findings.
    """
    n = len(head)
    offset = HEADER_BYTES
    headers: list[int] = []
    meta = PlainMeta(stop=MetaStop.SHORT, end=offset, headers=headers, spans={})
    unpack, u32 = _META_HEADER, _U32
    while offset + 8 <= n:
        group, element, vr, length = unpack(head, offset)
        if group != 0x0002:
            meta.stop = MetaStop.END
            break
        if vr in LONG_VRS:
            if offset + 12 > n:
                break
            length = u32(head, offset + 8)[0]
            value_at = offset + 12
        elif vr in VRS:
            value_at = offset + 8
        elif vr.isalpha() and vr.isupper():
            meta.unknown_vr = True
            value_at = offset + 8
        else:
            meta.stop = MetaStop.VR
            break
        headers.append(offset)
        if length == UNDEFINED_LENGTH or value_at + length > n:
            meta.stop, meta.overrun = MetaStop.OVERRUN, (value_at, length)
            break
        if element == 0x0000:
            if vr == b"UL" and length == 4:
                meta.declared_end = value_at + 4 + u32(head, value_at)[0]
            else:
                meta.odd_group_length = True
        elif element == 0x0102:
            meta.private_information = True
        elif (0x00020000 | element) in _META_UIDS:
            meta.spans[0x00020000 | element] = (value_at, value_at + length)
        offset = value_at + length
    meta.end = offset
    return meta


def _parse_meta(head: bytes, size: int, path: Path) -> tuple[dict[int, str], int] | None:
    """The UIDs of the File Meta group and its end, from its plain layout (:func:`read_plain_meta`); None for
    a layout that pydicom should read, an error for a group the file is too short to hold."""
    meta = read_plain_meta(head)
    if meta.declared_end is not None and meta.declared_end > size:
        raise NotPart10Error(
            f"truncated: the File Meta Information announces {meta.declared_end} bytes, the file has {size}",
            path=path,
        )
    if meta.overrun is not None:
        value_at, length = meta.overrun
        if value_at + length > size:
            raise NotPart10Error(
                f"truncated: a File Meta Information element at offset {meta.end} needs {length} bytes the file does not have",
                path=path,
            )
        return None
    if meta.stop is not MetaStop.END:
        return None
    if meta.declared_end is not None and meta.declared_end != meta.end:
        raise NotPart10Error(
            f"the File Meta Information Group Length says the group ends at {meta.declared_end}, it ends at {meta.end}",
            path=path,
        )
    values = {tag: meta.value(head, tag) or "" for tag in meta.spans}
    return values, meta.end


def _pydicom_meta(path: Path) -> tuple[dict[int, str], int]:
    # pydicom is imported here, not at the top: it costs a third of a second, and most files never get here.
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
