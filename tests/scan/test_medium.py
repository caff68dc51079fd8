"""Media as a whole (folders, ISO images, zips): autorun, executables beside the File-set, unreferenced files."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pycdlib
import pytest

from dcmseal.events import Progress
from dcmseal.scan import Finding, Verdict, scan_medium_layout, scan_paths
from tests.pydicom_data import pydicom_file
from tests.scan.corpus import PE_HEADER, part10, pe_bytes
from tests.viewer_bundle import require_viewer_bundle

FILESET = pydicom_file("CT_small.dcm").parent / "dicomdirtests"
AUTORUN = b"[autorun]\r\nopen=77654033\\CT2\\17106\r\nicon=viewer.ico\r\n"


@pytest.fixture
def medium(tmp_path: Path) -> Path:
    """pydicom's File-set (DICOMDIR + 3 patients), with nothing else."""
    root = tmp_path / "medium"
    root.mkdir()
    shutil.copy(FILESET / "DICOMDIR", root / "DICOMDIR")
    for patient in ("77654033", "98892001", "98892003"):
        shutil.copytree(FILESET / patient, root / patient)
    return root


def _codes(findings: Sequence[Finding]) -> list[str]:
    return [f.code for f in findings]


def test_plain_fileset_has_no_medium_findings(medium: Path) -> None:
    assert scan_medium_layout(medium) == ()
    report = scan_paths([medium])
    assert report.medium_findings == ()
    assert len(report.files) == 32
    assert report.count(Verdict.MALICIOUS) == 0


def test_autorun_and_executable_beside_the_fileset(medium: Path) -> None:
    (medium / "AUTORUN.INF").write_bytes(AUTORUN)
    (medium / "SETUP.EXE").write_bytes(pe_bytes(total=1024))
    (medium / "VIEWER").mkdir()
    (medium / "VIEWER" / "DATA.BIN").write_bytes(
        pe_bytes(total=1024)
    )  # an executable by content, not by name
    (medium / "RUN.LNK").write_bytes(b"L\x00\x00\x00")
    (medium / "INDEX.HTM").write_bytes(b"<html><body>viewer</body></html>")
    (medium / "README.TXT").write_bytes(b"Patient CD\r\n")
    findings = scan_medium_layout(medium)
    codes = _codes(findings)
    assert codes.count("medium.executable") == 2
    assert {
        "medium.autorun",
        "medium.autorun-dicom",
        "medium.shortcut",
        "medium.html",
        "medium.outside-fileset",
    } <= set(codes)
    autorun_dicom = next(f for f in findings if f.code == "medium.autorun-dicom")
    assert autorun_dicom.severity is Verdict.MALICIOUS  # autorun launching a DICOM file: how PE/DICOM runs
    report = scan_paths([medium])
    assert report.verdict is Verdict.MALICIOUS
    assert next(f for f in report.files if f.path == "SETUP.EXE").verdict is Verdict.SUSPICIOUS


def test_unreferenced_and_missing_files(medium: Path) -> None:
    (medium / "77654033" / "CT2" / "EXTRA").write_bytes(part10())
    (medium / "98892003" / "MR1" / "4919").unlink()
    codes = _codes(scan_medium_layout(medium))
    assert codes == ["medium.unreferenced", "medium.missing"]


def test_hidden_files_and_symlinks_are_seen(medium: Path) -> None:
    (medium / ".hidden.exe").write_bytes(PE_HEADER)
    (medium / "link").symlink_to("/etc/passwd")
    codes = _codes(scan_medium_layout(medium))
    assert "medium.symlink" in codes
    assert "medium.executable" in codes


def _iso(tmp_path: Path, root: Path) -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix().upper()
        if path.is_dir():
            iso.add_directory(f"/{relative}")
        else:
            iso.add_file(str(path), f"/{relative}{'' if '.' in path.name else '.'};1")
    out = tmp_path / "medium.iso"
    iso.write(str(out))
    iso.close()
    return out


def test_iso_image(tmp_path: Path, medium: Path) -> None:
    (medium / "AUTORUN.INF").write_bytes(AUTORUN)
    (medium / "SETUP.EXE").write_bytes(pe_bytes(total=1024))
    (medium / "77654033" / "CT2" / "EVIL").write_bytes(part10(preamble=PE_HEADER))
    image = _iso(tmp_path, medium)
    report = scan_paths([image])
    names = {f.path: f for f in report.files}
    assert names["77654033/CT2/EVIL"].verdict is Verdict.MALICIOUS
    assert names["DICOMDIR"].kind == "dicom"
    codes = _codes(report.medium_findings)
    assert {"medium.autorun", "medium.autorun-dicom", "medium.executable", "medium.unreferenced"} <= set(
        codes
    )


