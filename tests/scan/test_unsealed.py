"""Secure DICOM Files: reported as such without a key, scanned after decryption in memory with one."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from dcmseal import cms
from dcmseal.part10 import seal_file
from dcmseal.scan import Verdict, scan_paths
from tests.part10.dicomfiles import fast_kdf
from tests.scan.corpus import part10, pe_bytes

PASSWORD = b"Kestrel-amber-Lantern-orbit-velvet"


def _seal(src: Path, dst: Path, kdf: cms.Pbkdf2Params) -> Path:
    seal_file(src, dst, recipients=[cms.PasswordRecipient(password=PASSWORD, kdf=kdf)])
    return dst


def test_secure_file_without_and_with_key(tmp_path: Path) -> None:
    plain = tmp_path / "plain.dcm"
    plain.write_bytes(part10(private=[(0x00, "OB", pe_bytes(total=256))]))
    sealed = _seal(plain, tmp_path / "sealed.dcm", fast_kdf())
    unopened = scan_paths([sealed])
    assert unopened.files[0].kind == "secure"
    assert unopened.verdict is Verdict.CLEAN
    assert unopened.files[0].codes() == ("secure.not-opened",)
    opened = scan_paths([sealed], passwords=[PASSWORD])
    report = opened.files[0]
    assert report.kind == "dicom"
    assert report.verdict is Verdict.MALICIOUS
    assert report.codes()[0] == "secure.opened"
    assert "body.executable" in report.codes()
    wrong = scan_paths([sealed], passwords=[b"not-the-password-at-all"])
    assert wrong.files[0].codes() == ("secure.not-opened",)


def test_no_plaintext_left_on_disk(tmp_path: Path) -> None:
    plain = tmp_path / "plain.dcm"
    plain.write_bytes(part10())
    sealed = _seal(plain, tmp_path / "medium" / "IM1", fast_kdf())
    plain.unlink()
    before = set(Path(tempfile.gettempdir()).iterdir())
    report = scan_paths([tmp_path / "medium"], passwords=[PASSWORD])
    assert report.verdict is Verdict.CLEAN
    assert set(Path(tempfile.gettempdir()).iterdir()) == before
    assert sorted(p.name for p in (tmp_path / "medium").iterdir()) == [sealed.name]


def test_encrypted_dicomdir_references_checked_with_key(tmp_path: Path) -> None:
    from tests.pydicom_data import pydicom_file

    source = pydicom_file("CT_small.dcm").parent / "dicomdirtests"
    kdf = fast_kdf()
    medium = tmp_path / "medium"
    for path in [source / "DICOMDIR", *sorted((source / "77654033").rglob("*"))]:
        if path.is_file():
            target = medium / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            _seal(path, target, kdf)
    shutil.copy(source / "98892001" / "CT2N" / "6293", medium / "77654033" / "EXTRA")
    unkeyed = scan_paths([medium])
    assert "medium.dicomdir-encrypted" in [f.code for f in unkeyed.medium_findings]
    keyed = scan_paths([medium], passwords=[PASSWORD])
    codes = [f.code for f in keyed.medium_findings]
    assert "medium.unreferenced" in codes  # EXTRA
    assert "medium.missing" in codes  # the DICOMDIR also lists 98892001 and 98892003, not copied
