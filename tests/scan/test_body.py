"""Body findings: payloads in private/OB elements and group lengths, tag order, trailing data, ZIP, encodings."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from dcmseal.scan import Verdict, scan_bytes, scan_file
from dcmseal.scan.meta import read_meta
from dcmseal.scan.walker import walk_dataset
from tests.pydicom_data import pydicom_file
from tests.scan.corpus import ELF_HEADER, element, part10, pe_bytes, split_part10, zip_bytes


def test_private_ob_with_pe_is_malicious() -> None:
    data = part10(private=[(0x00, "OB", pe_bytes(total=256))])
    report = scan_bytes(data, name="x")
    assert report.verdict is Verdict.MALICIOUS
    assert "body.executable" in report.codes()


def test_private_un_with_elf_is_malicious() -> None:
    report = scan_bytes(part10(private=[(0x01, "UN", ELF_HEADER)]), name="x")
    assert "body.executable" in report.codes()


def test_private_ob_with_zip_is_flagged_and_its_directory_found() -> None:
    report = scan_bytes(part10(private=[(0x02, "OB", zip_bytes())]), name="x")
    assert "body.archive" in report.codes()
    # The archive's end of central directory sits in the last 64 KiB: ZIP readers open the file.
    assert "body.zip-eocd" in report.codes()
    assert report.verdict is Verdict.MALICIOUS


def test_group_length_with_ob_vr_right_after_meta() -> None:
    head, body = split_part10(part10())
    payload = b"PE\x00\x00" + bytes(60)
    data = head + element(0x0009, 0x0000, b"OB", payload) + body
    report = scan_bytes(data, name="x")
    assert {"body.group-length-vr", "body.executable", "body.tag-order"} <= set(report.codes())


def test_group_length_with_a_long_value() -> None:
    head, body = split_part10(part10())
    data = head + element(0x0009, 0x0000, b"UL", bytes(4096)) + body
    report = scan_bytes(data, name="x")
    assert "body.group-length-vr" not in report.codes()
    assert "body.group-length-size" in report.codes()
    assert report.verdict is Verdict.SUSPICIOUS


def test_tags_out_of_order() -> None:
    head, body = split_part10(part10(pixels=None))
    data = head + body + element(0x0008, 0x0050, b"SH", b"ACC1")  # a (0008,xxxx) after (0010,xxxx)
    report = scan_bytes(data, name="x")
    assert report.codes() == ("body.tag-order",)
    assert report.verdict is Verdict.SUSPICIOUS


def test_trailing_bytes_after_the_data_set() -> None:
    data = part10() + b"some appended text that is not a data element"
    report = scan_bytes(data, name="x")
    assert report.codes() == ("trailing-data",)
    assert report.findings[0].offset == len(part10())


def test_zip_appended_after_the_data_set_is_malicious() -> None:
    clean = part10()
    report = scan_bytes(clean + zip_bytes(), name="x")
    assert report.verdict is Verdict.MALICIOUS
    assert report.codes() == ("trailing-data", "body.zip-eocd")
    assert report.findings[0].offset == len(clean)


def test_pe_appended_after_the_data_set_is_malicious() -> None:
    report = scan_bytes(part10() + pe_bytes(), name="x")
    assert report.findings[0].code == "trailing-data"
    assert report.verdict is Verdict.MALICIOUS


def test_trailing_zero_bytes_are_a_note() -> None:
    report = scan_bytes(part10() + bytes(10), name="x")
    assert report.codes() == ("trailing-data.zeros",)
    assert report.verdict is Verdict.CLEAN


def test_truncated_file_is_suspicious() -> None:
    data = part10(pixels=bytes(1000))
    report = scan_bytes(data[:-100], name="x")
    assert report.codes() == ("body.truncated",)


def test_payload_inside_a_sequence_item_is_found() -> None:
    ds = pydicom.dcmread(io.BytesIO(part10()))
    item = pydicom.Dataset()
    block = item.private_block(0x0011, "SCANTEST", create=True)
    block.add_new(0x01, "OB", pe_bytes(total=256))
    ds.ReferencedImageSequence = [item]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    report = scan_bytes(buffer.getvalue(), name="x")
    assert "body.executable" in report.codes()


@pytest.mark.parametrize(
    "name",
    ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm"],
)
def test_encodings_walk_to_the_end(name: str) -> None:
    # Implicit VR, big endian, deflate, encapsulated Pixel Data: all walk cleanly to the end of the file.
    report = scan_file(pydicom_file(name))
    assert report.verdict is Verdict.CLEAN, report.findings


def test_private_payload_in_implicit_vr() -> None:
    ds = pydicom.dcmread(pydicom_file("MR_small_implicit.dcm"))
    block = ds.private_block(0x0029, "SCANTEST", create=True)
    block.add_new(0x01, "OB", ELF_HEADER)
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=True, little_endian=True)
    report = scan_bytes(buffer.getvalue(), name="x")
    assert "body.executable" in report.codes()


def test_dicomdir_references_are_collected() -> None:
    data = pydicom_file("DICOMDIR").read_bytes()
    meta = read_meta(data, len(data), None)
    body = walk_dataset(data, start=meta.end, size=len(data), read_at=None, transfer_syntax=meta.transfer_syntax,
                        collect=frozenset({0x00041500}))  # fmt: skip
    assert not body.malformed
    assert len(body.values[0x00041500]) == 31  # pydicom's test DICOMDIR references 31 files


def test_reads_little_of_a_large_file(tmp_path: Path) -> None:
    # 8 MiB of pixel data are skipped by length: the scan reads the head, one window and the tail only.
    data = part10(pixels=bytes(8 * 1024 * 1024))
    path = tmp_path / "big.dcm"
    path.write_bytes(data)
    calls: list[int] = []
    import os

    real_pread = os.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        calls.append(n)
        return real_pread(fd, n, offset)

    os.pread = counting
    try:
        report = scan_file(path)
    finally:
        os.pread = real_pread
    assert report.verdict is Verdict.CLEAN
    assert sum(calls) < 256 * 1024
