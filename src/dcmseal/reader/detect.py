"""What a file of a medium is, by its first bytes: Part 10, Secure DICOM (CMS), a bare data set, or not DICOM.

Names and DICOMDIRs lie; content does not. A PS3.10 file has ``DICM`` at offset 128 (PS3.10 §7.1); a Secure
DICOM File is a bare CMS ContentInfo (standards.md §1.3). Old discs also carry data sets with no File Meta
Information at all (no preamble, no ``DICM``, no group 0002): their encoding is found from the first elements,
as DCMTK's dcmdata and pydicom's ``dcmread(force=True)`` do: the first tag is a plausible low group, the next
two bytes are a VR (explicit) or the low half of a length (implicit), the byte order is the one in which the
tags come out small and ascending.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from dcmseal.part10.encoding import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    HEADER_UNPACKERS,
    IMPLICIT_VR_LITTLE_ENDIAN,
    LONG_VRS,
    UNDEFINED_LENGTH,
    VRS,
)
from dcmseal.part10.fileformat import HEADER_BYTES, is_part10
from dcmseal.part10.secure import is_secure_head

__all__ = [
    "EXPLICIT_VR_BIG_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "MANIFEST_NAME",
    "SNIFF_BYTES",
    "Sniffed",
    "dataset_after_meta",
    "detect_dataset_encoding",
    "sniff",
]

#: The manifest of a folder output: what dcmseal wrote there (hidden; ``open`` and ``rekey`` skip hidden files).
MANIFEST_NAME = ".dcmseal-manifest.json"

#: How many bytes :func:`sniff` wants (fewer is fine for short files): the preamble, DICM and a few elements.
SNIFF_BYTES = 4096

#: A bare data set starts with a standard group below Pixel Data; in practice 0008 (SOP Common, General
#: Study), rarely 0000 (command group length, DICOM 2 era), 0002 (a stray meta group), 0010 or 0018.
_FIRST_GROUPS = frozenset({0x0000, 0x0002, 0x0004, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028})
#: Elements checked before a guess is believed (or all the head holds, if fewer).
_ELEMENTS_TO_CHECK = 6


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a file is: ``part10``, ``secure``, ``dataset`` (no File Meta; see ``transfer_syntax``), ``other``."""

    kind: Literal["part10", "secure", "dataset", "other"]
    #: For ``dataset``: the encoding its first elements show (Implicit VR LE, Explicit VR LE or BE).
    transfer_syntax: str | None = None

    @property
    def is_dicom(self) -> bool:
        return self.kind != "other"


def sniff(head: bytes, size: int | None = None) -> Sniffed:
    """Classify a file from its first bytes (:data:`SNIFF_BYTES` of them, or the whole file if shorter).

    ``size`` is the file's size when known (a bare data set's element lengths must fit in it).
    """
    if is_part10(head):
        return Sniffed("part10")
    if is_secure_head(head):
        return Sniffed("secure")
    encoding = detect_dataset_encoding(head, size if size is not None else len(head))
    if encoding is not None:
        return Sniffed("dataset", encoding)
    return Sniffed("other")


def detect_dataset_encoding(head: bytes, size: int) -> str | None:
    """The transfer syntax of a data set with no File Meta Information, or None if ``head`` is not one.

    Explicit VR is tried first (two VR letters are a strong sign), then Implicit VR Little Endian; big endian
    only with explicit VR (PS3.5 Annex A: there is no implicit big endian transfer syntax).
    """
    for explicit, little, uid in (
        (True, True, EXPLICIT_VR_LITTLE_ENDIAN),
        (False, True, IMPLICIT_VR_LITTLE_ENDIAN),
        (True, False, EXPLICIT_VR_BIG_ENDIAN),
    ):
        if _plausible(head, size, explicit=explicit, little=little):
            return uid
    return None


def _plausible(head: bytes, size: int, *, explicit: bool, little: bool) -> bool:
    """Whether ``head`` reads as ascending elements of a data set in this encoding."""
    hdr_explicit, hdr_implicit, u32 = HEADER_UNPACKERS[little]
    offset = 0
    previous = -1
    checked = 0
    while checked < _ELEMENTS_TO_CHECK and offset + 8 <= len(head):
        if explicit:
            group, element, vr, length = hdr_explicit(head, offset)
        else:
            group, element, length = hdr_implicit(head, offset)
        tag = group << 16 | element
        if checked == 0 and group not in _FIRST_GROUPS:
            return False
        if tag <= previous or group == 0xFFFE:  # items and delimiters never start a data set's element
            return False
        header = 8
        if explicit:
            if vr not in VRS:
                return False
            if vr in LONG_VRS:
                if offset + 12 > len(head):
                    break
                if length != 0:  # the two reserved bytes (PS3.5 §7.1.2)
                    return False
                (length,) = u32(head, offset + 8)
                header = 12
        elif head[offset + 4 : offset + 6] in VRS and head[offset + 6 : offset + 8] != b"\0\0":
            # VR letters where a length's low half should be: explicit data misread as implicit
            return False
        checked += 1
        if length == UNDEFINED_LENGTH:
            break  # a sequence of undefined length: the walk would need to parse items; enough seen
        if offset + header + length > size:
            return False
        previous = tag
        offset += header + length
    return checked >= 2 or (checked == 1 and offset >= size)


#: The File Meta group of a real file is a few hundred bytes; a walk past this is not one.
_MAX_META_BYTES = 64 * 1024


def dataset_after_meta(head: bytes, size: int) -> tuple[int, str] | None:
    """Where the data set of a file with ``DICM`` but a broken or missing File Meta group starts, and its encoding.

    foreign-media.md: "some files have a preamble and DICM but a broken or missing group 0002". The group 0002
    elements present are stepped over as PS3.10 §7.1 encodes them (explicit VR little endian), then the data set
    is recognised as a bare one is (:func:`detect_dataset_encoding`). None when no data set is found there.
    """
    offset = HEADER_BYTES
    while offset + 8 <= min(len(head), _MAX_META_BYTES):
        group, _element = struct.unpack_from("<HH", head, offset)
        if group != 0x0002:
            break
        vr = head[offset + 4 : offset + 6]
        if vr in LONG_VRS:
            if offset + 12 > len(head):
                return None
            (length,) = struct.unpack_from("<I", head, offset + 8)
            offset += 12 + length
        elif vr in VRS:
            (length,) = struct.unpack_from("<H", head, offset + 6)
            offset += 8 + length
        else:  # an implicit VR meta group (a known writer bug): 4-byte length
            (length,) = struct.unpack_from("<I", head, offset + 4)
            offset += 8 + length
        if length == UNDEFINED_LENGTH:
            return None
    encoding = detect_dataset_encoding(head[offset:], size - offset)
    return (offset, encoding) if encoding is not None else None
