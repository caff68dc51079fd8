"""Containers read in place: zip members that cannot be read, names that hide control characters."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from dcmseal.errors import InputError
from dcmseal.scan import Verdict, scan_paths
from dcmseal.scan.containers import open_archive, printable_name
from tests.scan.corpus import PE_HEADER, part10


def test_zip_bomb_and_symlink_members_are_not_read(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", bytes(8 * 1024 * 1024))
        link = zipfile.ZipInfo("link")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("IM1", part10(preamble=PE_HEADER))
    with open_archive(archive) as opened:
        problems = {m.name: m.problem for m in opened.members}
    assert problems["zeros.dcm"] is not None
    assert "zip bomb" in problems["zeros.dcm"]
    assert problems["link"] == "symbolic link in the archive"
    assert problems["IM1"] is None
    report = scan_paths([archive])
    verdicts = {f.path: (f.verdict, f.codes()) for f in report.files}
    assert verdicts["zeros.dcm"] == (Verdict.SUSPICIOUS, ("container.unreadable",))
    assert verdicts["IM1"][0] is Verdict.MALICIOUS


def test_not_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "x.zip"
    bogus.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputError), open_archive(bogus):
        pass


def test_printable_name() -> None:
    assert printable_name("IM\x1b[31m1\n") == "IM\\x1b[31m1\\x0a"
