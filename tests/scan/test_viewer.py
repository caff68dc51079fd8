"""dcmseal's own offline viewer on a medium: known by SHA-256 and clean; changed by one byte, flagged as before."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from dcmseal.media.webviewer import BUNDLE_DIR
from dcmseal.scan import Finding, Verdict, scan_medium_layout, scan_paths
from dcmseal.scan.viewer import KnownBundle, find_viewers, known_bundle, load_bundle
from tests.cli.runner import run_dcmseal
from tests.media.conftest import encrypted_medium
from tests.pydicom_data import pydicom_file
from tests.viewer_bundle import require_viewer_bundle

#: What scan says of any other HTML and JavaScript outside the File-set (and of a changed viewer).
ACTIVE = {"medium.html", "medium.script"}


@pytest.fixture(scope="module")
def bundle() -> KnownBundle:
    require_viewer_bundle()
    found = known_bundle()
    assert found is not None
    return found


def _codes(findings: list[dict[str, object]]) -> set[str]:
    return {str(f["code"]) for f in findings}


@pytest.mark.parametrize("output_format", ["iso", "dir"])
def test_a_burned_medium_scans_clean_and_one_changed_byte_is_flagged(
    output_format: str, tmp_path: Path, bundle: KnownBundle
) -> None:
    sources = [pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")]
    medium = encrypted_medium(tmp_path, sources, output_format=output_format)
    run = run_dcmseal("scan", medium, "--json", home=tmp_path)
    assert run.code == 0, run.stderr
    report = run.json()
    assert report["verdict"] == "clean"
    assert {f["verdict"] for f in report["files"]} == {"clean"}
    assert "medium.viewer" in _codes(report["medium_findings"])
    assert not ACTIVE & _codes(report["medium_findings"])
    by_path = {f["path"]: f for f in report["files"]}
    assert [f["code"] for f in by_path["INDEX.HTM"]["findings"]] == ["file.viewer"]
    if output_format == "dir":
        # What `dcmseal import` checks of the medium as a whole: nothing to raise a Security Alert for.
        assert [f.code for f in scan_medium_layout(medium) if f.severity is not Verdict.CLEAN] == []

    # One byte of VIEWER.JS changed (in the folder, or inside the image): the bundle is no longer known.
    script = (BUNDLE_DIR / "VIEWER" / "VIEWER.JS").read_bytes()
    if output_format == "dir":
        target, data = medium / "VIEWER" / "VIEWER.JS", bytearray(script)
        at = 1000
    else:
        target, data = medium, bytearray(medium.read_bytes())
        at = data.find(script[:4096]) + 1000
        assert data.count(script[:4096]) == 1
    data[at] ^= 0x01
    target.write_bytes(bytes(data))
    run = run_dcmseal("scan", medium, "--json", home=tmp_path)
    assert run.code == 4, run.stderr
    report = run.json()
    assert report["verdict"] == "suspicious"
    codes = _codes(report["medium_findings"])
    assert codes >= ACTIVE
    assert "medium.viewer" not in codes
    assert {f["path"]: f["verdict"] for f in report["files"]}["INDEX.HTM"] == "suspicious"


def test_only_files_named_and_sized_as_the_bundle_are_hashed(bundle: KnownBundle) -> None:
    sizes = {name: size for name, (size, _sha) in bundle.files.items()}
    digests = {name: sha for name, (_size, sha) in bundle.files.items()}
    names = [f"DICOM/PAT{i:05d}/IM{i:06d}" for i in range(5000)] + list(bundle.files)
    hashed: list[str] = []

    def digest_of(name: str) -> str:
        hashed.append(name)
        return digests[name.upper()]

    matches = find_viewers(
        names, size_of=lambda name: sizes.get(name.upper(), 7), digest_of=digest_of, bundle=bundle
    )
    assert [m.root for m in matches] == [""]
    assert matches[0].names == frozenset(bundle.files)
    assert sorted(hashed) == sorted(bundle.files)

    hashed.clear()  # a size that differs: nothing is read at all
    matches = find_viewers(names, size_of=lambda name: 7, digest_of=digest_of, bundle=bundle)
    assert matches == []
    assert hashed == []


def test_no_bundle_built_recognises_nothing(tmp_path: Path, bundle: KnownBundle) -> None:
    assert load_bundle(tmp_path / "not-built") is None
    (tmp_path / "empty").mkdir()
    assert load_bundle(tmp_path / "empty") is None
    assert find_viewers(list(bundle.files), size_of=len, digest_of=str, bundle=None) == []


def test_without_a_bundle_the_viewer_is_flagged_as_before(
    tmp_path: Path, bundle: KnownBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    medium = tmp_path / "medium"
    shutil.copytree(BUNDLE_DIR, medium)
    assert _codes_of(scan_medium_layout(medium)) == {"medium.viewer"}
    # An installation without the package data (viewer not built) knows no bundle.
    for module in ("dcmseal.scan.medium", "dcmseal.scan.tree"):
        monkeypatch.setattr(f"{module}.known_bundle", lambda: None)
    assert _codes_of(scan_medium_layout(medium)) >= ACTIVE
    assert scan_paths([medium]).verdict is Verdict.SUSPICIOUS


def _codes_of(findings: Sequence[Finding]) -> set[str]:
    return {f.code for f in findings if f.code != "medium.outside-fileset"}


def test_the_hashes_come_from_package_data_without_importing_media(bundle: KnownBundle) -> None:
    # In a fresh interpreter: reading the package data must not run dcmseal.media (the layers forbid it).
    code = (
        "import sys; from dcmseal.scan.viewer import known_bundle; b = known_bundle(); "
        "print(b is not None, 'dcmseal.media' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["True", "False"]
    assert known_bundle() is known_bundle()  # hashed once per process
