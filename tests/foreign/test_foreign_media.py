"""Every foreign medium through ``scan`` and ``open``: where every file ended, and scan agreeing with open."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.audit import FileSink
from dcmseal.errors import InputError
from dcmseal.intake import listing as listing_module
from dcmseal.media.open import OpenRequest, OpenResult, open_medium
from dcmseal.reader.isofiles import extract_iso
from dcmseal.scan import Verdict, scan_medium_layout, scan_paths
from dcmseal.scan.walker import UNPARSABLE_CODES
from tests.foreign.corpus import OPENABLE, ForeignMedium
from tests.media.conftest import dcmftest_answers, medium_files

REFUSED = ("udf-empty", "zip-slip", "hostile-iso", "truncated-iso")


def _open(medium: Path, out: Path) -> OpenResult:
    request = OpenRequest(medium=medium, out=out, operator="foreign-tester")
    return open_medium(request, audit=FileSink(out.parent / "open-audit.log"))


def _uids(root: Path) -> set[str]:
    return {
        str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in medium_files(root)
        if p.name != "DICOMDIR"
    }


@pytest.mark.parametrize("name", OPENABLE)
def test_open_puts_every_file_in_exactly_one_place(
    foreign_corpus: dict[str, ForeignMedium], name: str, tmp_path: Path, dcmftest_bin: str
) -> None:
    medium = foreign_corpus[name]
    out = tmp_path / "opened"

    result = _open(medium.path, out)

    found = {f.path: f.status for f in result.files}
    assert len(found) == len(result.files)  # one entry per file
    assert found == medium.expected
    for f in result.files:
        if f.status in ("quarantined", "skipped", "failed"):
            assert f.reason, f
            assert "\n" not in f.reason
            assert "Traceback" not in f.reason
            assert f.file_id is None
    in_fileset = _uids(out)
    assert in_fileset == medium.instances
    assert not in_fileset & medium.excluded
    # A conformant File-set: every instance has a File ID the DICOMDIR references, in a syntax DCMTK reads.
    placed = {f.file_id for f in result.files if f.status in ("copied", "opened") and f.file_id}
    assert {p.relative_to(out).as_posix() for p in medium_files(out)} == placed | {"DICOMDIR"}
    dicomdir = dcmread(out / "DICOMDIR")
    referenced = {
        "/".join(r.ReferencedFileID) for r in dicomdir.DirectoryRecordSequence if "ReferencedFileID" in r
    }
    assert referenced == placed - {"DICOMDIR"}
    assert set(dcmftest_answers(dcmftest_bin, medium_files(out)).values()) == {"yes"}
    document = result.to_json()
    summary = document["summary"]
    assert isinstance(summary, dict)
    assert sum(summary[s] for s in ("opened", "copied", "quarantined", "skipped", "failed")) == len(found)


@pytest.mark.parametrize("name", REFUSED)
def test_open_refuses_a_hostile_structure_and_scan_reports_it(
    foreign_corpus: dict[str, ForeignMedium], name: str, tmp_path: Path
) -> None:
    medium = foreign_corpus[name]
    out = tmp_path / "opened"

    with pytest.raises(InputError) as refused:
        _open(medium.path, out)

    assert medium.refused is not None
    assert medium.refused in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not out.exists()
    report = scan_paths([medium.path], workers=1)
    codes = {code for f in report.files for code in f.codes()} | {f.code for f in report.medium_findings}
    assert medium.scan_codes <= codes
    assert report.verdict is not Verdict.CLEAN


@pytest.mark.parametrize("name", OPENABLE)
def test_scan_finds_what_is_on_the_medium(foreign_corpus: dict[str, ForeignMedium], name: str) -> None:
    medium = foreign_corpus[name]

    report = scan_paths([medium.path], workers=1)

    codes = {code for f in report.files for code in f.codes()} | {f.code for f in report.medium_findings}
    assert medium.scan_codes <= codes, codes
    by_path = {f.path: f for f in report.files}
    # every DICOM file open copies is DICOM to the scanner too (data sets without File Meta included)
    for path, status in medium.expected.items():
        if status == "copied" and path != "DICOMDIR":
            assert by_path[path].kind == "dicom", (path, by_path[path])
        if status == "quarantined":  # malicious, or a data set that does not parse
            report_of = by_path[path]
            assert report_of.verdict is Verdict.MALICIOUS or set(report_of.codes()) & UNPARSABLE_CODES, (
                report_of
            )
    if medium.scan_codes or any(s == "quarantined" for s in medium.expected.values()):
        assert report.verdict is not Verdict.CLEAN


def test_the_layout_check_counts_a_data_set_without_file_meta_as_dicom(
    foreign_corpus: dict[str, ForeignMedium],
) -> None:
    """The import's layout check (scan_medium_layout) and scan_paths agree on a bare data set the DICOMDIR omits."""
    root = foreign_corpus["dcmmkdir-folder"].path

    layout = {f.message for f in scan_medium_layout(root) if f.code == "medium.unreferenced"}
    scanned = {
        f.message for f in scan_paths([root], workers=1).medium_findings if f.code == "medium.unreferenced"
    }

    assert layout == scanned
    assert any("RAW1" in message for message in layout)


def test_what_is_read_out_of_archives_is_bounded(
    foreign_corpus: dict[str, ForeignMedium], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members past the medium's bound are failed, named, and not read; the run goes on with the rest."""
    monkeypatch.setattr(listing_module, "DEFAULT_MAX_EXTRACT_BYTES", 100_000)
    medium = foreign_corpus["portal-zip"]

    result = _open(medium.path, tmp_path / "opened")

    bounded = [f for f in result.files if f.reason and "more than 100000 bytes" in f.reason]
    assert bounded
    assert all(f.status == "failed" for f in bounded)
    assert len(result.files) == len(medium.expected)
    assert any(f.status == "copied" and f.file_id for f in result.files)


def test_extraction_leaves_a_rock_ridge_link_out_and_takes_the_rest(
    foreign_corpus: dict[str, ForeignMedium], tmp_path: Path
) -> None:
    """The import extracts images (reader.isofiles.extract_iso, the same walker): a link is neither made nor fatal."""
    extracted = extract_iso(foreign_corpus["dcmmkdir-iso"].path, tmp_path / "x")

    names = {p.relative_to(tmp_path / "x").as_posix() for p in extracted}
    assert "DICOM/LINK" not in names
    assert not any(p.is_symlink() for p in (tmp_path / "x").rglob("*"))
    assert {"DICOMDIR", "DICOM/ST1/SE1/IM1", "DICOM/ST1/SE1/RAW1"} <= names
