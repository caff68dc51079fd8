"""A fast walk over the File Meta group and the data set's element headers, skipping values by their length.

The walker reads what it needs and no more (PS3.5 §7.1 element encoding, §7.5 sequences, A.4 encapsulated
Pixel Data): element headers, the first bytes of the values that can hide a payload (private elements, OB/UN/OW,
group lengths, Data Set Trailing Padding), and the values the scanner asks for by tag. It handles explicit and
implicit VR little endian, explicit VR big endian, defined and undefined lengths, nested sequences, UN with
undefined length (implicit VR inside, PS3.5 §6.2.2) and deflated data sets (inflated in memory, bounded).
pydicom is not used: it costs a hundred times more per file, and it forgives what a scanner must see.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

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
    explicit = is_explicit_vr(probe, declared_explicit) if little else True
    if explicit != declared_explicit:
        result.findings.append(
            Finding(
                "body.vr-mismatch",
                f"the data set is {'explicit' if explicit else 'implicit'} VR, the Transfer Syntax says otherwise",
                Verdict.CLEAN,
                start,
            )
        )
    _Walk(result, buf, 0, start, size, read_at, little, explicit, collect, removable_top=True).run()
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
    _Walk(result, data, 0, 0, len(data), None, True, True, collect, removable_top=False).run()
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


class _Walk:
    """One walk of a data set: the frames it is in, where it is, and the stages each element goes through.

    A frame is ``[kind, end, previous tag, explicit VR, undefined length]``: kind 0 is the data set or an
    item, 1 a sequence, 2 encapsulated Pixel Data; an undefined-length frame ends only at its delimiter
    (reaching ``end`` first means the delimiter is missing). The data set is frame 0; the current frame's
    fields are kept in ``kind``, ``fend``, ``prev`` and ``expl``. Each stage returns whether the walk goes on.
    """

    __slots__ = (
        "base",
        "blen",
        "buf",
        "collect",
        "expl",
        "fast",
        "fend",
        "findings",
        "frames",
        "hdr_explicit",
        "inspected",
        "kind",
        "offset",
        "order_reported",
        "prev",
        "read_at",
        "record",
        "removable_top",
        "result",
        "size",
        "try_skip",
        "unpackers",
    )

    def __init__(
        self,
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
        self.result, self.findings = result, result.findings
        self.buf, self.base, self.blen = buf, base, len(buf)
        self.offset, self.size, self.read_at = start, size, read_at
        self.collect, self.removable_top = collect, removable_top
        self.unpackers = HEADER_UNPACKERS[little]
        self.hdr_explicit = self.unpackers[0]  # for the plain runs
        self.fast = little and not collect  # plain runs can be skipped (:meth:`_skip_plain_run`)
        self.frames: list[list[int]] = [[0, size, -1, int(explicit), 0]]
        self.kind, self.fend, self.prev, self.expl = 0, size, -1, explicit
        self.record = result.trace.append if result.trace is not None else None
        self.inspected = result.inspected
        self.order_reported = False
        # Whether the next element is worth a try at :meth:`_skip_plain_run`: not right after an element the
        # walk had to look into (runs of private or opaque elements would make every try a wasted call).
        self.try_skip = True

    def run(self) -> None:
        """Step from element to element until the data set ends or a stage stops the walk."""
        fast = self.fast
        while True:
            # Each stage is only called when it has something to do: the walk is the scanner's hot loop.
            if self.offset >= self.fend and len(self.frames) > 1 and not self._leave_ended_frames():
                return
            if self.offset >= self.size:
                self._end_of_file()
                return
            if fast and self.try_skip and self.kind == 0 and self.expl and self._skip_plain_run():
                continue
            # The header, read here rather than in a method: this runs once per element.
            offset, rel = self.offset, self.offset - self.base
            if (rel < 0 or rel + 12 > self.blen) and self.read_at is not None:
                self.buf, self.base = self.read_at(offset, _WINDOW_BYTES), offset
                self.blen, rel = len(self.buf), 0
            if rel + 8 > self.blen:
                self._bad_header("a truncated element header")
                return
            if self.record is not None:
                self.record(offset)
            tag, vr, hlen, length = read_element_header(self.buf, rel, self.expl, self.unpackers)
            if length < 0 or not hlen:
                self._bad_header(
                    "a truncated element header" if length < 0 else f"no valid VR at {_tag_text(tag)}"
                )
                return
            if tag >> 16 == 0xFFFE:
                going = self._delimiter(tag, length, self.offset + hlen)
            elif self.kind != 0:
                going = self._bad_header(f"{_tag_text(tag)} where a sequence item was expected")
            else:
                going = self._element(tag, vr, length, self.offset + hlen)
            if not going:
                return

    # -- frames ---------------------------------------------------------------------------------------
    def _push(self, kind: int, end: int, explicit: bool, undefined: bool) -> None:
        """Enter a sequence, an item or encapsulated Pixel Data that ends at ``end``."""
        self.frames[-1][2] = self.prev
        self.frames.append([kind, end, -1, int(explicit), int(undefined)])
        self.kind, self.fend, self.prev, self.expl = kind, end, -1, explicit
        self.try_skip = True

    def _pop(self) -> None:
        """Leave the current frame for the one around it."""
        frames = self.frames
        frames.pop()
        self.kind, self.fend, self.prev, self.expl = (
            frames[-1][0],
            frames[-1][1],
            frames[-1][2],
            bool(frames[-1][3]),
        )

    def _leave_ended_frames(self) -> bool:
        """Leave every frame that ends here (defined-length items and sequences end by their length)."""
        offset, size = self.offset, self.size
        while offset >= self.fend and len(self.frames) > 1:
            fend = self.fend
            if self.frames[-1][4]:
                # An undefined-length item or sequence ends only at its delimiter, never by running out.
                return self._malformed(
                    "the file ends inside a sequence"
                    if fend >= size
                    else "an item or sequence of undefined length runs past the end of its container",
                    min(offset, fend),
                )
            if offset > fend:
                return self._malformed(
                    f"an element runs past the end of its sequence or item at offset {fend}", fend
                )
            self._pop()
        return True

    def _too_deep(self, offset: int) -> bool:
        """Whether one more frame would nest past :data:`MAX_DEPTH` (reported as such)."""
        if len(self.frames) < MAX_DEPTH:
            return False
        self.findings.append(
            Finding(
                "body.nesting", f"sequences nested deeper than {MAX_DEPTH} levels", Verdict.SUSPICIOUS, offset
            )
        )
        self.result.malformed = True
        return True

    # -- where the walk stops --------------------------------------------------------------------------
    def _end_of_file(self) -> None:
        """The file ends here: where the data set ends, or inside a sequence (malformed)."""
        if len(self.frames) > 1:
            self._malformed("the file ends inside a sequence", self.offset)
        self.result.dataset_end = self.size

    def _malformed(self, message: str, at: int) -> bool:
        """Report a data set that does not parse to its end at ``at``; the walk stops."""
        self.findings.append(Finding("body.malformed", message, Verdict.SUSPICIOUS, at))
        self.result.malformed = True
        return False

    def _bad_header(self, what: str) -> bool:
        """A header that does not parse: data after the data set at the top level, else malformed."""
        _bad_header(
            self.result,
            self.buf,
            self.base,
            self.offset,
            self.size,
            self.read_at,
            len(self.frames) == 1,
            what,
        )
        return False

    def _trailing(self) -> bool:
        """What follows here is not the data set's (data appended to the file); the walk stops."""
        _trailing_at(self.result, self.buf, self.base, self.offset, self.size, self.read_at)
        return False

    # -- headers ---------------------------------------------------------------------------------------
    def _skip_plain_run(self) -> bool:
        """Skip a run of plain elements: the common case, kept tight; whether any was skipped.

        Plain: short-VR elements of a little endian explicit VR data set or item (the caller checks that much),
        public, in ascending order, inside the bytes at hand. Anything else is left to the stages that follow.
        """
        buf, base = self.buf, self.base
        rel = start_rel = self.offset - base
        if rel < 0:
            return False
        hdr, short_vrs, record, prev = self.hdr_explicit, SHORT_VRS, self.record, self.prev
        last_header = self.blen - 12
        last_value = self.fend - base - 8
        while rel <= last_header:
            group, elem, vr, length = hdr(buf, rel)
            if vr not in short_vrs or group & 1 or not elem or group == 0x0042:
                break
            tag = (group << 16) | elem
            if tag <= prev or rel + length > last_value:
                break
            if record is not None:
                record(base + rel)
            prev = tag
            rel += 8 + length
        self.prev = prev
        if rel == start_rel:
            return False
        self.offset = base + rel
        if len(self.frames) == 1:
            self.result.dataset_end = self.offset
        return True

    # -- items and delimiters (PS3.5 §7.5) ------------------------------------------------------------
    def _delimiter(self, tag: int, length: int, value_at: int) -> bool:
        """An item, or the delimiter that ends an item or a sequence."""
        if tag == ITEM:
            if self.kind == 2:
                return self._fragment(length, value_at)
            if self.kind != 1:
                return self._bad_header("an item outside a sequence")
            return self._item(length, value_at)
        if (tag == ITEM_DELIMITATION and self.kind == 0 and len(self.frames) > 1) or (
            tag == SEQUENCE_DELIMITATION and self.kind in (1, 2)
        ):
            self._pop()
            self.offset = value_at
            return True
        return self._bad_header(f"an unexpected delimiter {_tag_text(tag)}")

    def _fragment(self, length: int, value_at: int) -> bool:
        """Skip an encapsulated Pixel Data fragment by its length (PS3.5 A.4)."""
        if length == UNDEFINED_LENGTH or value_at + length > self.fend:
            return self._malformed("an encapsulated Pixel Data fragment runs past its end", self.offset)
        self.offset = value_at + length
        return True

    def _item(self, length: int, value_at: int) -> bool:
        """Enter an item of the current sequence."""
        if self._too_deep(self.offset):
            return False
        undefined = length == UNDEFINED_LENGTH
        end = self.fend if undefined else value_at + length
        if end > self.fend:
            return self._malformed("an item runs past the end of its sequence", self.offset)
        self._push(0, end, self.expl, undefined)
        self.offset = value_at
        return True

    # -- ordinary elements -----------------------------------------------------------------------------
    def _element(self, tag: int, vr: bytes, length: int, value_at: int) -> bool:
        """A data element of the current data set or item: its order, its extent, then what it holds."""
        top = len(self.frames) == 1
        if tag <= self.prev and not self._out_of_order(tag, top):
            return False
        self.prev = tag
        if length == UNDEFINED_LENGTH:
            return self._open_undefined(tag, vr, value_at)
        end = value_at + length
        if end > self.fend:
            return self._overrun(tag, length, value_at, top)
        if vr == b"SQ":
            return self._open_sequence(end, value_at)
        group, elem = tag >> 16, tag & 0xFFFF
        if (
            elem == 0
            or group & 1
            or vr in _OPAQUE_VRS
            or tag in (PIXEL_DATA, _TRAILING_PADDING)
            or tag in self.collect
            or group == 0x0042
        ):
            removable = top and self.removable_top
            _inspect(self.result, self.buf, self.base, self.offset, value_at, tag, vr, length, self.read_at,
                     removable, self.collect)  # fmt: skip
            if self.inspected is not None:
                self.inspected.append((self.offset, value_at, tag, vr, length, removable))
            self.try_skip = False
        else:
            self.try_skip = True
        self.offset = end
        if top:
            self.result.dataset_end = end
        return True

    def _out_of_order(self, tag: int, top: bool) -> bool:
        """A tag not above the one before it: appended data at the top level (the walk stops), else reported
        once."""
        if top and _looks_foreign(self.buf, self.base, self.offset, self.read_at):
            return self._trailing()
        if not self.order_reported:
            self.order_reported = True
            self.findings.append(
                Finding(
                    "body.tag-order",
                    f"{_tag_text(tag)} follows {_tag_text(self.prev)}: tags out of ascending order",
                    Verdict.SUSPICIOUS,
                    self.offset,
                )
            )
        return True

    def _open_undefined(self, tag: int, vr: bytes, value_at: int) -> bool:
        """Enter an element of undefined length: encapsulated Pixel Data, a sequence, or UN holding one."""
        if self._too_deep(self.offset):
            return False
        if tag == PIXEL_DATA and (not self.expl or vr in (b"OB", b"OW")):
            self._push(2, self.fend, self.expl, True)  # encapsulated: items up to the sequence delimiter
        else:
            # SQ, or UN of undefined length whose content is implicit VR little endian (PS3.5 §6.2.2).
            self._push(1, self.fend, self.expl and vr != b"UN", True)
        self.offset = value_at
        return True

    def _overrun(self, tag: int, length: int, value_at: int, top: bool) -> bool:
        """A value longer than what holds it: appended data at the top level, else a truncated data set."""
        if top and (tag < 0x00080000 or _looks_foreign(self.buf, self.base, self.offset, self.read_at)):
            return self._trailing()
        self.findings.append(
            Finding(
                "body.truncated",
                f"{_tag_text(tag)} announces {length} bytes, {self.fend - value_at} remain",
                Verdict.SUSPICIOUS,
                self.offset,
            )
        )
        self.result.malformed = True
        if top:
            self.result.dataset_end = self.offset
        return False

    def _open_sequence(self, end: int, value_at: int) -> bool:
        """Enter a sequence of defined length (its items may hold private payloads)."""
        if self._too_deep(self.offset):
            return False
        self._push(1, end, self.expl, False)
        self.offset = value_at
        return True


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
