"""`dcmseal open` and `dcmseal scan` of foreign media, as a fresh process: exit codes, --json, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.cli.conftest import Subprocess
from tests.foreign.corpus import ForeignMedium
from tests.part10.dicomfiles import FAST_ITERATIONS
from tests.pydicom_data import pydicom_file

FAST = ("--iterations", str(FAST_ITERATIONS))


def test_open_of_a_vendor_folder_summarises_every_file_in_json(
    dcmseal: Subprocess, foreign_corpus: dict[str, ForeignMedium], tmp_path: Path
) -> None:
    medium = foreign_corpus["vendor-folder"]

    run = dcmseal("open", medium.path, "--out", tmp_path / "opened", "--json")

    assert run.code == 4, run.stderr  # files quarantined (the polyglot, the malformed ones); none failed
    assert "Traceback" not in run.stderr
    document = run.json()
    statuses = {f["path"]: f["status"] for f in document["files"]}
    assert statuses == medium.expected
    summary = document["summary"]
    assert summary["quarantined"] == sum(1 for s in medium.expected.values() if s == "quarantined")
    assert summary["copied"] == len(medium.instances)


def test_open_of_a_plain_medium_in_the_terminal_has_no_traceback(
    dcmseal: Subprocess, foreign_corpus: dict[str, ForeignMedium], tmp_path: Path
) -> None:
    run = dcmseal("open", foreign_corpus["joliet-iso"].path, "--out", tmp_path / "opened")

    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "2 files into" in run.stderr_flat
    assert (tmp_path / "opened" / "DICOMDIR").is_file()


def test_a_hostile_medium_is_one_line_for_open_and_a_finding_for_scan(
    dcmseal: Subprocess, foreign_corpus: dict[str, ForeignMedium], tmp_path: Path
) -> None:
    medium = foreign_corpus["hostile-iso"]

    opened = dcmseal("open", medium.path, "--out", tmp_path / "opened")
    scanned = dcmseal("scan", medium.path, "--json")

    assert opened.code == 1
    assert "Traceback" not in opened.stderr
    [line] = [line for line in opened.stderr.splitlines() if line.strip()]
    assert "unsafe as a path component" in line
    assert scanned.code == 4
    codes = {f["code"] for file in scanned.json()["files"] for f in file["findings"]}
    assert "container.structure" in codes


def test_open_of_what_seal_wrote_gives_a_conformant_file_set(
    dcmseal: Subprocess, password_file: Path, tmp_path: Path
) -> None:
    """`dcmseal seal` keeps ordinary names (`ct/CT_small.dcm`); `open` used to fail on them with a traceback."""
    source = tmp_path / "study"
    (source / "ct").mkdir(parents=True)
    shutil.copyfile(pydicom_file("CT_small.dcm"), source / "ct" / "CT_small.dcm")
    shutil.copyfile(pydicom_file("MR_small.dcm"), source / "mr_small_series_1.dcm")
    sealed = dcmseal("seal", source, "--out", tmp_path / "sealed", "--password-file", password_file, *FAST)
    assert sealed.code == 0, sealed.stderr

    run = dcmseal(
        "open", tmp_path / "sealed", "--out", tmp_path / "opened", "--password-file", password_file, "--json"
    )

    assert run.code == 0, run.stderr
    files = {f["path"]: f for f in run.json()["files"]}
    assert set(files) == {"ct/CT_small.dcm", "mr_small_series_1.dcm"}
    assert {f["status"] for f in files.values()} == {"opened"}
    assert all(f["file_id"] and (tmp_path / "opened" / f["file_id"]).is_file() for f in files.values())
    assert (tmp_path / "opened" / "DICOMDIR").is_file()
