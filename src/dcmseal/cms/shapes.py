"""Which ASN.1 encodings were parsed in full, by shape: the files of a set pay the full parse once."""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import TypeVar

from asn1crypto import core

from dcmseal.cms.asn1 import load
from dcmseal.cms.der import TAG_OCTET_STRING

__all__ = ["ShapeCache"]

_T = TypeVar("_T", bound=core.Asn1Value)


def _octet_strings_blanked(data: bytes) -> bytes | None:
    """``data`` (DER) with the contents of every primitive OCTET STRING zeroed; None if not plain DER.

    All the files of a set carry RecipientInfos that differ only in OCTET STRINGs (each file's
    wrapped key, its key-wrap IV), so this is the same for all of them.
    """
    out = bytearray(data)
    stack = [(0, len(data))]
    while stack:
        pos, end = stack.pop()
        while pos < end:
            if pos + 2 > end:
                return None
            tag, first = data[pos], data[pos + 1]
            if tag & 0x1F == 0x1F or first == 0x80:
                return None  # high tag numbers, indefinite lengths: leave to the full parser
            if first < 0x80:
                start, length = pos + 2, first
            else:
                count = first & 0x7F
                if count > 4 or pos + 2 + count > end:
                    return None
                start, length = pos + 2 + count, int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
            if start + length > end:
                return None
            if tag & 0x20:
                stack.append((start, start + length))
            elif tag == TAG_OCTET_STRING:
                out[start : start + length] = bytes(length)
            pos = start + length
    return bytes(out)


class ShapeCache:
    """The shapes of the encodings parsed in full so far, per ASN.1 type (at most ``max_entries``).

    The full parse (every nested value, so errors surface before any key is tried) costs about
    0.3 ms per file in asn1crypto. Two encodings equal but for the contents of primitive OCTET
    STRINGs parse alike (asn1crypto never interprets those bytes), and the files of a set differ
    only there (each file's wrapped key and IVs): the first file pays the full parse, the others
    load lazily. A shape holds no secret: the salts, IVs and wrapped keys are the blanked parts.
    ``full_parses`` counts the full parses by what was parsed ("recipientInfos", ...).
    """

    def __init__(self, *, max_entries: int = 64) -> None:
        self._shapes: OrderedDict[tuple[type, bytes], None] = OrderedDict()
        self._max_entries = max_entries
        self.full_parses: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"ShapeCache(shapes={len(self._shapes)}, full_parses={sum(self.full_parses.values())})"

    def load(self, spec: type[_T], raw: bytes, what: str, *, reuse: bool = True) -> _T:
        """Parse ``raw`` as ``spec`` completely, or lazily when its shape was parsed completely before
        (never with ``reuse`` false: then every parse is full)."""
        blanked = _octet_strings_blanked(raw) if reuse else None
        shape = (spec, blanked) if blanked is not None else None
        if shape is not None and shape in self._shapes:
            lazy: _T = spec.load(raw)
            return lazy
        value = load(spec, raw, what)
        self.full_parses[what] += 1
        if shape is not None:
            self._shapes[shape] = None
            while len(self._shapes) > self._max_entries:
                self._shapes.popitem(last=False)
        return value
