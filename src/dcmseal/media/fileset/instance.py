"""What planning knows of one instance: its raw header keys, read as pydicom would, plus the values it supplied."""

from __future__ import annotations

import copy
import re
import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException
from pydicom.tag import BaseTag

from dcmseal.errors import InputError
from dcmseal.media.dicomdir import (
    LONG_VRS,
    encode_element,
    encode_text,
    encode_with_pydicom,
)
from dcmseal.media.fileset.keys import KEYS
from dcmseal.part10.header import Header, RawValue

__all__ = ["PYDICOM_VALUE_ERRORS", "Instance"]

# Values whose raw bytes are what pydicom would write back after reading them ("canonical"): copied as they
# are. Anything else (another character set, unusual padding or spacing, big endian numbers, sequences) goes
# through pydicom's decoder and element writer, so the record holds what pydicom's FileSet would have put there.
_ASCII_TEXT = rb"[\x21-\x5b\x5d-\x7e](?:[\x20-\x5b\x5d-\x7e]*[\x21-\x5b\x5d-\x7e])?"
_PN_TEXT = rb"[\x21-\x3c\x3e-\x5b\x5d-\x7e](?:[\x20-\x3c\x3e-\x5b\x5d-\x7e]*[\x21-\x3c\x3e-\x5b\x5d-\x7e])?"
_CANONICAL = {
    "UI": re.compile(rb"[0-9.]+(?:\\[0-9.]+)*"),
    "IS": re.compile(rb"[+-]?[0-9]+(?:\\[+-]?[0-9]+)*"),
    "DS": re.compile(rb"[0-9+\-.eE]+(?:\\[0-9+\-.eE]+)*"),
    "DA": re.compile(rb"[0-9]+(?:\\[0-9]+)*"),
    "TM": re.compile(rb"[0-9.]+(?:\\[0-9.]+)*"),
    "DT": re.compile(rb"[0-9.+\-]+(?:\\[0-9.+\-]+)*"),
    **{
        vr: re.compile(_ASCII_TEXT + rb"(?:\\" + _ASCII_TEXT + rb")*")
        for vr in ("AE", "AS", "CS", "SH", "LO")
    },
    # Person names without component groups: pydicom drops empty trailing "=" groups when it writes them back.
    "PN": re.compile(_PN_TEXT + rb"(?:\\" + _PN_TEXT + rb")*"),
    **{vr: re.compile(rb"[\x20-\x7e\r\n\t]*[\x21-\x7e\r\n\t]") for vr in ("ST", "LT", "UT", "UR", "UC")},
}
#: Fixed-size binary values: the same bytes in little endian whichever way they were read.
_BINARY_VRS = frozenset(
    {"US", "UL", "SS", "SL", "FL", "FD", "AT", "SV", "UV", "OB", "OW", "OD", "OF", "OL", "OV"}
)
_NUMBER_TEXT_VRS = frozenset({"IS", "DS"})


def _canonical_text(vr: str, raw: bytes) -> bytes | None:
    """The value of a text element without its padding, if pydicom would write ``raw`` back unchanged."""
    if len(raw) & 1:
        return None
    pad = b"\x00" if vr == "UI" else b" "
    value = raw[:-1] if raw[-1:] == pad else raw
    pattern = _CANONICAL.get(vr)
    if pattern is None or not pattern.fullmatch(value):
        return None
    return value


# What pydicom raises for values it cannot decode or encode (hostile or broken input).
PYDICOM_VALUE_ERRORS = (
    ValueError,
    KeyError,
    EOFError,
    NotImplementedError,
    TypeError,
    struct.error,
    BytesLengthException,
)


