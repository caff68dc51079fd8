"""Tests of the PS3.10 §7.1 file facts: Part 10 detection, File Meta Information, preamble classes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from dcmseal.errors import NotPart10Error
from dcmseal.part10 import PreambleKind, classify_preamble, is_part10, read_file_meta
from dcmseal.part10.fileformat import MetaStop, read_plain_meta
from tests.part10.dicomfiles import copy_ct_small, write_part10


@pytest.mark.parametrize(
    ("preamble", "kind"),
    [
        pytest.param(bytes(128), PreambleKind.ZERO, id="zero"),
        pytest.param(b"DICM" + bytes(124), PreambleKind.DICM_ZERO, id="dicm-zero"),
        pytest.param(b"II*\x00" + bytes(124), PreambleKind.TIFF, id="tiff-le"),
        pytest.param(b"MM\x00*" + bytes(124), PreambleKind.TIFF, id="tiff-be"),
        pytest.param(b"II+\x00" + bytes(124), PreambleKind.TIFF, id="bigtiff"),
        pytest.param(b"MZ" + bytes(126), PreambleKind.OTHER, id="pe-executable"),
        pytest.param(bytes(127) + b"\x01", PreambleKind.OTHER, id="one-stray-byte"),
    ],
)
def test_classify_preamble(preamble: bytes, kind: PreambleKind) -> None:
    assert classify_preamble(preamble) is kind


def test_is_part10_looks_at_offset_128_only() -> None:
    assert is_part10(bytes(128) + b"DICM")
    assert is_part10(b"MZ" + bytes(126) + b"DICM" + b"rest")
    assert not is_part10(b"DICM" + bytes(128))
    assert not is_part10(bytes(131))


def test_read_file_meta_of_ct_small(tmp_path: Path) -> None:
    meta = read_file_meta(copy_ct_small(tmp_path / "ct.dcm"))
    assert meta.preamble is PreambleKind.TIFF
    assert meta.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert meta.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert meta.transfer_syntax_uid == "1.2.840.10008.1.2.1"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"Patient list\nnothing to see here\n" * 10, id="text"),
        pytest.param(bytes(131), id="131-zero-bytes"),
        pytest.param(b"\x00" * 128 + b"DICX" + bytes(64), id="wrong-magic"),
    ],
)
def test_not_part10_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    with pytest.raises(NotPart10Error) as info:
        read_file_meta(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "keep",
    [
        pytest.param(132, id="DICM-then-nothing"),
        pytest.param(200, id="cut-before-transfer-syntax"),
        # The File Meta group of CT_small is 192 bytes long (0002,0000) and ends at offset 336; a file cut
        # inside it is a truncated DICOM file, whatever pydicom manages to read from it.
        pytest.param(270, id="cut-inside-transfer-syntax-uid"),
        pytest.param(300, id="cut-inside-implementation-uid"),
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_file_cut_inside_the_file_meta_is_refused(tmp_path: Path, keep: int) -> None:
    whole = copy_ct_small(tmp_path / "whole.dcm").read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(whole[:keep])
    with pytest.raises(NotPart10Error) as info:
        read_file_meta(path)
    assert str(info.value).startswith(f"{path}: ")


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


@pytest.mark.parametrize(
    "meta",
    [
        # A group length of 3 bytes: pydicom's reader fails inside struct.unpack.
        pytest.param(
            _meta_element(0x0000, b"UL", b"\x10\x00\x00") + _meta_element(0x0001, b"OB", b""), id="ul-3"
        ),
        # A 4-byte-length VR cut short: pydicom runs out of bytes for the length.
        pytest.param(_meta_element(0x0002, b"UI", b"1.2\x00") + b"\x02\x00\x01\x00OB\x00", id="cut-length"),
    ],
)
def test_malformed_file_meta_is_one_clear_error(tmp_path: Path, meta: bytes) -> None:
    path = tmp_path / "bad.dcm"
    path.write_bytes(bytes(128) + b"DICM" + meta)
    with pytest.raises(NotPart10Error) as info:
        read_file_meta(path)
    assert str(info.value).startswith(f"{path}: the File Meta Information")


def test_read_file_meta_reads_a_synthetic_file(tmp_path: Path) -> None:
    path = write_part10(tmp_path / "syn.dcm", preamble=b"MZ" + bytes(126))
    meta = read_file_meta(path)
    assert meta.preamble is PreambleKind.OTHER
    assert meta.transfer_syntax_uid == "1.2.840.10008.1.2.1"


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element (PS3.5 §7.1.2: the long form for OB, UN, ...)."""
    group, element = tag >> 16, tag & 0xFFFF
    if vr in (b"OB", b"UN", b"SQ", b"UT"):
        return struct.pack("<HH2s2xI", group, element, vr, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _meta(*elements: bytes, group_length: bool = True) -> bytes:
    body = b"".join(elements)
    head = _element(0x00020000, b"UL", struct.pack("<I", len(body))) if group_length else b""
    return bytes(128) + b"DICM" + head + body


_UIDS = (
    _element(0x00020001, b"OB", b"\x00\x01"),
    _element(0x00020002, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00"),
    _element(0x00020003, b"UI", b"1.2.3.4\x00"),
    _element(0x00020010, b"UI", b"1.2.840.10008.1.2.1\x00"),
)


def test_the_plain_meta_read_says_where_each_element_lies() -> None:
    data = _meta(*_UIDS) + _element(0x00080016, b"UI", b"1.2\x00")
    meta = read_plain_meta(data)
    assert meta.stop is MetaStop.END
    assert meta.end == meta.declared_end == len(data) - 12
    assert meta.headers[0] == 132
    assert len(meta.headers) == 5
    assert meta.value(data, 0x00020010) == "1.2.840.10008.1.2.1"
    assert meta.value(data, 0x00020003) == "1.2.3.4"
    assert not (meta.unknown_vr)
    assert not (meta.odd_group_length)
    assert not (meta.private_information)
    assert meta.overrun is None


@pytest.mark.parametrize(
    ("data", "stop"),
    [
        pytest.param(_meta(*_UIDS)[:-30], MetaStop.OVERRUN, id="value-past-the-bytes"),
        pytest.param(_meta(*_UIDS)[:150], MetaStop.SHORT, id="bytes-end-in-a-header"),
        pytest.param(_meta(*_UIDS), MetaStop.SHORT, id="bytes-end-with-the-group"),
        pytest.param(_meta(_element(0x00020002, b"u1", b"1.2\x00")), MetaStop.VR, id="lower-case-vr"),
    ],
)
def test_the_plain_meta_read_stops_where_it_cannot_go_on(data: bytes, stop: MetaStop) -> None:
    assert read_plain_meta(data).stop is stop


def test_the_plain_meta_read_notes_what_the_scanner_reads_element_by_element() -> None:
    data = _meta(
        *_UIDS, _element(0x00020102, b"OB", b"MZ\x90\x00"), _element(0x00020103, b"XY", b"ab")
    ) + _element(0x00080016, b"UI", b"1.2\x00")
    meta = read_plain_meta(data)
    assert meta.stop is MetaStop.END
    assert meta.private_information
    assert meta.unknown_vr
    odd = read_plain_meta(
        bytes(128)
        + b"DICM"
        + _element(0x00020000, b"UL", b"\x00\x00")
        + _element(0x00080016, b"UI", b"1.2\x00")
    )
    assert odd.odd_group_length
    assert odd.declared_end is None
