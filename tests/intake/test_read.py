"""dcmseal.intake.read_medium on real files: each file's typed outcome, the refusals, the bytes put in the work folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal import cms
from dcmseal.errors import DecryptionError, InputError, UsageError
from dcmseal.events import Emitter, Progress
from dcmseal.intake import NOT_DICOM, IntakeStatus, Integrity, Keys, fileset_id, read_medium
from dcmseal.outcomes import ReasonKind
from dcmseal.part10 import seal_file
from tests.part10.dicomfiles import PASSWORD, fast_kdf
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
MR_SMALL = pydicom_file("MR_small.dcm")


def _medium(root: Path) -> Path:
    """CT_small plain, MR_small sealed with PASSWORD, a text file, a symbolic link."""
    root.mkdir()
    shutil.copyfile(CT_SMALL, root / "CT")
    recipient = cms.PasswordRecipient(password=PASSWORD.encode(), kdf=fast_kdf())
    seal_file(MR_SMALL, root / "MR", recipients=[recipient])
    (root / "notes.txt").write_text("not DICOM\n", encoding="ascii")
    (root / "link").symlink_to(root / "CT")
    return root


def _work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_each_file_has_its_outcome_and_the_dicom_files_their_plain_bytes(tmp_path: Path) -> None:
    medium = _medium(tmp_path / "medium")
    stages: list[Progress] = []

    reading = read_medium(
        medium,
        _work(tmp_path),
        Keys(passwords=(PASSWORD.encode(),)),
        emitter=Emitter([(Progress, stages.append)]),
    )

    files = {f.label: f for f in reading.files}
    assert {label: f.status for label, f in files.items()} == {
        "CT": IntakeStatus.COPIED,
        "MR": IntakeStatus.OPENED,
        "notes.txt": IntakeStatus.SKIPPED,
        "link": IntakeStatus.SKIPPED,
    }
    assert files["notes.txt"].kind is ReasonKind.NOT_DICOM
    assert (files["notes.txt"].reason or "").startswith(NOT_DICOM)
    assert "symbolic link" in (files["link"].reason or "")
    assert files["MR"].encrypted
    assert files["MR"].integrity is Integrity.VERIFIED
    assert not files["CT"].encrypted
    assert [f.label for f in reading.ready] == ["CT", "MR"]  # copied first, then opened
    assert files["CT"].plain is not None
    assert files["CT"].plain.read_bytes() == CT_SMALL.read_bytes()
    assert files["MR"].plain is not None
    assert dcmread(files["MR"].plain).SOPInstanceUID == dcmread(MR_SMALL).SOPInstanceUID
    assert reading.encrypted
    assert reading.pbkdf2_derivations == 1
    assert fileset_id(reading) == ""  # no DICOMDIR
    assert {(p.stage, p.done, p.total) for p in stages} >= {("read", 3, 3), ("open", 1, 1)}


def test_a_medium_of_sealed_files_without_a_key_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="encrypted"):
        read_medium(_medium(tmp_path / "medium"), _work(tmp_path), Keys())


def test_a_wrong_key_for_every_sealed_file_is_one_decryption_error(tmp_path: Path) -> None:
    medium = _medium(tmp_path / "medium")
    (medium / "CT").unlink()  # the sealed file alone: nothing opens

    with pytest.raises(DecryptionError) as raised:
        read_medium(medium, _work(tmp_path), Keys(passwords=(b"not the password",)))

    assert raised.value.path == medium


def test_a_folder_without_dicom_is_not_a_medium(tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    medium.mkdir()
    (medium / "readme.txt").write_text("hello\n", encoding="ascii")

    with pytest.raises(InputError, match=r"no DICOM file on this medium \(1 other file\(s\)\)"):
        read_medium(medium, _work(tmp_path), Keys())


def test_the_keys_of_a_request_are_its_fields_of_the_same_names(tmp_path: Path) -> None:
    from dcmseal.importer.plan import ReconciliationPlanRequest
    from dcmseal.media.open import OpenRequest

    def ask() -> str:
        return "asked"

    request = OpenRequest(
        medium=tmp_path,
        out=tmp_path / "out",
        operator="test",
        passwords=(b"one", b"two"),
        private_keys=(b"pkcs8",),
        certificates=(None,),
        max_iterations=7,
        workers=3,
        accept_unprotected=True,
        kdf_budget_per_medium=11,
        ask_password=ask,
    )
    assert Keys.of(request) == Keys(
        passwords=(b"one", b"two"),
        private_keys=(b"pkcs8",),
        certificates=(None,),
        max_iterations=7,
        workers=3,
        accept_unprotected=True,
        kdf_budget_per_medium=11,
        ask_password=ask,
    )
    # The plan's request has no accept_unprotected nor budget: the defaults (what is protected, the usual budget).
    plan = ReconciliationPlanRequest(
        medium=tmp_path, operator="test", journal=tmp_path / "j", passwords=(b"one",), max_iterations=9
    )
    assert Keys.of(plan) == Keys(passwords=(b"one",), max_iterations=9)
