"""The viewer on the medium, seen from Python: burn puts it there (or not), open leaves it out, plain media."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.audit import FileSink
from dcmseal.cms import is_enveloped_data
from dcmseal.errors import DcmsealError
from dcmseal.keys.registry import Registry
from dcmseal.media import webviewer
from dcmseal.media.burn import BurnRequest, burn
from dcmseal.media.open import OpenRequest, open_medium
from tests.cli.conftest import Invoke, invoke
from tests.part10.dicomfiles import FAST_ITERATIONS
from tests.viewer.conftest import VIEWER_PASSWORD, burn_medium, sample

__all__ = ["invoke"]  # the in-process CLI fixture of tests/cli

_VIEWER_NAMES = {"INDEX.HTM", "VIEWER/VIEWER.CSS", "VIEWER/VIEWER.JS"}


def _names(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_burn_adds_the_viewer_and_open_leaves_it_out(viewer_tree: Path, tmp_path: Path) -> None:
    result, folder = burn_medium(tmp_path / "burn", [sample("CT_small.dcm"), sample("MR_small.dcm")])
    assert result.viewer
    assert _names(folder) >= _VIEWER_NAMES
    readme = (folder / "README.TXT").read_text()
    assert "open INDEX.HTM in a" in readme
    assert "INDEX.HTM" in result.cover_letter
    assert (folder / "INDEX.HTM").read_bytes() == (webviewer.BUNDLE_DIR / "INDEX.HTM").read_bytes()
    opened = open_medium(
        OpenRequest(
            medium=tmp_path / "burn" / "medium.iso",
            out=tmp_path / "opened",
            operator="viewer-test",
            passwords=(VIEWER_PASSWORD.encode(),),
        ),
        audit=FileSink(tmp_path / "open-audit.log"),
    )
    # The viewer and README.TXT are outside the File-set: skipped, never failures.
    assert opened.failed == ()
    skipped = {f.path for f in opened.files if f.status == "skipped"}
    assert skipped == _VIEWER_NAMES | {"README.TXT"}
    assert sum(f.status == "opened" for f in opened.files) == 3  # DICOMDIR + 2 instances
    assert not _VIEWER_NAMES & _names(tmp_path / "opened")


def test_no_viewer_leaves_it_out(tmp_path: Path) -> None:
    result, folder = burn_medium(tmp_path / "burn", [sample("CT_small.dcm")], viewer=False)
    assert not result.viewer
    assert not _VIEWER_NAMES & _names(folder)
    assert "INDEX.HTM" not in (folder / "README.TXT").read_text()


def test_missing_bundle_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webviewer, "BUNDLE_DIR", tmp_path / "no-bundle")
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    request = BurnRequest(
        sources=(str(sample("CT_small.dcm")),),
        out=tmp_path / "medium.iso",
        operator="viewer-test",
        password=VIEWER_PASSWORD.encode(),
        iterations=FAST_ITERATIONS,
    )
    with pytest.raises(DcmsealError) as caught:
        burn(request, registry=registry, audit=FileSink(tmp_path / "audit.log"))
    registry.close()
    assert caught.value.message == "viewer bundle not built: run `make viewer`, or burn with --no-viewer"
    assert not (tmp_path / "medium.iso").exists()


def test_viewer_names_are_iso_level1(viewer_tree: Path) -> None:
    names = [name for _source, name in webviewer.viewer_files()]
    assert names[0] == "INDEX.HTM"
    assert set(names) == _VIEWER_NAMES


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``$XDG_DATA_HOME`` (the registry and the audit log of the CLI go there)."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "dcmseal"


def test_cli_no_encrypt_burns_a_plain_general_purpose_medium(
    invoke: Invoke, tmp_path: Path, data_home: Path
) -> None:
    out = tmp_path / "plain"
    result = invoke(
        "burn",
        sample("CT_small.dcm"),
        "--out",
        out,
        "--format",
        "dir",
        "--no-encrypt",
        "--no-viewer",
        "--json",
    )
    assert result.code == 0, result.everything
    document = result.json()
    assert document["profile"] == "STD-GEN-USB-JPEG"
    assert (document["encrypted"], document["viewer"]) == (False, False)
    assert document["recipients"] == []
    assert document["summary"]["pbkdf2_derivations"] == 0
    assert "NOT encrypted" in result.stderr_flat  # the warning
    dicomdir = (out / "DICOMDIR").read_bytes()
    assert dicomdir[128:132] == b"DICM"
    assert not is_enveloped_data(dicomdir[:32])
    image = next(p for p in out.rglob("IM*") if p.is_file())
    assert dcmread(image).PatientName == "CompressedSamples^CT1"
    assert (out / "README.TXT").read_text().startswith("DICOM MEDIUM - NOT ENCRYPTED")
    assert not (out / "INDEX.HTM").exists()
    # The registry records the medium and the audit trail has its Export event, as for a secure medium.
    registry = Registry.open(None)  # the default SQLite file under $XDG_DATA_HOME
    try:
        details = registry.get_medium(document["medium_id"])
    finally:
        registry.close()
    assert (details.profile, details.file_count, details.recipients) == ("STD-GEN-USB-JPEG", 1, ())
    assert document["medium_id"] in (data_home / "audit.log").read_text()


def test_cli_no_encrypt_accepts_the_general_purpose_profile_name(
    invoke: Invoke, tmp_path: Path, data_home: Path
) -> None:
    result = invoke(
        "burn",
        sample("CT_small.dcm"),
        "--out",
        tmp_path / "m.iso",
        "--no-encrypt",
        "--profile",
        "STD-GEN-CD",
        "--json",
    )
    assert result.code == 0, result.everything
    assert json.loads(result.stdout)["profile"] == "STD-GEN-CD"


def test_cli_no_encrypt_refuses_a_password(invoke: Invoke, tmp_path: Path, data_home: Path) -> None:
    secret = tmp_path / "password.txt"
    secret.write_text("Kestrel-amber-Lantern-orbit-velvet\n")
    result = invoke(
        "burn", sample("CT_small.dcm"), "--out", tmp_path / "m.iso", "--no-encrypt", "--password-file", secret
    )
    assert result.code == 2
    assert "--no-encrypt burns a plain medium" in result.stderr_flat


def test_index_htm_is_offline_by_construction(viewer_tree: Path) -> None:
    html = (webviewer.BUNDLE_DIR / "INDEX.HTM").read_text("utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy is not None
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";") if d.strip())
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'none'"
    assert directives["form-action"] == "'none'"
    assert "http" not in directives["script-src"]
    assert "'unsafe-inline'" not in policy.group(1)
    assert "'unsafe-eval'" not in policy.group(1)  # only 'wasm-unsafe-eval', for the codecs
    # The page names no resource itself: its one inline script (allowed by its hash, nothing else inline) loads
    # the assets from the medium, in the case of the page's own name.
    assert re.findall(r'(?:src|href)="([^"]*)"', html) == []
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert directives["script-src"].split() == ["'self'", "file:", f"'sha256-{digest}'", "'wasm-unsafe-eval'"]
    for name in ("VIEWER/VIEWER.JS", "VIEWER/VIEWER.CSS", "viewer/viewer.js", "viewer/viewer.css"):
        assert f'"{name}"' in scripts[0]
