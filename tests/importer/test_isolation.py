"""One bad file never stops an import: every file of a hostile medium ends in exactly one place, with one line.

The medium mixes clean instances with the malformed and polyglot files import desks receive: trailing ZIP and
ELF data, an OB element announcing 0xFFFFFFF0 bytes, an undefined-length item the file ends inside, sequences
nested 64 deep, pydicom's ``SC_rgb_jpeg.dcm`` (implicit VR under an explicit Transfer Syntax), a file without a
Study Instance UID and a text file. It goes into a real Orthanc over C-STORE and STOW-RS, through the command
line, so the exit code, the JSON and stderr are what a user gets.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.cli.runner import Run, run_dcmseal
from tests.importer.conftest import HTTP_PASSWORD, HTTP_USER, OUR_AET, foreign_study
from tests.peers.orthanc import OrthancPeer
from tests.pydicom_data import pydicom_file

#: Real peers: Orthanc.
pytestmark = pytest.mark.interop


def _long(tag: tuple[int, int], vr: bytes, length: int) -> bytes:
    """An explicit VR little endian header with a 4-byte length (OB, SQ, UN)."""
    return struct.pack("<HH2sHI", tag[0], tag[1], vr, 0, length)


def _short(tag: tuple[int, int], vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", tag[0], tag[1], vr, len(value)) + value


def _item(content: bytes, *, length: int | None = None) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(content) if length is None else length) + content


#: Elements after Pixel Data, so that the tags stay in ascending order: only the damage named is present.
_PRIVATE_OB = (0x7FE1, 0x1010)
_SIGNATURES = (0xFFFA, 0xFFFA)  # Digital Signatures Sequence: an SQ that may follow Pixel Data
_ACCESSION = _short((0x0008, 0x0050), b"SH", b"ABCD")


def _nested(depth: int) -> bytes:
    inner = _ACCESSION
    for _ in range(depth):
        item = _item(inner)
        inner = _long(_SIGNATURES, b"SQ", len(item)) + item
    return inner


#: file name -> (outcome, a piece of the reason)
EXPECTED = {
    "CLEAN1": ("stored", "stored (C-STORE status 0x0000)"),
    "CLEAN2": ("stored", "stored ("),
    "ZIPTAIL": ("sanitized then stored", "malicious (trailing-data): sanitized (removed 64 bytes"),
    "ELFTAIL": ("sanitized then stored", "removed 64 bytes after the end of the data set"),
    "HUGEOB": ("quarantined", "(7FE1,1010) announces 4294967280 bytes"),
    "OPENITEM": ("quarantined", "the file ends inside a sequence"),
    "NESTED64": ("quarantined", "nested deeper than 64 levels"),
    "SCJPEG": ("stored", "stored ("),
    "NOSTUDY": ("failed", "not storable: no StudyInstanceUID"),
    "README.TXT": ("not DICOM", "not a DICOM file"),
}


def hostile_medium(root: Path) -> Path:
    """A plain folder medium with the files of :data:`EXPECTED`."""
    made = foreign_study(root / "tmp", 7, patient_id="EXT-HOSTILE")
    (root / "DICOM").mkdir(parents=True)
    names = ["CLEAN1", "CLEAN2", "ZIPTAIL", "ELFTAIL", "HUGEOB", "OPENITEM", "NESTED64"]
    files = {name: root / "DICOM" / name for name in names}
    for name, path in zip(names, made, strict=True):
        path.rename(files[name])
    shutil.rmtree(root / "tmp")

    def append(name: str, tail: bytes) -> None:
        files[name].write_bytes(files[name].read_bytes() + tail)

    append("ZIPTAIL", b"PK\x03\x04\x14\x00" + bytes(58))
    append("ELFTAIL", b"\x7fELF\x02\x01\x01" + bytes(57))
    append("HUGEOB", _long(_PRIVATE_OB, b"OB", 0xFFFFFFF0) + b"abcd")
    append("OPENITEM", _long(_SIGNATURES, b"SQ", 0xFFFFFFFF) + _item(_ACCESSION, length=0xFFFFFFFF))
    append("NESTED64", _nested(64))
    shutil.copyfile(pydicom_file("SC_rgb_jpeg.dcm"), root / "DICOM" / "SCJPEG")
    ds = dcmread(pydicom_file("CT_small.dcm"))
    del ds.StudyInstanceUID
    ds.save_as(root / "DICOM" / "NOSTUDY", enforce_file_format=True)
    (root / "README.TXT").write_text("Images of Mr Example, from another hospital.\r\n")
    return root


def _import(tmp_path: Path, medium: Path, to: str, *extra: str) -> Run:
    return run_dcmseal(
        "import",
        medium,
        "--to",
        to,
        *extra,
        "--journal",
        tmp_path / "journal.sqlite3",
        "--quarantine",
        tmp_path / "quarantine",
        "--json",
        home=tmp_path / "home",
        env={"PACS_PASSWORD": HTTP_PASSWORD},
    )


@pytest.mark.parametrize("protocol", ["C-STORE", "STOW-RS"])
def test_every_file_of_a_hostile_medium_ends_in_one_place_and_the_rest_are_stored(
    tmp_path: Path, orthanc: OrthancPeer, protocol: str
) -> None:
    medium = hostile_medium(tmp_path / "medium")
    to = (
        f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
        if protocol == "C-STORE"
        else orthanc.dicomweb_url
    )
    auth = ["--user", HTTP_USER, "--user-password-env", "PACS_PASSWORD"] if protocol == "STOW-RS" else []
    run = _import(tmp_path, medium, to, *auth, "--aet", OUR_AET)
    assert run.code == 1, run.stderr  # a file failed (no Study Instance UID); nothing stopped the run
    assert "Traceback" not in run.stderr
    document = run.json()
    files = {Path(f["path"]).name: f for f in document["files"]}
    assert set(files) == set(EXPECTED)
    for name, (outcome, words) in EXPECTED.items():
        entry = files[name]
        assert entry["outcome"] == outcome, (name, entry)
        reason = entry["reason"]
        assert isinstance(reason, str), (name, entry)
        assert len(reason.splitlines()) == 1, (name, reason)
        if protocol == "STOW-RS":
            words = words.replace("C-STORE status 0x0000", "STOW-RS success")
        assert words in reason, (name, reason)
    outcomes = document["summary"]["outcomes"]
    assert outcomes["stored"] == 3
    assert outcomes["sanitized then stored"] == 2
    assert outcomes["quarantined"] == 3
    assert outcomes["failed"] == 1
    assert outcomes["not DICOM"] == 1
    assert sum(outcomes.values()) == len(EXPECTED)
    # What the PACS holds is exactly what was stored, and the quarantine holds exactly what was quarantined.
    sent = {f["sent_sop_instance_uid"] for f in document["files"] if f["status"] == "stored"}
    assert orthanc.sop_instance_uids() == sent
    assert len(sent) == 5
    quarantined = [p for p in (tmp_path / "quarantine").rglob("*.bin")]
    assert len(quarantined) == 3


def test_a_fatal_error_is_one_json_document_too(tmp_path: Path) -> None:
    run = _import(tmp_path, tmp_path / "no-such-medium", "dicom://PACS@127.0.0.1:9")
    assert run.code == 1
    document = run.json()
    assert document["schema"] == "dcmseal.error/1"
    assert document["command"] == "import"
    error = document["error"]  # the shape of issue 14: {code, message, file} (and the exit code)
    assert error["exit_code"] == 1
    assert error["code"] == "input"
    assert error["file"].endswith("no-such-medium")
    assert error["message"] == "no such file or folder"