def test_zip_archive(tmp_path: Path, medium: Path) -> None:
    (medium / "SETUP.EXE").write_bytes(pe_bytes(total=1024))
    archive = tmp_path / "medium.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(medium.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(medium).as_posix())
    report = scan_paths([archive])
    assert len(report.files) == 33
    assert _codes(report.medium_findings) == ["medium.executable", "medium.outside-fileset"]
    assert report.count(Verdict.MALICIOUS) == 0


def test_dicom_file_with_zip_appended_is_a_file_not_an_archive(tmp_path: Path) -> None:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("x.txt", b"x")
    polyglot = tmp_path / "poly.dcm"
    polyglot.write_bytes(part10() + buffer.getvalue())
    report = scan_paths([polyglot])
    assert [f.path for f in report.files] == [str(polyglot)]
    assert report.verdict is Verdict.MALICIOUS


def test_pool_and_serial_agree(tmp_path: Path) -> None:
    import dcmseal.scan.tree as tree

    root = tmp_path / "many"
    root.mkdir()
    for i in range(60):
        (root / f"IM{i:04d}").write_bytes(part10(preamble=PE_HEADER if i % 7 == 0 else bytes(128)))
    serial = scan_paths([root], workers=1)
    old = tree.MIN_FILES_FOR_POOL
    tree.MIN_FILES_FOR_POOL = 10
    try:
        pooled = scan_paths([root], workers=2)
    finally:
        tree.MIN_FILES_FOR_POOL = old
    assert pooled == serial
    assert serial.count(Verdict.MALICIOUS) == 9


def test_progress_and_missing_input(tmp_path: Path, medium: Path) -> None:
    seen: list[Progress] = []
    scan_paths([medium], handlers=[(Progress, seen.append)])
    assert seen[-1] == Progress(stage="scan", done=32, total=32)
    from dcmseal.errors import InputError

    with pytest.raises(InputError, match="no such file"):
        scan_paths([tmp_path / "nope"])


def _add_viewer(root: Path) -> None:
    """dcmseal's viewer bundle (package data, `make viewer`) copied into ``root`` as burn puts it."""
    from dcmseal.media.webviewer import BUNDLE_DIR

    require_viewer_bundle()
    shutil.copytree(BUNDLE_DIR, root, dirs_exist_ok=True)


def test_the_known_viewer_is_a_note_in_a_folder_a_zip_and_an_image(tmp_path: Path, medium: Path) -> None:
    _add_viewer(medium)
    assert _codes(scan_medium_layout(medium)) == ["medium.viewer"]
    archive = tmp_path / "medium.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(medium.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(medium).as_posix())
    for scanned in (medium, archive, _iso(tmp_path, medium)):
        report = scan_paths([scanned])
        # (pydicom's File-set itself has stray preamble bytes: its files are not all clean)
        assert _codes(report.medium_findings) == ["medium.viewer"], scanned
        assert report.medium_findings[0].severity is Verdict.CLEAN
        viewer = {f.path: f.codes() for f in report.files if f.codes() == ("file.viewer",)}
        assert set(viewer) == {"INDEX.HTM", "VIEWER/VIEWER.CSS", "VIEWER/VIEWER.JS"}, scanned


def test_a_viewer_in_a_subfolder_is_known_and_an_added_script_is_not(medium: Path) -> None:
    _add_viewer(medium / "DISC1")
    (medium / "DISC1" / "VIEWER" / "EXTRA.JS").write_bytes(b"fetch('https://example.invalid/')\n")
    findings = scan_medium_layout(medium)
    assert _codes(findings) == ["medium.viewer", "medium.script", "medium.outside-fileset"]
    assert findings[0].message.startswith("DISC1/INDEX.HTM and its 2 assets: dcmseal offline viewer, known")
    assert "DISC1/VIEWER/EXTRA.JS" in findings[1].message


def test_an_incomplete_or_renamed_viewer_is_flagged_as_any_html(medium: Path) -> None:
    _add_viewer(medium)
    (medium / "VIEWER" / "VIEWER.CSS").unlink()  # INDEX.HTM would load whatever is put there
    assert _codes(scan_medium_layout(medium)) == ["medium.html", "medium.script", "medium.outside-fileset"]
    _add_viewer(medium)
    (medium / "INDEX.HTM").rename(medium / "START.HTM")
    assert _codes(scan_medium_layout(medium)) == ["medium.html", "medium.script", "medium.outside-fileset"]
