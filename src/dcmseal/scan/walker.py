"""A fast walk over the File Meta group and the data set's element headers, skipping values by their length.

The walker reads what it needs and no more (PS3.5 §7.1 element encoding, §7.5 sequences, A.4 encapsulated
Pixel Data): element headers, the first bytes of the values that can hide a payload (private elements, OB/UN/OW,
group lengths, Data Set Trailing Padding), and the values the scanner asks for by tag. It handles explicit and
implicit VR little endian, explicit VR big endian, defined and undefined lengths, nested sequences, UN with
undefined length (implicit VR inside, PS3.5 §6.2.2) and deflated data sets (inflated in memory, bounded).
pydicom is not used: it costs a hundred times more per file, and it forgives what a scanner must see.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from dcmseal.part10.encoding import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    ITEM,
    ITEM_DELIMITATION,
    LONG_VRS,
    PIXEL_DATA,
    SEQUENCE_DELIMITATION,
    SHORT_VRS,
    UNDEFINED_LENGTH,
    VRS,
)
from dcmseal.scan.report import Finding, Verdict
from dcmseal.scan.signatures import QUICK_PREFIXES, Family, identify

__all__ = [
    "MAX_INFLATED_BYTES",
    "UNPARSABLE_CODES",
    "BodyResult",
    "Element",
    "walk_dataset",
]

#: Findings that say the data set does not parse to its end (cut short, nested past the bound, lengths that
#: lie): such a file is quarantined by ``open`` rather than copied into a File-set.
UNPARSABLE_CODES = frozenset({"body.malformed", "body.truncated", "body.nesting", "body.inflate-limit"})
#: A deflated data set inflating past this is not walked further (a deflate bomb is 1000:1).
MAX_INFLATED_BYTES = 256 * 1024 * 1024
#: Sequences nested deeper than this are hostile or broken; real files stay below ten.
MAX_DEPTH = 64
#: How much is read at once when the walk leaves the bytes it has.
_WINDOW_BYTES = 64 * 1024
#: How much of a value is read to test it for a signature (an MZ header needs 0x40 bytes).
_PROBE_BYTES = 64

#: Opaque binary VRs: PS3.10 §7.5 names them as places to hide content.
_OPAQUE_VRS = frozenset((b"OB", b"UN", b"OW"))

_TRAILING_PADDING = 0xFFFCFFFC

ReadAt = Callable[[int, int], bytes]
#: (explicit header, implicit header, u32) readers, by "little endian?".
_STRUCTS = {
    order == "<": (
        struct.Struct(order + "HH2sH").unpack_from,
        struct.Struct(order + "HHI").unpack_from,
        struct.Struct(order + "I").unpack_from,
    )
    for order in "<>"
}


@dataclass(frozen=True, slots=True)
class Element:
    """A data element the scanner wants gone: where it lies, and whether cutting its bytes out is safe."""

    tag: int
    start: int  # offset of its header
    end: int  # offset just past its value
    removable: bool  # top level of a data set that is not deflated: its bytes can be cut without re-encoding
    reason: str

    @property
    def label(self) -> str:
        return f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"


@dataclass(slots=True)
class BodyResult:
    """What the walk over the data set found."""

    findings: list[Finding] = field(default_factory=list)
    payloads: list[Element] = field(default_factory=list)  # hidden payload elements (sanitize removes them)
    dataset_end: int = 0  # end of the last whole top-level element (file offset; inflated for deflate)
    trailing_at: int | None = None  # file offset where data after the data set starts
    malformed: bool = False  # the data set does not parse to its end (truncated, bad header)
    deflated: bool = False
    values: dict[int, list[bytes]] = field(default_factory=dict)  # values of the tags asked for
    document: tuple[int, int] | None = None  # (offset, length) of Encapsulated Document (0042,0011)
    document_in_memory: bytes | None = None  # the same value when the data set was inflated
    trace: list[int] | None = None  # offsets of every header visited (when asked, for LayoutCache)
    inspected: list[tuple[int, int, int, bytes, int, bool]] | None = None  # the value checks made, ditto


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _window(buf: bytes, base: int, offset: int, n: int, read_at: ReadAt | None) -> bytes:
    rel = offset - base
    if rel >= 0 and rel + n <= len(buf):
        return buf[rel : rel + n]
    if read_at is None:
        return buf[max(rel, 0) : max(rel, 0) + n] if rel >= 0 else b""
    return read_at(offset, n)


def _guess_explicit(probe: bytes, declared: bool) -> bool:
    """Whether the data set that starts with ``probe`` is explicit VR (files that lie about it exist)."""
    if len(probe) < 6:
        return declared
    return probe[4:6] in VRS


def walk_dataset(
    buf: bytes,
    *,
    start: int,
    size: int,
    read_at: ReadAt | None,
    transfer_syntax: str | None,
    collect: frozenset[int] = frozenset(),
    trace: bool = False,
) -> BodyResult:
    """Walk the data set from ``start`` to ``size`` and report what hides in it.

    Parameters
    ----------
    buf
        The file's bytes from offset 0 (all of them, or a head); ``read_at`` serves the rest.
    start, size
        Where the data set begins (after the File Meta group) and the file's size.
    transfer_syntax
        From the File Meta group; decides the byte order, explicit or implicit VR, deflate.
    collect
        Tags whose values to return (all occurrences, nested ones too), e.g. (0004,1500) of a DICOMDIR.
    """
    result = BodyResult(dataset_end=start)
    if trace:
        result.trace, result.inspected = [], []
    if start >= size:
        return result
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        return _walk_deflated(buf, start=start, size=size, read_at=read_at, collect=collect)
    little = transfer_syntax != EXPLICIT_VR_BIG_ENDIAN
    declared_explicit = transfer_syntax != IMPLICIT_VR_LITTLE_ENDIAN
    probe = _window(buf, 0, start, 8, read_at)
    explicit = _guess_explicit(probe, declared_explicit) if little else True
    if explicit != declared_explicit:
        result.findings.append(
            Finding(
                "body.vr-mismatch",
                f"the data set is {'explicit' if explicit else 'implicit'} VR, the Transfer Syntax says otherwise",
                Verdict.CLEAN,
                start,
            )
        )
    _walk(result, buf, 0, start, size, read_at, little, explicit, collect, removable_top=True)
    return result


def _walk_deflated(
    buf: bytes, *, start: int, size: int, read_at: ReadAt | None, collect: frozenset[int]
) -> BodyResult:
    """Inflate a Deflated Explicit VR Little Endian data set (PS3.5 A.5) in memory, bounded, and walk it."""
    compressed = _window(buf, 0, start, size - start, read_at)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = inflater.decompress(compressed, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        result = BodyResult(dataset_end=start, malformed=True, deflated=True)
        result.findings.append(
            Finding(
                "body.malformed", f"the deflated data set does not inflate: {exc}", Verdict.SUSPICIOUS, start
            )
        )
        return result
    result = BodyResult(dataset_end=0, deflated=True)
    result.findings.append(
        Finding(
            "body.deflated",
            "deflated data set: body offsets count in the inflated bytes",
            Verdict.CLEAN,
            start,
        )
    )
    if inflater.unconsumed_tail:
        result.findings.append(
            Finding(
                "body.inflate-limit",
                f"the deflated data set inflates past {MAX_INFLATED_BYTES} bytes; the rest is not scanned",
                Verdict.SUSPICIOUS,
                start,
            )
        )
    _walk(result, data, 0, 0, len(data), None, True, True, collect, removable_top=False)
    if result.document is not None:
        at, length = result.document
        result.document_in_memory = data[at : at + length]
    result.dataset_end = size
    if inflater.eof and inflater.unused_data:
        unused = inflater.unused_data
        result.trailing_at = size - len(unused)
        result.dataset_end = result.trailing_at
        if len(unused) == 8 and int.from_bytes(unused[4:], "little") == len(data) & 0xFFFFFFFF:
            # Some writers end the raw deflate stream with a gzip trailer (CRC-32, inflated size): harmless.
            result.findings.append(
                Finding(
                    "trailing-data.deflate-trailer",
                    "a gzip trailer (CRC-32, size) after the deflated data set",
                    Verdict.CLEAN,
                    result.trailing_at,
                )
            )
        else:
            _trailing(result, buf, result.trailing_at, size, read_at)
    return result


def _trailing(result: BodyResult, buf: bytes, at: int, size: int, read_at: ReadAt | None) -> None:
    count = size - at
    head = _window(buf, 0, at, min(count, 4096), read_at)
    signature = identify(head, read_at=read_at, base=at, text=True)
    if signature is not None and signature.name != "mz":
        severity = Verdict.SUSPICIOUS if signature.family is Family.CONFIG else Verdict.MALICIOUS
        result.findings.append(
            Finding(
                "trailing-data",
                f"{count} bytes after the end of the data set, starting with a {signature.description}",
                severity,
                at,
            )
        )
        return
    if count <= 65536 and not any(_window(buf, 0, at, count, read_at)):
        result.findings.append(
            Finding(
                "trailing-data.zeros", f"{count} zero bytes after the end of the data set", Verdict.CLEAN, at
            )
        )
        return
    result.findings.append(
        Finding("trailing-data", f"{count} bytes after the end of the data set", Verdict.SUSPICIOUS, at)
    )


def _walk(
    result: BodyResult,
    buf: bytes,
    base: int,
    start: int,
    size: int,
    read_at: ReadAt | None,
    little: bool,
    explicit: bool,
    collect: frozenset[int],
    *,
    removable_top: bool,
) -> None:
    """The element loop. Frames are (kind, end, previous tag, explicit); the data set is frame 0."""
    hdr_explicit, hdr_implicit, u32 = _STRUCTS[little]
    findings = result.findings
    # frames: [kind, end, prev_tag, explicit]; kind 0 = data set or item, 1 = sequence, 2 = encapsulated
    # A frame: [kind (0 data set or item, 1 sequence, 2 encapsulated pixel data), end, previous tag, explicit VR,
    # undefined length (ends only at its delimiter: reaching ``end`` first means the delimiter is missing)].
    frames: list[list[int]] = [[0, size, -1, int(explicit), 0]]
    fast = little and not collect
    short_vrs = SHORT_VRS
    trace_list = result.trace
    record = trace_list.append if trace_list is not None else None
    inspected = result.inspected
    kind, fend, prev, expl = 0, size, -1, explicit
    offset = start
    blen = len(buf)
    order_reported = False
    lengths_reported = 0
    while True:
        # Leave every frame that ends here (defined-length items and sequences end by length).
        while offset >= fend and len(frames) > 1:
            if frames[-1][4]:
                # An undefined-length item or sequence ends only at its delimiter, never by running out.
                findings.append(
                    Finding(
                        "body.malformed",
                        "the file ends inside a sequence"
                        if fend >= size
                        else "an item or sequence of undefined length runs past the end of its container",
                        Verdict.SUSPICIOUS,
                        min(offset, fend),
                    )
                )
                result.malformed = True
                return
            if offset > fend:
                findings.append(
                    Finding(
                        "body.malformed",
                        f"an element runs past the end of its sequence or item at offset {fend}",
                        Verdict.SUSPICIOUS,
                        fend,
                    )
                )
                result.malformed = True
                return
            frames.pop()
            kind, fend, prev, expl = frames[-1][0], frames[-1][1], frames[-1][2], bool(frames[-1][3])
        if offset >= size:
            if len(frames) > 1:
                findings.append(
                    Finding("body.malformed", "the file ends inside a sequence", Verdict.SUSPICIOUS, offset)
                )
                result.malformed = True
            result.dataset_end = size
            return
        rel = offset - base
        if fast and kind == 0 and expl and rel >= 0:
            # The common case, kept tight: ordinary short-VR elements of a little endian explicit VR data
            # set, in ascending order, inside the bytes at hand. Anything else drops to the full loop below.
            start_rel = rel
            last_header = blen - 12
            last_value = fend - base - 8
            while rel <= last_header:
                group, elem, vr, length = hdr_explicit(buf, rel)
                if vr not in short_vrs or group & 1 or not elem or group == 0x0042:
                    break
                tag = (group << 16) | elem
                if tag <= prev or rel + length > last_value:
                    break
                if record is not None:
                    record(base + rel)
                prev = tag
                rel += 8 + length
            if rel != start_rel:
                offset = base + rel
                if len(frames) == 1:
                    result.dataset_end = offset
                continue
        if (rel < 0 or rel + 12 > blen) and read_at is not None:
            buf, base = read_at(offset, _WINDOW_BYTES), offset
            blen, rel = len(buf), 0
        if rel + 8 > blen:
            _bad_header(
                result, buf, base, offset, size, read_at, len(frames) == 1, "a truncated element header"
            )
            return
        if record is not None:
            record(offset)
        if expl:
            group, elem, vr, length = hdr_explicit(buf, rel)
            tag = (group << 16) | elem
            if group == 0xFFFE:
                length = u32(buf, rel + 4)[0]
                hlen = 8
                vr = b""
            elif vr in LONG_VRS:
                if rel + 12 > blen:
                    _bad_header(
                        result,
                        buf,
                        base,
                        offset,
                        size,
                        read_at,
                        len(frames) == 1,
                        "a truncated element header",
                    )
                    return
                length = u32(buf, rel + 8)[0]
                hlen = 12
            elif vr in VRS:
                hlen = 8
            else:
                _bad_header(
                    result,
                    buf,
                    base,
                    offset,
                    size,
                    read_at,
                    len(frames) == 1,
                    f"no valid VR at {_tag_text(tag)}",
                )
                return
        else:
            group, elem, length = hdr_implicit(buf, rel)
            tag = (group << 16) | elem
            hlen = 8
            vr = b""
        value_at = offset + hlen
        # --- delimiters and items (PS3.5 §7.5) ---
        if group == 0xFFFE:
            if tag == ITEM:
                if kind == 2:  # an encapsulated fragment: skip by length
                    if length == UNDEFINED_LENGTH or value_at + length > fend:
                        findings.append(
                            Finding(
                                "body.malformed",
                                "an encapsulated Pixel Data fragment runs past its end",
                                Verdict.SUSPICIOUS,
                                offset,
                            )
                        )
                        result.malformed = True
                        return
                    offset = value_at + length
                    continue
                if kind != 1:
                    _bad_header(
                        result,
                        buf,
                        base,
                        offset,
                        size,
                        read_at,
                        len(frames) == 1,
                        "an item outside a sequence",
                    )
                    return
                if len(frames) >= MAX_DEPTH:
                    findings.append(
                        Finding(
                            "body.nesting",
                            f"sequences nested deeper than {MAX_DEPTH} levels",
                            Verdict.SUSPICIOUS,
                            offset,
                        )
                    )
                    result.malformed = True
                    return
                end = fend if length == UNDEFINED_LENGTH else value_at + length
                if end > fend:
                    findings.append(
                        Finding(
                            "body.malformed",
                            "an item runs past the end of its sequence",
                            Verdict.SUSPICIOUS,
                            offset,
                        )
                    )
                    result.malformed = True
                    return
                frames[-1][2] = prev
                frames.append([0, end, -1, int(expl), int(length == UNDEFINED_LENGTH)])
                kind, fend, prev = 0, end, -1
                offset = value_at
                continue
            if tag == ITEM_DELIMITATION and kind == 0 and len(frames) > 1:
                frames.pop()
                kind, fend, prev, expl = frames[-1][0], frames[-1][1], frames[-1][2], bool(frames[-1][3])
                offset = value_at
                continue
            if tag == SEQUENCE_DELIMITATION and kind in (1, 2):
                frames.pop()
                kind, fend, prev, expl = frames[-1][0], frames[-1][1], frames[-1][2], bool(frames[-1][3])
                offset = value_at
                continue
            _bad_header(
                result,
                buf,
                base,
                offset,
                size,
                read_at,
                len(frames) == 1,
                f"an unexpected delimiter {_tag_text(tag)}",
            )
            return
        if kind != 0:
            _bad_header(
                result,
                buf,
                base,
                offset,
                size,
                read_at,
                len(frames) == 1,
                f"{_tag_text(tag)} where a sequence item was expected",
            )
            return
        # --- ordinary elements ---
        if tag <= prev:
            top = len(frames) == 1
            if top and _looks_foreign(buf, base, offset, read_at):
                _trailing_at(result, buf, base, offset, size, read_at)
                return
            if not order_reported:
                order_reported = True
                findings.append(
                    Finding(
                        "body.tag-order",
                        f"{_tag_text(tag)} follows {_tag_text(prev)}: tags out of ascending order",
                        Verdict.SUSPICIOUS,
                        offset,
                    )
                )
        prev = tag
        top = len(frames) == 1
        if length == UNDEFINED_LENGTH:
            if len(frames) >= MAX_DEPTH:
                findings.append(
                    Finding(
                        "body.nesting",
                        f"sequences nested deeper than {MAX_DEPTH} levels",
                        Verdict.SUSPICIOUS,
                        offset,
                    )
                )
                result.malformed = True
                return
            frames[-1][2] = prev
            if tag == PIXEL_DATA and (not expl or vr in (b"OB", b"OW")):
                frames.append([2, fend, -1, int(expl), 1])  # encapsulated: items up to the sequence delimiter
                kind = 2
            else:
                # SQ, or UN of undefined length whose content is implicit VR little endian (PS3.5 §6.2.2).
                inner_explicit = expl and vr != b"UN"
                frames.append([1, fend, -1, int(inner_explicit), 1])
                kind, expl = 1, inner_explicit
            prev = -1
            offset = value_at
            continue
        end = value_at + length
        if end > fend:
            if top and (tag < 0x00080000 or _looks_foreign(buf, base, offset, read_at)):
                _trailing_at(result, buf, base, offset, size, read_at)
                return
            if lengths_reported == 0:
                findings.append(
                    Finding(
                        "body.truncated",
                        f"{_tag_text(tag)} announces {length} bytes, {fend - value_at} remain",
                        Verdict.SUSPICIOUS,
                        offset,
                    )
                )
            result.malformed = True
            if top:
                result.dataset_end = offset
            return
        if vr == b"SQ":
            # A defined-length sequence: walk into it (its items may hold private payloads).
            if len(frames) >= MAX_DEPTH:
                findings.append(
                    Finding(
                        "body.nesting",
                        f"sequences nested deeper than {MAX_DEPTH} levels",
                        Verdict.SUSPICIOUS,
                        offset,
                    )
                )
                result.malformed = True
                return
            frames[-1][2] = prev
            frames.append([1, end, -1, int(expl), 0])
            kind, fend, prev = 1, end, -1
            offset = value_at
            continue
        if (
            elem == 0
            or group & 1
            or vr in _OPAQUE_VRS
            or tag in (PIXEL_DATA, _TRAILING_PADDING)
            or tag in collect
            or group == 0x0042
        ):
            _inspect(
                result, buf, base, offset, value_at, tag, vr, length, read_at, top and removable_top, collect
            )
            if inspected is not None:
                inspected.append((offset, value_at, tag, vr, length, top and removable_top))
        offset = end
        if top:
            result.dataset_end = offset


def _looks_foreign(buf: bytes, base: int, offset: int, read_at: ReadAt | None) -> bool:
    """Whether the bytes at ``offset`` start with a known non-DICOM signature (data appended to the file)."""
    probe = _window(buf, base, offset, _PROBE_BYTES, read_at)
    signature = identify(probe, read_at=read_at, base=offset, text=True)
    return signature is not None and signature.name != "mz"


def _trailing_at(
    result: BodyResult, buf: bytes, base: int, offset: int, size: int, read_at: ReadAt | None
) -> None:
    result.trailing_at = offset
    result.dataset_end = offset
    if base == 0:
        _trailing(result, buf, offset, size, read_at)
    else:
        _trailing(result, b"", offset, size, read_at)


def _bad_header(
    result: BodyResult,
    buf: bytes,
    base: int,
    offset: int,
    size: int,
    read_at: ReadAt | None,
    top: bool,
    what: str,
) -> None:
    """An element header that does not parse: data after the data set at the top level, else malformed."""
    if top and offset > 0:
        _trailing_at(result, buf, base, offset, size, read_at)
        return
    result.findings.append(
        Finding("body.malformed", f"the data set does not parse: {what}", Verdict.SUSPICIOUS, offset)
    )
    result.malformed = True


def _inspect(
    result: BodyResult,
    buf: bytes,
    base: int,
    offset: int,
    value_at: int,
    tag: int,
    vr: bytes,
    length: int,
    read_at: ReadAt | None,
    removable: bool,
    collect: frozenset[int],
) -> None:
    """The slow path: group lengths, values that may hide a payload, values the caller wants."""
    group, elem = tag >> 16, tag & 0xFFFF
    end = value_at + length
    if tag in collect:
        result.values.setdefault(tag, []).append(_window(buf, base, value_at, length, read_at))
    if group == 0x0042:
        if elem == 0x0011:
            result.document = (value_at, length)
        elif elem in (0x0012, 0x0015) and length <= 256:
            result.values.setdefault(tag, []).append(_window(buf, base, value_at, length, read_at))
        if elem != 0x0011 and elem != 0:
            return
    # (gggg,0000) Group Length is UL, 4 bytes (PS3.5 §7.2); the PE/DICOM polyglot hides in one.
    if elem == 0 and group != 0xFFFC and (vr not in (b"", b"UL") or length != 4):
        what = f"VR {vr.decode('latin-1')}" if vr not in (b"", b"UL") else f"a {length}-byte value"
        result.findings.append(
            Finding(
                "body.group-length-vr" if vr not in (b"", b"UL") else "body.group-length-size",
                f"Group Length {_tag_text(tag)} with {what} ({length} bytes): a place to hide a payload",
                Verdict.SUSPICIOUS,
                offset,
            )
        )
        result.payloads.append(Element(tag, offset, end, removable, f"Group Length with {what}"))
    if length < 4:
        return
    probe = _window(buf, base, value_at, _PROBE_BYTES, read_at)
    if probe[:2] not in QUICK_PREFIXES:
        return
    signature = identify(probe, read_at=read_at, base=value_at, text=False)
    if signature is None or signature.name == "mz":
        return
    private = bool(group & 1)
    if signature.family is Family.SCRIPT and not private:
        return  # "#!/" is three bytes: as the start of pixel values it happens, in a private value it does not
    if signature.family is Family.DOCUMENT:
        if tag != 0x00420011:
            result.findings.append(
                Finding(
                    "body.document",
                    f"{_tag_text(tag)} holds a {signature.description}",
                    Verdict.CLEAN,
                    value_at,
                )
            )
        return
    executable = signature.family in (Family.EXECUTABLE, Family.SCRIPT)
    result.findings.append(
        Finding(
            "body.executable" if executable else "body.archive",
            f"{_tag_text(tag)} ({'private, ' if private else ''}{vr.decode('latin-1') or 'implicit VR'}, {length} bytes) holds a {signature.description}",
            Verdict.MALICIOUS if executable else Verdict.SUSPICIOUS,
            value_at,
        )
    )
    already = bool(result.payloads) and result.payloads[-1].start == offset
    if (private or elem == 0 or tag == _TRAILING_PADDING) and not already:
        result.payloads.append(Element(tag, offset, end, removable, signature.description))
