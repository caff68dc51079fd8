"""Directory records and the DICOMDIR that holds them, encoded in one pass (PS3.3 Annex F, PS3.10 §8.6).

Records are kept as encoded elements (Explicit VR Little Endian, ready to write) in a tree of PATIENT, STUDY,
SERIES and leaf records; the DICOMDIR is written once, its Offsets of the Next/Lower Directory Record and of the
First/Last Root Directory Record computed from the encoded lengths and patched in place. The encoding is what
pydicom's ``FileSet.write`` gives for the same records (Basic Directory, PS3.3 F.3; sorted elements, defined
lengths, text padded with a space, UIDs with 00H); values the fast path cannot vouch for (other character sets,
sequences, unusual padding) are encoded by pydicom's element writer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

from dcmseal.media.transcode import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from dcmseal.part10 import encoding
from dcmseal.part10.encoding import EXPLICIT_VR_LITTLE_ENDIAN
from dcmseal.part10.fileformat import ZERO_PREAMBLE

__all__ = [
    "ALPHANUMERIC_ABOVE",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "LONG_VRS",
    "MEDIA_STORAGE_DIRECTORY_SOP_CLASS",
    "REFERENCED_FILE_ID_TAG",
    "DirectoryRecord",
    "encode_dicomdir",
    "encode_element",
    "encode_text",
    "encode_ul",
    "encode_us",
    "encode_with_pydicom",
    "file_id_component",
    "write_dicomdir",
]

#: PS3.10 §8.6 / PS3.4 Annex I: Media Storage Directory Storage, the SOP class of the DICOMDIR.
MEDIA_STORAGE_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
#: Explicit VR with a 2-byte reserved field and a 4-byte length, as the text the records are kept with.
LONG_VRS = frozenset(vr.decode("ascii") for vr in encoding.LONG_VRS)
#: Values padded with 00H rather than a space (PS3.5 §6.2).
_NULL_PADDED = frozenset({"UI", "OB", "OD", "OF", "OL", "OV", "OW", "UN", "SV", "UV"})

# The identity written in the DICOMDIR's File Meta (PS3.10 §7.1); a test swaps in pydicom's to compare bytes.
_IMPLEMENTATION_CLASS_UID = IMPLEMENTATION_CLASS_UID
_IMPLEMENTATION_VERSION_NAME = IMPLEMENTATION_VERSION_NAME

_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2s2xI")
_UL = struct.Struct("<I")
_ITEM_HEADER = struct.Struct("<HHI")

NEXT_OFFSET_TAG = 0x00041400
IN_USE_TAG = 0x00041410
LOWER_OFFSET_TAG = 0x00041420
RECORD_TYPE_TAG = 0x00041430
REFERENCED_FILE_ID_TAG = 0x00041500

# pydicom.fileset's File ID component prefixes and digits (RecordNode.component): the same names as before.
_PREFIXES = {
    "PATIENT": "PT",
    "STUDY": "ST",
    "SERIES": "SE",
    "IMAGE": "IM",
    "RT DOSE": "RD",
    "RT STRUCTURE SET": "RS",
    "RT PLAN": "RP",
    "RT TREAT RECORD": "RX",
    "PRESENTATION": "PR",
    "WAVEFORM": "WV",
    "SR DOCUMENT": "SR",
    "KEY OBJECT DOC": "KY",
    "SPECTROSCOPY": "SP",
    "RAW DATA": "RW",
    "REGISTRATION": "RG",
    "FIDUCIAL": "FD",
    "HANGING PROTOCOL": "HG",
    "ENCAP DOC": "ED",
    "VALUE MAP": "VM",
    "STEREOMETRIC": "SX",
    "PALETTE": "PA",
    "IMPLANT": "IP",
    "IMPLANT ASSY": "IA",
    "IMPLANT GROUP": "IG",
    "PLAN": "PL",
    "MEASUREMENT": "MX",
    "SURFACE": "SF",
    "SURFACE SCAN": "SS",
    "TRACT": "TR",
    "ASSESSMENT": "AS",
    "RADIOTHERAPY": "RT",
}
_DIGITS = "0123456789"
_ALPHANUMERIC = "0123456789ABCDEFGHIKLMNOPQRSTUVWXYZ"  # pydicom's (no J)
#: Above this many instances pydicom switches to alphanumeric components; so do we.
ALPHANUMERIC_ABOVE = 10**6


def encode_element(tag: int, vr: str, value: bytes) -> bytes:
    """One Explicit VR Little Endian element; ``value`` is padded to even length (PS3.5 §7.1.2)."""
    if len(value) & 1:
        value += b"\x00" if vr in _NULL_PADDED else b" "
    if vr in LONG_VRS:
        return _LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value
    if len(value) > 0xFFFF:
        raise ValueError(
            f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr}: {len(value)} bytes do not fit a short VR"
        )
    return _SHORT.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def encode_text(tag: int, vr: str, text: str, encodings: str | Sequence[str] | None = None) -> bytes:
    """A text element from a Python string: ASCII directly, anything else through pydicom's charset encoder."""
    if text.isascii():
        return encode_element(tag, vr, text.encode("ascii"))
    from pydicom.dataelem import DataElement

    return encode_with_pydicom(DataElement(tag, vr, text), encodings)


