"""The File Meta group as the scanner reads it (PS3.10 §7.1): where the data set starts, its UIDs, what hides in it."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from dcmseal.part10.encoding import (
    LONG_VRS,
    UNDEFINED_LENGTH,
    VRS,
)
from dcmseal.part10.fileformat import HEADER_BYTES, MetaStop, read_plain_meta
from dcmseal.scan.report import Finding, Verdict
from dcmseal.scan.signatures import Family, identify
from dcmseal.scan.walker import _PROBE_BYTES, Element, ReadAt, _tag_text, _window

__all__ = ["MetaResult", "read_meta"]

_META_TAG = struct.Struct("<HH").unpack_from


@dataclass(slots=True)
class MetaResult:
    """The File Meta group: where the data set starts and the facts the scanner uses."""

    end: int  # offset of the first data set byte
    transfer_syntax: str | None = None
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    findings: list[Finding] = field(default_factory=list)
    payloads: list[Element] = field(default_factory=list)
    ok: bool = True
    # Filled by the fast parse, for LayoutCache: header offsets, and the spans of the values it reads.
    trace: list[int] | None = None
    spans: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = (
        None  # TS, SOP class, SOP instance
    )


def _read_meta_fast(buf: bytes) -> MetaResult | None:
    """The File Meta group of an ordinary file, all of it in ``buf``; None for anything unusual (the caller
    then reads it element by element, with findings)."""
    plain = read_plain_meta(buf)
    if (
        plain.stop is not MetaStop.END
        or plain.end + 12
        > len(buf)  # every header whole in ``buf``, as LayoutCache compares 12 bytes of each
        or plain.unknown_vr
        or plain.odd_group_length
        or plain.private_information  # Private Information is probed for payloads: the slow path does that
        or plain.declared_end != plain.end
    ):
        return None
    spans = plain.spans
    ts_span = spans.get(0x00020010)
    if ts_span is None:
        return None
    class_span, uid_span = spans.get(0x00020002), spans.get(0x00020003)
    trace = plain.headers
    trace.append(plain.end)  # the first data set element's header: it ends the group
    return MetaResult(
        plain.end,
        _text(buf, ts_span),
        _text(buf, class_span) if class_span else None,
        _text(buf, uid_span) if uid_span else None,
        trace=trace,
        spans=(ts_span, class_span or (0, 0), uid_span or (0, 0)),
    )


def _text(buf: bytes, span: tuple[int, int]) -> str:
    return buf[span[0] : span[1]].rstrip(b"\x00 ").decode("ascii", "replace")


def read_meta(buf: bytes, size: int, read_at: ReadAt | None) -> MetaResult:
    """Parse the File Meta group (PS3.10 §7.1: explicit VR little endian) that starts at offset 132.

    ``buf`` holds the file from offset 0 (at least the first 132 bytes); ``read_at`` reads beyond it.
    """
    fast = _read_meta_fast(buf)
    if fast is not None:
        return fast
    meta = MetaResult(end=HEADER_BYTES)
    offset = HEADER_BYTES
    declared_end: int | None = None
    n = len(buf)
    while True:
        head = buf[offset : offset + 12] if offset + 12 <= n else _window(buf, 0, offset, 12, read_at)
        if len(head) < 8:
            break
        group, elem = _META_TAG(head)
        if group != 0x0002:
            break
        vr = head[4:6]
        if vr not in VRS:
            meta.findings.append(
                Finding(
                    "meta.malformed",
                    f"File Meta element {_tag_text(0x20000 | elem)} without a valid VR",
                    Verdict.SUSPICIOUS,
                    offset,
                )
            )
            meta.ok = False
            return meta
        if vr in LONG_VRS:
            if len(head) < 12:
                meta.ok = False
                break
            length, value_at = struct.unpack_from("<I", head, 8)[0], offset + 12
        else:
            length, value_at = struct.unpack_from("<H", head, 6)[0], offset + 8
        if length == UNDEFINED_LENGTH or value_at + length > size:
            meta.findings.append(
                Finding(
                    "meta.malformed",
                    f"File Meta element {_tag_text(0x20000 | elem)} runs past the end of the file",
                    Verdict.SUSPICIOUS,
                    offset,
                )
            )
            meta.ok = False
            return meta
        tag = 0x20000 | elem
        if tag == 0x00020000:
            if vr == b"UL" and length == 4:
                declared_end = value_at + 4 + int.from_bytes(_window(buf, 0, value_at, 4, read_at), "little")
            else:
                meta.findings.append(
                    Finding(
                        "meta.group-length",
                        f"File Meta Group Length with VR {vr.decode('latin-1')} and length {length}",
                        Verdict.SUSPICIOUS,
                        offset,
                    )
                )
        elif tag in (0x00020002, 0x00020003, 0x00020010) and length <= 256:
            text = _window(buf, 0, value_at, length, read_at).rstrip(b"\x00 ").decode("ascii", "replace")
            if tag == 0x00020002:
                meta.sop_class_uid = text
            elif tag == 0x00020003:
                meta.sop_instance_uid = text
            else:
                meta.transfer_syntax = text
        elif tag == 0x00020102 and length >= 4:
            # Private Information (OB): PS3.10 §7.1 lets any implementation put bytes here.
            probe = _window(buf, 0, value_at, _PROBE_BYTES, read_at)
            signature = identify(probe, read_at=read_at, base=value_at, text=False)
            if signature is not None and signature.name != "mz":
                meta.findings.append(
                    Finding(
                        "meta.payload",
                        f"File Meta Private Information (0002,0102) holds a {signature.description}",
                        Verdict.MALICIOUS if signature.family is Family.EXECUTABLE else Verdict.SUSPICIOUS,
                        value_at,
                    )
                )
                meta.payloads.append(Element(tag, offset, value_at + length, False, signature.description))
        offset = value_at + length
    meta.end = offset
    if declared_end is not None and declared_end != offset:
        meta.findings.append(
            Finding(
                "meta.group-length-mismatch",
                f"the File Meta Group Length says the group ends at {declared_end}, it ends at {offset}",
                Verdict.CLEAN,
                HEADER_BYTES,
            )
        )
    if meta.transfer_syntax is None:
        meta.findings.append(
            Finding(
                "meta.no-transfer-syntax",
                "the File Meta group has no Transfer Syntax UID (0002,0010)",
                Verdict.CLEAN,
                HEADER_BYTES,
            )
        )
    return meta