class Instance:
    """What planning knows of one instance: its raw header, plus what planning supplied (never written back)."""

    __slots__ = ("_scratch", "encodings", "header", "removed", "supplied")

    def __init__(self, header: Header) -> None:
        self.header = header
        self.supplied: dict[str, str] = {}
        self.removed: set[str] = set()
        self._scratch: Dataset | None = None
        charset = header.values.get(KEYS["SpecificCharacterSet"][0])
        self.encodings: list[str] | None = None
        if charset is not None and charset.value.strip(b" \x00"):
            self.encodings = [part.strip().decode("ascii", "replace") for part in charset.value.split(b"\\")]

    def _raw(self, keyword: str) -> RawValue | None:
        if keyword in self.removed:
            return None
        return self.header.values.get(KEYS[keyword][0])

    def has(self, keyword: str) -> bool:
        """``keyword in ds``."""
        return keyword in self.supplied or self._raw(keyword) is not None

    def is_empty(self, keyword: str) -> bool:
        """Whether the element holds no value (VM 0, as pydicom's record creators test it)."""
        if keyword in self.supplied:
            return not self.supplied[keyword]
        raw = self._raw(keyword)
        if raw is None:
            return True
        if raw.vr in _BINARY_VRS or raw.vr == "SQ":
            return not raw.value
        return not raw.value.strip(b" \x00")

    def set(self, keyword: str, value: str) -> None:
        """Give ``keyword`` a value in our in-memory view (the file is not touched)."""
        self.supplied[keyword] = value

    def text(self, keyword: str) -> str:
        """``str(ds.get(keyword, "") or "")``: the value as text, "" when absent, empty or zero."""
        if keyword in self.supplied:
            return self.supplied[keyword]
        raw = self._raw(keyword)
        if raw is None or not raw.value:
            return ""
        vr = KEYS[keyword][1]
        if raw.vr == vr and vr in _CANONICAL:
            value = _canonical_text(vr, raw.value)
            if value is not None and b"\\" not in value:
                if vr in _NUMBER_TEXT_VRS and float(value) == 0:
                    return ""
                return value.decode("ascii")
        found = self.value(keyword)
        return str(found or "")

    def text_or_empty(self, keyword: str) -> str:
        """:meth:`text`, or "" when the value does not decode (for what only informs: notes, counts, the plan)."""
        try:
            return self.text(keyword)
        except InputError:
            return ""

    def value(self, keyword: str) -> object:
        """The value as pydicom decodes it (the slow path: sequences, other character sets, odd encodings)."""
        raw = self._raw(keyword)
        if raw is None:
            return self.supplied.get(keyword)
        if self._scratch is None:
            self._scratch = Dataset()
            charset = self._raw("SpecificCharacterSet")
            if charset is not None:
                self._scratch[0x00080005] = self._raw_element(0x00080005, charset)
        tag = KEYS[keyword][0]
        self._scratch[tag] = self._raw_element(tag, raw)
        try:
            return self._scratch[tag].value
        except PYDICOM_VALUE_ERRORS as exc:
            raise InputError(
                f"cannot build its DICOMDIR records: {keyword} does not decode: {exc}", path=self.header.path
            ) from exc

    def _raw_element(self, tag: int, raw: RawValue) -> RawDataElement:
        implicit = self.header.implicit_vr
        return RawDataElement(
            BaseTag(tag),
            None if implicit else raw.vr,
            len(raw.value),
            raw.value,
            0,
            implicit,
            self.header.little_endian,
        )

    def element(self, keyword: str) -> bytes:
        """``keyword`` as a record element (dictionary VR, as ``record.Keyword = ds.Keyword`` makes it)."""
        tag, vr = KEYS[keyword]
        if keyword in self.supplied:
            return encode_text(tag, vr, self.supplied[keyword], self.encodings)
        raw = self._raw(keyword)
        if raw is None or not raw.value:
            return encode_element(tag, vr, b"")
        if raw.vr == vr:
            if vr in _BINARY_VRS:
                if self.header.little_endian and (vr in LONG_VRS or len(raw.value) <= 0xFFFF):
                    return encode_element(tag, vr, raw.value)
            elif _canonical_text(vr, raw.value) is not None:
                return encode_element(tag, vr, raw.value)
        return self.pydicom_element(tag, vr, self.value(keyword))

    def pydicom_element(self, tag: int, vr: str, value: object) -> bytes:
        """A record element holding a pydicom value, encoded as pydicom's writer does."""
        try:
            return encode_with_pydicom(DataElement(tag, vr, copy.deepcopy(value)), self.encodings)
        except PYDICOM_VALUE_ERRORS as exc:
            raise InputError(
                f"cannot build its DICOMDIR records: ({tag >> 16:04X},{tag & 0xFFFF:04X}) does not encode: {exc}",
                path=self.header.path,
            ) from exc