def encode_ul(tag: int, value: int) -> bytes:
    """An unsigned long element."""
    return encode_element(tag, "UL", _UL.pack(value))


def encode_us(tag: int, value: int) -> bytes:
    """An unsigned short element."""
    return encode_element(tag, "US", struct.pack("<H", value))


def encode_with_pydicom(element: object, encodings: str | Sequence[str] | None) -> bytes:
    """Encode a pydicom ``DataElement`` as pydicom's DICOMDIR writer does (Explicit VR Little Endian)."""
    from pydicom.charset import default_encoding
    from pydicom.dataelem import DataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    if not isinstance(element, DataElement):
        raise TypeError(f"a pydicom DataElement is needed, not {type(element).__name__}")
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    chosen = encodings if isinstance(encodings, str) else list(encodings or [default_encoding])
    write_data_element(fp, element, chosen)
    return bytes(fp.getvalue())


def file_id_component(record_type: str, index: int, *, alphanumeric: bool = False) -> str:
    """The File ID component of the ``index``-th child record of its parent (``PT000000``, ``IM000012``)."""
    prefix = _PREFIXES[record_type]
    chars = _ALPHANUMERIC if alphanumeric else _DIGITS
    suffix = ""
    n, base = index, len(chars)
    while n:
        suffix += chars[n % base]
        n //= base
    return f"{prefix}{suffix[::-1]:>0{8 - len(prefix)}}"


class DirectoryRecord:
    """One directory record (PS3.3 F.3.2.2): its encoded elements by tag, and its lower-level records."""

    __slots__ = ("by_key", "children", "elements", "index", "key", "offset", "record_type")

    def __init__(self, record_type: str, key: str, elements: dict[int, bytes]) -> None:
        self.record_type = record_type
        self.key = key
        # The offsets and flags pydicom's record creators start every record with (patched at write time).
        self.elements = {
            NEXT_OFFSET_TAG: encode_ul(NEXT_OFFSET_TAG, 0),
            IN_USE_TAG: encode_us(IN_USE_TAG, 0xFFFF),
            LOWER_OFFSET_TAG: encode_ul(LOWER_OFFSET_TAG, 0),
            RECORD_TYPE_TAG: encode_element(RECORD_TYPE_TAG, "CS", record_type.encode("ascii")),
            **elements,
        }
        self.children: list[DirectoryRecord] = []
        self.by_key: dict[str, DirectoryRecord] = {}
        self.offset = 0  # of the record's item in the DICOMDIR, once encoded
        self.index = 0  # among its parent's children: its File ID component

    def child(self, record: DirectoryRecord) -> DirectoryRecord:
        """Add ``record`` below this one, or return the child with the same key (PS3.3 F.5: one per key)."""
        found = self.by_key.get(record.key)
        if found is not None:
            return found
        self.by_key[record.key] = record
        record.index = len(self.children)
        self.children.append(record)
        return record

    def append(self, record: DirectoryRecord) -> int:
        """Add ``record`` (a leaf: keys never merge) below this one; return its index among the children."""
        self.by_key.setdefault(record.key, record)
        record.index = len(self.children)
        self.children.append(record)
        return record.index

    def has_value(self, tag: int) -> bool:
        """Whether the record holds a non-empty value for ``tag``."""
        encoded = self.elements.get(tag)
        if encoded is None:
            return False
        header = 12 if encoded[4:6].decode("ascii") in LONG_VRS else 8
        return len(encoded) > header

    def encode(self) -> bytes:
        """The record's elements in ascending tag order (the item's value)."""
        elements = self.elements
        return b"".join([elements[tag] for tag in sorted(elements)])


