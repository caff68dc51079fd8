"""Folders through the process pool: the listing streamed to forked workers reports exactly what one process does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dcmseal.scan.tree as tree
from dcmseal.events import Emitter, Progress
from dcmseal.reader.containers import Member, iter_folder
from dcmseal.scan import Verdict, scan_medium_layout, scan_paths
from dcmseal.scan.report import FileReport
from tests.scan.corpus import ELF_HEADER, PE_HEADER, part10, zip_bytes


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool from 10 files on, tasks of 7 files: several tasks, sent while the listing is still going."""
    monkeypatch.setattr(tree, "MIN_FILES_FOR_POOL", 10)
    monkeypatch.setattr(tree, "_CHUNK_FILES", 7)


def _tree(root: Path) -> dict[str, int]:
    """Nested folders of clean and hostile DICOM, non-DICOM files, links, a FIFO; returns what it planted."""
    clean = part10()  # one layout for most files, so the workers' layout caches are used too
    planted = {"malicious": 0, "regular": 0}
    for index in range(45):
        folder = root / ("A/B/C" if index % 3 == 0 else "D" if index % 3 == 1 else "")
        folder.mkdir(parents=True, exist_ok=True)
        hostile = index % 11 == 5
        (folder / f"IM{index:04d}").write_bytes(part10(preamble=PE_HEADER) if hostile else clean)
        planted["malicious"] += hostile
        planted["regular"] += 1
    (root / "D" / "POLYGLOT").write_bytes(part10() + zip_bytes())
    (root / "README.TXT").write_bytes(b"a disc\r\n")
    (root / "A" / "tool").write_bytes(ELF_HEADER)
    (root / "A" / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "A" / "B" / "EMPTY").write_bytes(b"")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "IM9999").write_bytes(clean)
    planted["malicious"] += 1  # the polyglot
    planted["regular"] += 6
    (root / "LINK").symlink_to(root / "D" / "IM0001")
    (root / "A" / "DANGLING").symlink_to(root / "nowhere")
    os.mkfifo(root / "A" / "FIFO")  # not a file a medium carries: neither listed nor opened
    return planted


@pytest.mark.usefixtures("small_pool")
def test_pool_and_one_process_agree_on_a_nested_tree(tmp_path: Path) -> None:
    root = tmp_path / "medium"
    planted = _tree(root)
    serial = scan_paths([root], workers=1)
    pooled = scan_paths([root], workers=2)
    assert pooled == serial
    assert len(pooled.files) == planted["regular"]
    assert [f.path for f in pooled.files] == [m.name for m in iter_folder(root) if not m.symlink]
    assert pooled.count(Verdict.MALICIOUS) == planted["malicious"]
    codes = sorted(f.code for f in pooled.medium_findings)
    assert codes.count("medium.symlink") == 2
    assert {"medium.executable", "medium.script"} <= set(codes)
    kinds = {f.path: f.kind for f in pooled.files}
    assert kinds["README.TXT"] == kinds["A/B/EMPTY"] == "not-dicom"
    assert kinds[".hidden/IM9999"] == "dicom"
    assert "body.zip-eocd" in next(f for f in pooled.files if f.path == "D/POLYGLOT").codes()


@pytest.mark.usefixtures("small_pool")
def test_unreadable_files_are_reported_by_the_pool_too(tmp_path: Path) -> None:
    root = tmp_path / "medium"
    _tree(root)
    members = list(iter_folder(root))
    # A file that goes away between the listing and the scan (as root, permissions cannot stop a read).
    members.insert(3, Member("A/GONE", -1, str(root / "A" / "GONE")))
    results = []
    for workers in (1, 2):
        reports: dict[str, FileReport] = {}
        listed, regular, found = tree._scan_listing(iter(members), "", True, workers, reports, Emitter())
        assert listed == members
        assert found == [reports[m.name] for m in regular]
        results.append(found)
    assert results[0] == results[1]
    gone = next(r for r in results[1] if r.path == "A/GONE")
    assert gone.codes() == ("file.unreadable",)
    assert gone.verdict is Verdict.SUSPICIOUS


@pytest.mark.usefixtures("small_pool")
def test_pool_progress_ends_at_the_total(tmp_path: Path) -> None:
    root = tmp_path / "medium"
    planted = _tree(root)
    seen: list[Progress] = []
    scan_paths([root], workers=2, handlers=[(Progress, seen.append)])
    scans = [s for s in seen if s.stage == "scan"]
    assert scans[-1] == Progress(stage="scan", done=planted["regular"], total=planted["regular"])
    assert [s.done for s in scans] == sorted(s.done for s in scans)


def test_medium_findings_are_those_of_the_layout_check(tmp_path: Path) -> None:
    # scan_paths leaves DICOM files out of the medium checks when no DICOMDIR or autorun.inf is there to
    # judge them against; the full check over every file must agree, with and without those two.
    root = tmp_path / "medium"
    _tree(root)
    os.remove(root / "A" / "FIFO")  # scan_medium_layout opens what it lists; a FIFO would block it
    for extra in (None, "AUTORUN.INF", "DICOMDIR"):
        if extra == "AUTORUN.INF":
            (root / "A" / "autorun.inf").write_bytes(b"[autorun]\r\nopen=IM0000\r\n")
            (root / "A" / "IM0000").write_bytes(part10())
        elif extra == "DICOMDIR":
            (root / "D" / "DICOMDIR").write_bytes(part10())  # a File-set that references nothing
        report = scan_paths([root], workers=1)
        assert report.medium_findings == scan_medium_layout(root)
        codes = {f.code for f in report.medium_findings}
        assert ("medium.autorun-dicom" in codes) is (extra is not None)
        assert ("medium.unreferenced" in codes) is (extra == "DICOMDIR")
