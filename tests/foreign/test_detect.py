"""DICOM by content: each encoding DCMTK writes without a header is recognised, and other content is not."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from dcmseal.reader.detect import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    SNIFF_BYTES,
    dataset_after_meta,
    sniff,
)
from tests.foreign.corpus import POLYGLOT, mz_stub
from tests.peers.tools import require_tool
from tests.pydicom_data import pydicom_file


def _head(path: Path) -> tuple[bytes, int]:
    data = path.read_bytes()
    return data[:SNIFF_BYTES], len(data)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("+ti",), IMPLICIT_VR_LITTLE_ENDIAN),
        (("+te",), EXPLICIT_VR_LITTLE_ENDIAN),
        (("+tb",), EXPLICIT_VR_BIG_ENDIAN),
    ],
)
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"])
def test_a_data_set_without_file_meta_is_found_in_its_encoding(
    tmp_path: Path, name: str, options: tuple[str, ...], expected: str
) -> None:
    dcmconv = require_tool("dcmconv", "dcmtk")
    out = tmp_path / "raw"
    subprocess.run(
        [dcmconv, "-F", *options, str(pydicom_file(name)), str(out)], check=True, capture_output=True
    )

    found = sniff(*_head(out))

    assert (found.kind, found.transfer_syntax) == ("dataset", expected)


def test_part10_and_secure_files_are_found_by_their_markers() -> None:
    assert sniff(*_head(pydicom_file("CT_small.dcm"))).kind == "part10"
    assert sniff(*_head(POLYGLOT)).kind == "part10"  # DICOM too: the scanner judges its preamble
    secure = bytes.fromhex("3082100006092a864886f70d010703a0") + bytes(64)
    assert sniff(secure).kind == "secure"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"Patient CD. Insert in a PC with the viewer.\r\n" * 4,
        b"[autorun]\r\nopen=viewer.exe\r\n",
        b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(200),
        b"<html><body>report</body></html>",
        b"PK\x03\x04" + bytes(100),
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),  # Thumbs.db
        b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ",  # ._ AppleDouble
    ],
)
def test_other_content_is_not_dicom(content: bytes) -> None:
    assert sniff(content).kind == "other"
    assert sniff(mz_stub()).kind == "other"


def test_random_bytes_are_not_taken_for_a_data_set() -> None:
    rng = random.Random(13)
    hits = [i for i in range(2000) if sniff(rng.randbytes(512)).kind != "other"]
    assert hits == []


def test_a_broken_file_meta_group_is_stepped_over() -> None:
    data = pydicom_file("CT_small.dcm").read_bytes()
    found = dataset_after_meta(data[:SNIFF_BYTES], len(data))
    assert found is not None
    start, transfer_syntax = found
    assert data[start : start + 2] == b"\x08\x00"
    assert transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN
    assert dataset_after_meta(b"\0" * 128 + b"DICM" + b"garbage" * 20, 300) is None
