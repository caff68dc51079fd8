"""Read selected top-level attributes of a Part 10 file fast, stopping before the bulk data (PS3.5 §7.1, §7.5).

The File Meta group is parsed, then the data set's top-level element headers are walked: values are skipped by
their length (undefined-length sequences item by item) and only the values of the wanted tags are read. The walk
stops at the first tag past ``stop_after`` or at Pixel Data, so a 0.5 MiB image costs one small read. Explicit
and implicit VR little endian, explicit VR big endian and the deflated syntax (inflated as far as the walk goes)
are handled; values are returned raw, in the data set's byte order, for the caller to decode or copy. pydicom's
``dcmread`` costs milliseconds per file; this costs tens of microseconds. :func:`read_patient_context` uses
it for the password policy's view of the patient.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dcmseal.errors import NotPart10Error
from dcmseal.part10.encoding import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    HEADER_UNPACKERS,
    IMPLICIT_VR_LITTLE_ENDIAN,
    ITEM,
    ITEM_DELIMITATION,
    PIXEL_DATA,
    SEQUENCE_DELIMITATION,
    SHORT_VRS,
    UNDEFINED_LENGTH,
    is_explicit_vr,
    read_element_header,
)
from dcmseal.part10.fileformat import HEADER_BYTES, is_part10, parse_meta_group, require_part10

__all__ = [
    "DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN",
    "EXPLICIT_VR_BIG_ENDIAN",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "MAX_DEPTH",
    "MAX_INFLATED_BYTES",
    "PIXEL_DATA",
    "Header",
    "RawValue",
    "read_header",
    "read_items",
    "read_patient_context",
]

#: The walk never goes past the start of group 7FE0 (Float/Double/Pixel Data).
_PIXEL_GROUP_START = 0x7FE00000

#: The first read; a typical header (a few KiB) fits, a longer one is read on in windows of this size.
_WINDOW_BYTES = 16 * 1024
#: A deflated data set is inflated in memory only this far (a deflate bomb is 1000:1).
MAX_INFLATED_BYTES = 64 * 1024 * 1024
#: Sequences nested deeper than this are hostile or broken (a skip would otherwise recurse without bound).
MAX_DEPTH = 64
_META_UIDS = {0x00020002: "sop_class_uid", 0x00020003: "sop_instance_uid", 0x00020010: "transfer_syntax_uid"}


@dataclass(frozen=True, slots=True)
class RawValue:
    """One element as found: its VR (explicit, or the dictionary's for implicit VR) and its raw value bytes.

    For a sequence of undefined length ``value`` holds its items without the Sequence Delimitation Item, and
    ``undefined_length`` is set.
    """

    vr: str
    value: bytes
    undefined_length: bool = False
    #: Where the value starts in the file (in the inflated data set for the deflated syntax).
    at: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """The File Meta facts and the wanted top-level elements of a Part 10 file."""

    path: Path
    sop_class_uid: str  # (0002,0002)
    sop_instance_uid: str  # (0002,0003)
    transfer_syntax_uid: str  # (0002,0010)
    little_endian: bool
    implicit_vr: bool
    #: The wanted elements present at the top level of the data set, by tag.
    values: dict[int, RawValue]
    #: The ``present`` tags found at the top level (their values are not read).
    present: frozenset[int]


class _Reader:
    """Random access to a file through one window of bytes (or to bytes already in memory)."""

    __slots__ = ("base", "buf", "fp", "inflated", "inflater", "pending", "size")

    def __init__(self, fp: BinaryIO | None, buf: bytes, size: int) -> None:
        self.fp, self.buf, self.base, self.size = fp, buf, 0, size
        self.inflater: zlib._Decompress | None = None
        self.pending = b""
        self.inflated = bytearray()  # the inflated data set so far (deflated syntax only)

    def at(self, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` (fewer at the end of the data)."""
        rel = offset - self.base
        if rel >= 0 and rel + n <= len(self.buf):
            return self.buf[rel : rel + n]
        if self.inflater is not None:
            self._inflate_to(offset + n)
            self.buf = bytes(self.inflated)  # a snapshot the walk can index (header-sized in practice)
            return self.buf[offset : offset + n]
        if self.fp is None:
            return self.buf[offset : offset + n] if offset >= 0 else b""
        self.fp.seek(offset)
        self.buf, self.base = self.fp.read(max(n, _WINDOW_BYTES)), offset
        return self.buf[:n]

    def _inflate_to(self, end: int) -> None:
        # Inflate only as far as the walk reads: a deflated header costs what it costs, not the whole file.
        assert self.inflater is not None
        assert self.fp is not None
        inflated = self.inflated
        if end > MAX_INFLATED_BYTES:
            raise NotPart10Error(
                f"the deflated data set inflates past {MAX_INFLATED_BYTES} bytes before the wanted elements"
            )
        while len(inflated) < end and not self.inflater.eof:
            if not self.pending:
                self.pending = self.fp.read(_WINDOW_BYTES)
                if not self.pending:
                    break
            try:
                # At least double what is there: the snapshots in at() then cost O(n) in all.
                chunk = self.inflater.decompress(
                    self.pending, max(end - len(inflated), len(inflated), _WINDOW_BYTES)
                )
            except zlib.error as exc:
                raise NotPart10Error(f"the deflated data set does not inflate: {exc}") from exc
            self.pending = self.inflater.unconsumed_tail
            inflated += chunk
        if self.inflater.eof or (not self.pending and len(inflated) < end):
            self.size = len(inflated)


def read_header(
    path: Path,
    wanted: Container[int],
    *,
    stop_after: int = _PIXEL_GROUP_START - 1,
    present: Container[int] = frozenset(),
) -> Header:
    """Read the File Meta Information and the ``wanted`` top-level elements of the Part 10 file ``path``.

    The walk ends at the first top-level tag greater than ``stop_after`` or in group 7FE0 (Pixel Data), or at
    the end of the data set. Nested elements are never returned (a sequence is returned whole, raw).

    Parameters
    ----------
    path : Path
        A PS3.10 file (preamble, ``DICM``, File Meta group in explicit VR little endian, data set).
    wanted : Container[int]
        Tags (``0xggggeeee``) whose values to return.
    present : Container[int]
        Tags whose presence only to report (an Encapsulated Document, say: its value is skipped).
    stop_after : int
        The last tag the caller cares about.

    Returns
    -------
    Header

    Raises
    ------
    NotPart10Error
        No ``DICM`` prefix, a File Meta group without its UIDs, or a data set element that is malformed or runs
        past the end of the file before the walk stops.
    """
    path = Path(path)
    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        head = fp.read(_WINDOW_BYTES)
        require_part10(head, path)
        reader = _Reader(fp, head, size)
        try:
            uids, start = parse_meta_group(head, size, path)
            meta = {_META_UIDS[tag]: value for tag, value in uids.items()}
            ts = meta["transfer_syntax_uid"]
            little = ts != EXPLICIT_VR_BIG_ENDIAN
            explicit = ts != IMPLICIT_VR_LITTLE_ENDIAN
            if ts == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
                fp.seek(start)
                reader = _Reader(fp, b"", 1 << 62)
                reader.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                start = 0
            elif little:
                explicit = is_explicit_vr(reader.at(start, 6), explicit)
            values, seen = _walk(reader, start, little, explicit, wanted, present, stop_after)
        except NotPart10Error as exc:
            if exc.path is None:
                raise NotPart10Error(exc.message, path=path) from None
            raise
    return Header(
        path=path,
        sop_class_uid=meta["sop_class_uid"],
        sop_instance_uid=meta["sop_instance_uid"],
        transfer_syntax_uid=meta["transfer_syntax_uid"],
        little_endian=little,
        implicit_vr=not explicit,
        values=values,
        present=frozenset(seen),
    )


def _dictionary_vr(tag: int) -> str:
    """The VR of ``tag`` for implicit VR data sets (the data dictionary; UN when unknown)."""
    vr = _DICTIONARY_VRS.get(tag)
    if vr is None:
        from pydicom.datadict import dictionary_VR

        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
        _DICTIONARY_VRS[tag] = vr
    return vr


#: Seeded with the patient keys the password policy reads (``read_patient_context``), so that checking a
#: password for an implicit VR file never imports pydicom's dictionary.
_DICTIONARY_VRS: dict[int, str] = {0x00100010: "PN", 0x00100020: "LO", 0x00100030: "DA"}


def _walk(
    reader: _Reader,
    offset: int,
    little: bool,
    explicit: bool,
    wanted: Container[int],
    present: Container[int],
    stop_after: int,
) -> tuple[dict[int, RawValue], list[int]]:
    unpackers = HEADER_UNPACKERS[little]
    hdr_explicit = unpackers[0]
    values: dict[int, RawValue] = {}
    seen: list[int] = []
    stop = min(stop_after, _PIXEL_GROUP_START - 1)
    seen_append = seen.append
    short_vrs = SHORT_VRS
    while True:
        if explicit:
            # The common case, kept tight: short-VR elements nobody wants, inside the bytes at hand.
            rel, buf = offset - reader.base, reader.buf
            last = len(buf) - 12
            while 0 <= rel <= last:
                group, elem, vr_bytes, length = hdr_explicit(buf, rel)
                tag = (group << 16) | elem
                if tag > stop or tag in wanted or tag in present or vr_bytes not in short_vrs:
                    break
                rel += 8 + length
            offset = reader.base + rel if rel >= 0 else offset
        if offset >= reader.size:
            if offset > reader.size and reader.inflater is None:
                raise NotPart10Error(
                    f"the data set does not parse: an element runs past the end of the file ({reader.size} bytes)"
                )
            break
        rel = offset - reader.base
        buf = reader.buf
        if rel < 0 or rel + 12 > len(buf):
            buf, rel = reader.at(offset, 12), 0
            if len(buf) < 8:
                if not buf or reader.inflater is not None:
                    break  # the end of the data (of an inflated data set: exactly where the data ends)
                raise NotPart10Error(
                    f"the data set does not parse: a truncated element header at offset {offset}"
                )
        tag, vr, hlen, length = read_element_header(buf, rel, explicit, unpackers)
        if tag > stop:  # items and delimiters (group FFFE) too: they cannot stand at the top level
            break
        group, elem = tag >> 16, tag & 0xFFFF
        if length < 0:
            raise NotPart10Error(
                f"the data set does not parse: a truncated element header at offset {offset}"
            )
        if not hlen:
            raise NotPart10Error(
                f"the data set does not parse: no valid VR for ({group:04X},{elem:04X}) at offset {offset}"
            )
        value_at = offset + hlen
        if tag in present:
            seen_append(tag)
        if length == UNDEFINED_LENGTH:
            # A sequence (or UN, PS3.5 §6.2.2: implicit VR inside) of undefined length: walk its items.
            inner_explicit = explicit and vr != b"UN"
            end = _skip_undefined(reader, value_at, little, inner_explicit)
            if tag in wanted:
                values[tag] = RawValue(
                    vr.decode("ascii") if vr else _dictionary_vr(tag),
                    reader_bytes(reader, value_at, end - 8 - value_at),
                    True,
                    value_at,
                )
            offset = end
            continue
        end = value_at + length
        if end > reader.size:
            raise NotPart10Error(
                f"the data set does not parse: ({group:04X},{elem:04X}) at offset {offset} needs {length} bytes "
                "the file does not have"
            )
        if tag in wanted:
            value = reader_bytes(reader, value_at, length)
            if len(value) != length:
                raise NotPart10Error(
                    f"the data set does not parse: ({group:04X},{elem:04X}) at offset {offset} is truncated"
                )
            values[tag] = RawValue(vr.decode("ascii") if vr else _dictionary_vr(tag), value, False, value_at)
        offset = end
    return values, seen


def reader_bytes(reader: _Reader, offset: int, n: int) -> bytes:
    """``n`` bytes at ``offset``, however many windows they span."""
    if n <= _WINDOW_BYTES:
        return reader.at(offset, n)
    if reader.inflater is not None:
        return reader.at(offset, n)
    assert reader.fp is not None
    reader.fp.seek(offset)
    return reader.fp.read(n)


def _skip_undefined(reader: _Reader, offset: int, little: bool, explicit: bool) -> int:
    """The offset just past the Sequence Delimitation Item of the undefined-length value starting at ``offset``.

    Items of defined length are skipped by their length; items of undefined length are walked element by
    element (nested undefined lengths the same way, to :data:`MAX_DEPTH` levels).
    """
    unpackers = HEADER_UNPACKERS[little]
    # The stack holds, per open undefined-length level, whether its content is explicit VR and what it is
    # ("s" sequence: items and a sequence delimiter; "i" item: elements and an item delimiter).
    stack: list[tuple[str, bool]] = [("s", explicit)]
    while stack:
        kind, expl = stack[-1]
        head = reader.at(offset, 12)
        if len(head) < 8:
            raise NotPart10Error(
                f"the data set does not parse: the file ends inside a sequence at offset {offset}"
            )
        tag, vr, hlen, length = read_element_header(head, 0, expl, unpackers)
        group, elem = tag >> 16, tag & 0xFFFF
        if group == 0xFFFE:
            offset += 8
            if (tag == SEQUENCE_DELIMITATION and kind == "s") or (tag == ITEM_DELIMITATION and kind == "i"):
                stack.pop()
                continue
            if tag == ITEM and kind == "s":
                if length == UNDEFINED_LENGTH:
                    if len(stack) >= MAX_DEPTH:
                        raise NotPart10Error(
                            f"the data set does not parse: sequences nested deeper than {MAX_DEPTH} levels"
                        )
                    stack.append(("i", expl))
                else:
                    offset += length
                    if offset > reader.size:
                        raise NotPart10Error(
                            f"the data set does not parse: an item at offset {offset - 8 - length} runs past the "
                            "end of the file"
                        )
                continue
            raise NotPart10Error(
                f"the data set does not parse: an unexpected ({group:04X},{elem:04X}) at offset {offset - 8}"
            )
        if kind == "s":
            raise NotPart10Error(
                f"the data set does not parse: ({group:04X},{elem:04X}) where an item was expected at offset "
                f"{offset}"
            )
        if expl and len(head) < 12:
            raise NotPart10Error(f"the data set does not parse: a truncated element at offset {offset}")
        if not hlen:
            raise NotPart10Error(
                f"the data set does not parse: no valid VR for ({group:04X},{elem:04X}) at offset {offset}"
            )
        offset += hlen
        if length == UNDEFINED_LENGTH:
            if len(stack) >= MAX_DEPTH:
                raise NotPart10Error(
                    f"the data set does not parse: sequences nested deeper than {MAX_DEPTH} levels"
                )
            stack.append(("s", expl and vr != b"UN"))
            continue
        offset += length
        if offset > reader.size:
            raise NotPart10Error(
                f"the data set does not parse: ({group:04X},{elem:04X}) runs past the end of the file"
            )
    return offset


def read_items(
    sequence: RawValue, wanted: Container[int], *, little_endian: bool, implicit_vr: bool
) -> Iterator[tuple[int, dict[int, RawValue]]]:
    """The items of a sequence read by :func:`read_header`: each item's offset and its wanted top-level elements.

    The offset is that of the item's tag in the file (``sequence.at`` based), as PS3.3 F.3.2.1 DICOMDIR offsets
    count. Nested sequences are skipped, as by :func:`read_header`.

    Raises
    ------
    NotPart10Error
        An item or element is malformed or runs past the end of the sequence.
    """
    data = sequence.value
    reader = _Reader(None, data, len(data))
    unpackers = HEADER_UNPACKERS[little_endian]
    explicit = not implicit_vr
    item_struct = struct.Struct("<HHI" if little_endian else ">HHI")
    offset, size = 0, len(data)
    while offset + 8 <= size:
        group, elem, length = item_struct.unpack_from(data, offset)
        tag = (group << 16) | elem
        if tag == SEQUENCE_DELIMITATION:
            break
        if tag != ITEM:
            raise NotPart10Error(
                f"the data set does not parse: ({group:04X},{elem:04X}) where an item was expected"
            )
        item_at = offset
        offset += 8
        end = size if length == UNDEFINED_LENGTH else offset + length
        if end > size:
            raise NotPart10Error("the data set does not parse: an item runs past the end of its sequence")
        values: dict[int, RawValue] = {}
        while offset < end:
            if offset + 8 > end:
                raise NotPart10Error("the data set does not parse: a truncated element header in an item")
            tag, vr, hlen, vlength = read_element_header(data, offset, explicit, unpackers)
            group, elem = tag >> 16, tag & 0xFFFF
            if hlen == 12 and offset + 12 > end:
                raise NotPart10Error("the data set does not parse: a truncated element header in an item")
            if not hlen:
                raise NotPart10Error(
                    f"the data set does not parse: no valid VR for ({group:04X},{elem:04X}) in an item"
                )
            value_at = offset + hlen
            if tag == ITEM_DELIMITATION:
                offset = value_at
                break
            if vlength == UNDEFINED_LENGTH:
                offset = _skip_undefined(reader, value_at, little_endian, explicit and vr != b"UN")
                continue
            offset = value_at + vlength
            if offset > end:
                raise NotPart10Error(
                    f"the data set does not parse: ({group:04X},{elem:04X}) runs past its item"
                )
            if tag in wanted:
                values[tag] = RawValue(
                    vr.decode("ascii") if vr else _dictionary_vr(tag),
                    data[value_at:offset],
                    False,
                    sequence.at + value_at,
                )
        yield sequence.at + item_at, values


# --- the password policy's view of the patient ----------------------------------------------------------------
def read_patient_context(paths: list[Path], *, limit: int = 100) -> tuple[str, ...]:
    """Patient names, IDs and birth dates of up to ``limit`` Part 10 files, for the password policy.

    Only the elements up to the patient's birth date are walked, straight from the bytes
    (:func:`dcmseal.part10.header.read_header`); a data set that does not walk goes to pydicom
    (``specific_tags``). Files that are not Part 10 are skipped silently: this is advice for the password
    check, not validation.
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


def _patient_values(path: Path) -> list[str] | None:
    """The patient values of a Part 10 file read from its bytes: [] when it is no Part 10 file, None when its
    data set does not walk (pydicom, more tolerant, is asked then)."""
    with open(path, "rb") as fp:
        head = fp.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES or not is_part10(head):
        return []
    try:
        header = read_header(path, _PATIENT_TAGS, stop_after=_PATIENT_TAGS[-1])
    except NotPart10Error:
        return None
    found = header.values
    return [
        found[tag].value.rstrip(b"\x00 ").decode("ascii", errors="replace") if tag in found else ""
        for tag in _PATIENT_TAGS
    ]


def _pydicom_patient_values(path: Path) -> list[str]:
    # pydicom is imported here, not at the top: it costs a third of a second, which a seal would pay for nothing.
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=list(_PATIENT_KEYWORDS))
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError, AttributeError):
        return []
    return [str(ds.get(keyword, "") or "").strip() for keyword in _PATIENT_KEYWORDS]