def _preorder(records: Sequence[DirectoryRecord]) -> Iterator[DirectoryRecord]:
    for record in records:
        yield record
        yield from _preorder(record.children)


def _file_meta(fileset_uid: str) -> bytes:
    elements = b"".join(
        (
            encode_element(0x00020001, "OB", b"\x00\x01"),
            encode_element(0x00020002, "UI", MEDIA_STORAGE_DIRECTORY_SOP_CLASS.encode()),
            encode_element(0x00020003, "UI", fileset_uid.encode("ascii")),
            encode_element(0x00020010, "UI", EXPLICIT_VR_LITTLE_ENDIAN.encode()),
            encode_element(0x00020012, "UI", _IMPLEMENTATION_CLASS_UID.encode()),
            encode_element(0x00020013, "SH", _IMPLEMENTATION_VERSION_NAME.encode()),
        )
    )
    return encode_ul(0x00020000, len(elements)) + elements


def encode_dicomdir(roots: Sequence[DirectoryRecord], *, fileset_uid: str, fileset_id: str) -> bytes:
    """The whole DICOMDIR file: preamble, File Meta, File-set Identification, Directory Information (PS3.3 F.3).

    Records are written in pre-order (each record, then its lower-level records), the order pydicom writes and
    readers walk; the offsets are byte positions from the start of the file (PS3.3 F.3.2.1).
    """
    head = bytearray(ZERO_PREAMBLE + b"DICM" + _file_meta(fileset_uid))
    head += encode_element(0x00041130, "CS", fileset_id.encode("ascii"))
    first_at = len(head) + 8  # the value of (0004,1200)
    head += encode_ul(0x00041200, 0) + encode_ul(0x00041202, 0) + encode_us(0x00041212, 0)
    sequence_header_at = len(head)
    offset = sequence_header_at + 12
    encoded: list[bytes] = []
    for record in _preorder(roots):
        data = record.encode()
        record.offset = offset
        encoded.append(_ITEM_HEADER.pack(0xFFFE, 0xE000, len(data)))
        encoded.append(data)
        offset += 8 + len(data)
    out = head + _LONG.pack(0x0004, 0x1220, b"SQ", offset - sequence_header_at - 12) + b"".join(encoded)
    # Each record starts with (0004,1400) UL, (0004,1410) US, (0004,1420) UL: values at +8 and +30.
    for parent_children in _sibling_lists(roots):
        for i, record in enumerate(parent_children):
            if i + 1 < len(parent_children):
                _UL.pack_into(out, record.offset + 8 + 8, parent_children[i + 1].offset)
            if record.children:
                _UL.pack_into(out, record.offset + 8 + 30, record.children[0].offset)
    if roots:
        _UL.pack_into(out, first_at, roots[0].offset)
        _UL.pack_into(out, first_at + 12, roots[-1].offset)
    return bytes(out)


def _sibling_lists(roots: Sequence[DirectoryRecord]) -> Iterator[Sequence[DirectoryRecord]]:
    yield roots
    for record in _preorder(roots):
        if record.children:
            yield record.children


def write_dicomdir(
    path: Path, roots: Sequence[DirectoryRecord], *, fileset_uid: str, fileset_id: str
) -> None:
    """Write :func:`encode_dicomdir`'s bytes to ``path`` (a file in a staging directory)."""
    Path(path).write_bytes(encode_dicomdir(roots, fileset_uid=fileset_uid, fileset_id=fileset_id))
