"""The PS3.5 encoding facts that every byte-level reader of a data set shares, written once.

Element headers (PS3.5 §7.1), the delimitation items of sequences (§7.5) and the transfer syntax UIDs
(Annex A). The File Meta group, the walkers of :mod:`dcmseal.part10.header` and :mod:`dcmseal.scan`, the
detection of bare data sets (:mod:`dcmseal.reader.detect`) and the DICOMDIR writer all import them from here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN",
    "EXPLICIT_VR_BIG_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "HEADER_UNPACKERS",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "ITEM",
    "ITEM_DELIMITATION",
    "LONG_VRS",
    "PIXEL_DATA",
    "SEQUENCE_DELIMITATION",
    "SHORT_VRS",
    "UNDEFINED_LENGTH",
    "VRS",
    "ElementHeader",
    "is_explicit_vr",
    "read_element_header",
]

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"

#: A length of FFFFFFFFH: the value runs to its delimitation item (PS3.5 §7.1.2, §7.5).
UNDEFINED_LENGTH = 0xFFFFFFFF
#: (FFFE,E000) Item, (FFFE,E00D) Item Delimitation Item, (FFFE,E0DD) Sequence Delimitation Item (PS3.5 §7.5).
ITEM = 0xFFFEE000
ITEM_DELIMITATION = 0xFFFEE00D
SEQUENCE_DELIMITATION = 0xFFFEE0DD
#: (7FE0,0010) Pixel Data: native, or encapsulated in items of undefined length (PS3.5 A.4).
PIXEL_DATA = 0x7FE00010

#: Every VR of PS3.5 §6.2, as the two bytes of an explicit VR header.
VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
#: Explicit VR with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
#: Explicit VR with a 2-byte length (PS3.5 Table 7.1-2).
SHORT_VRS = VRS - LONG_VRS

_Unpack = Callable[[bytes, int], tuple[Any, ...]]
#: Element header readers by byte order (True: little endian): an explicit VR header (group, element, VR,
#: 2-byte length), an implicit VR header (group, element, 4-byte length), and a 4-byte length alone.
HEADER_UNPACKERS: dict[bool, tuple[_Unpack, _Unpack, _Unpack]] = {
    order == "<": (
        struct.Struct(order + "HH2sH").unpack_from,
        struct.Struct(order + "HHI").unpack_from,
        struct.Struct(order + "I").unpack_from,
    )
    for order in "<>"
}


def is_explicit_vr(probe: bytes, declared: bool) -> bool:
    """Whether the little endian data set starting with ``probe`` (its first 6 bytes) is explicit VR: the first
    header holds a VR where implicit VR has the high half of a length. Files that lie about it exist, in both
    directions (pydicom guesses too); with fewer than 6 bytes the transfer syntax's word (``declared``) stands."""
    if len(probe) < 6:
        return declared
    return probe[4:6] in VRS


#: What :func:`read_element_header` says of a header: tag, VR, header length, value length.
ElementHeader = tuple[int, bytes, int, int]


def read_element_header(
    buf: bytes, at: int, explicit: bool, unpackers: tuple[_Unpack, _Unpack, _Unpack]
) -> ElementHeader:
    """The element header at ``buf[at:]`` (8 bytes there at least), PS3.5 §7.1 and §7.5, read with
    ``unpackers`` (:data:`HEADER_UNPACKERS` of the data set's byte order).

    Items and delimiters (group FFFE) and implicit VR elements have no VR (``b""``) and an 8-byte header;
    an explicit VR has 8 bytes, or 12 for the long form (value length -1 when ``buf`` ends inside those 12).
    A VR PS3.5 does not define gives a header length of 0: the caller says what that means.
    """
    hdr_explicit, hdr_implicit, u32 = unpackers
    if not explicit:
        group, element, length = hdr_implicit(buf, at)
        return (group << 16) | element, b"", 8, length
    group, element, vr, length = hdr_explicit(buf, at)
    tag = (group << 16) | element
    if group == 0xFFFE:
        return tag, b"", 8, u32(buf, at + 4)[0]
    if vr in LONG_VRS:
        return (tag, vr, 12, -1) if at + 12 > len(buf) else (tag, vr, 12, u32(buf, at + 8)[0])
    return tag, vr, 8 if vr in VRS else 0, length
