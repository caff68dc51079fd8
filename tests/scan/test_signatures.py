"""The signature table: what each magic is recognised as, and what is not mistaken for one."""

from __future__ import annotations

import pytest

from dcmseal.scan.signatures import Family, find_embedded, identify, tiff_ifd_offset
from tests.scan.corpus import ELF_HEADER, MACHO_MAGICS, pe_bytes, zip_bytes


@pytest.mark.parametrize(
    ("data", "name", "family"),
    [
        (pe_bytes(), "pe", Family.EXECUTABLE),
        (b"MZ" + bytes(126), "mz", Family.EXECUTABLE),
        (ELF_HEADER, "elf", Family.EXECUTABLE),
        *[(m + bytes(12), "macho", Family.EXECUTABLE) for m in MACHO_MAGICS],
        (b"PE\x00\x00" + bytes(12), "pe", Family.EXECUTABLE),
        (zip_bytes(), "zip", Family.ARCHIVE),
        (b"7z\xbc\xaf\x27\x1c" + bytes(10), "7z", Family.ARCHIVE),
        (b"Rar!\x1a\x07\x00" + bytes(9), "rar", Family.ARCHIVE),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(8), "ole", Family.ARCHIVE),
        (b"%PDF-1.7\n", "pdf", Family.DOCUMENT),
        (b"#!/bin/sh\n", "script", Family.SCRIPT),
        (b"  <!DOCTYPE html><html>", "html", Family.MARKUP),
        (b'\xef\xbb\xbf{"a": 1}', "json", Family.CONFIG),
    ],
)
def test_identify(data: bytes, name: str, family: Family) -> None:
    signature = identify(data)
    assert signature is not None
    assert (signature.name, signature.family) == (name, family)


def test_pe_header_must_be_where_e_lfanew_points() -> None:
    data = bytearray(pe_bytes())
    data[0x40:0x44] = b"XX\x00\x00"
    misplaced = identify(bytes(data))
    assert misplaced is not None
    assert misplaced.name == "mz"
    far = pe_bytes(e_lfanew=0x200, total=0x40)[:0x40]
    truncated = identify(far)
    assert truncated is not None
    assert truncated.name == "mz"
    read_further = identify(far, read_at=lambda at, n: b"PE\x00\x00" if at == 0x200 else b"")
    assert read_further is not None
    assert read_further.name == "pe"


def test_binary_values_are_not_read_as_text() -> None:
    assert identify(b"<html>", text=False) is None
    assert identify(b'{ "a": 1 }', text=False) is None
    assert identify(b"#!x", text=False) is None  # "#!" then no interpreter path
    assert identify(b"#!/bin/sh", text=False) is not None
    assert identify(bytes(64)) is None
    assert identify(b"plain text README") is None


def test_embedded_and_tiff_offsets() -> None:
    pdf = find_embedded(b"%PDF-")
    assert pdf is not None
    assert find_embedded(bytes(40) + b"%PDF-1.4") == (40, pdf[1])
    assert find_embedded(bytes(128)) is None
    assert tiff_ifd_offset(b"II*\x00\x08\x00\x00\x00") == 8
    assert tiff_ifd_offset(b"MM\x00*\x00\x00\x00\x10") == 16
    assert tiff_ifd_offset(b"II+\x00\x08\x00\x00\x00" + (200).to_bytes(8, "little")) == 200
    assert tiff_ifd_offset(b"II+\x00\x04\x00\x00\x00" + bytes(8)) is None
    assert tiff_ifd_offset(b"MZ\x00\x00") is None
