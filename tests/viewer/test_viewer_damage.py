"""Damaged and hostile media in the browser (issue 16 §1, issue 12 §1 and §6): damage never ends the session.

A ten-slice CT series is burned once; each test damages a copy of the extracted medium the way a scratched disc,
a bad copy or an attacker would, opens it in headless Chromium (viewer/test/browser.mjs) and asserts on what the
page showed: which files are marked, that the others show and scroll, that "wrong password" comes only from the
recipient check.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from pydicom import dcmread
from pydicom.uid import generate_uid

from dcmseal.cms import is_enveloped_data
from tests.peers.tools import require_tool
from tests.viewer.conftest import (
    TEST_CERT,
    VIEWER_PASSWORD,
    Browser,
    artifacts_dir,
    burn_medium,
    copy_tree,
    sample,
)

pytestmark = pytest.mark.slow

SLICES = 10


@pytest.fixture(scope="module")
def series_medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """An encrypted medium with one CT series of ten slices; the extracted folder and its image files in order."""
    work = tmp_path_factory.mktemp("viewer-damage")
    template = dcmread(sample("CT_small.dcm"))
    template.SeriesInstanceUID = generate_uid()
    sources = work / "sources"
    sources.mkdir()
    for index in range(SLICES):
        template.SOPInstanceUID = generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = index + 1
        template.save_as(sources / f"ct{index:02d}.dcm")
    result, folder = burn_medium(work / "burn", [sources])
    by_origin = {Path(f.origin).name: f.file_id for f in result.files}
    files = [folder / by_origin[f"ct{i:02d}.dcm"] for i in range(SLICES)]
    assert all(is_enveloped_data(p.read_bytes()[:32]) for p in files)
    return folder, files


def _damaged_copy(series_medium: tuple[Path, list[Path]], tmp_path: Path) -> tuple[Path, list[Path]]:
    folder, files = series_medium
    copy = copy_tree(folder, tmp_path / "disc")
    return copy, [copy / p.relative_to(folder) for p in files]


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def _clean(result: dict[str, Any]) -> None:
    assert result["pageErrors"] == []
    assert result["console"] == []


def test_last_byte_of_the_first_image_marks_that_file_only(
    browser: Browser, series_medium: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    folder, files = _damaged_copy(series_medium, tmp_path)
    _flip(
        files[0], -1
    )  # the padding block: before, "Wrong password ... Nothing has been shown." for the medium
    result = browser.run(
        "damaged-first", folder, password=VIEWER_PASSWORD, steps=3, artifacts=str(artifacts_dir())
    )
    _clean(result)
    # The session goes on: the list is there, the first instance is marked, not "wrong password".
    assert result["state"] == "damaged"
    assert result["error"] is None
    assert result["instance"] == "0"
    assert result["damaged"]
    assert "damaged or altered" in result["notice"]
    assert files[0].name in result["notice"]
    assert result["attributeRows"] >= 3  # what the DICOMDIR says of it, and why it is not shown
    assert result["integrity"].startswith("NOT SHOWN: damaged or altered")
    assert result["patients"][0]["studies"][0]["instances"] == SLICES
    # The DICOMDIR and 11 files are counted, not INDEX.HTM, VIEWER/* or README.TXT.
    assert result["dcmseal"]["files"] == SLICES + 1
    # Scrolling on shows the others.
    assert [s["instance"] for s in result["steps"]] == ["1", "2", "3"]
    assert all(s["state"] == "image" and not s["damaged"] for s in result["steps"])
    assert all(s["attributeRows"] > 10 for s in result["steps"])
    assert result["dcmseal"]["stats"]["pbkdf2"] == 1


@pytest.mark.parametrize("wheel", [False, True], ids=["keyboard", "wheel"])
def test_a_damaged_slice_in_the_middle_is_stepped_over_with_a_marker(
    browser: Browser, series_medium: tuple[Path, list[Path]], tmp_path: Path, wheel: bool
) -> None:
    folder, files = _damaged_copy(series_medium, tmp_path)
    _flip(files[2], len(files[2].read_bytes()) // 2, 0x40)  # the digest catches it
    result = browser.run("damaged-middle", folder, password=VIEWER_PASSWORD, steps=SLICES - 2, wheel=wheel)
    _clean(result)
    assert result["state"] == "image"
    shown = [s["instance"] for s in result["steps"]]
    # Instance 3 (index 2) is read ahead, found damaged and stepped over; scrolling reaches the end of the series.
    assert "2" not in shown or next(s for s in result["steps"] if s["instance"] == "2")["damaged"]
    assert shown[-1] == str(SLICES - 1)
    damage_lines = [s["seriesDamage"] for s in result["steps"] if s["seriesDamage"]]
    assert damage_lines
    assert "instance 3" in damage_lines[-1]
    assert files[2].name in damage_lines[-1]
    after = next(s for s in result["steps"] if s["instance"] == "3")
    assert "stepped over instance 3: not shown" in after["overlay"]
    assert all(s["attributeRows"] > 0 for s in result["steps"])
    damaged = result["steps"][-1]["dcmseal"]["damaged"]
    assert list(damaged) == ["/".join(files[2].relative_to(folder).parts).upper()]
    assert damaged[next(iter(damaged))].startswith(
        "damaged or altered: integrity check failed (the SHA-256 digest"
    )


def test_damaged_dicomdir_falls_back_to_the_files_and_names_it(
    browser: Browser, series_medium: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    folder, files = _damaged_copy(series_medium, tmp_path)
    dicomdir = folder / "DICOMDIR"
    _flip(dicomdir, len(dicomdir.read_bytes()) // 2, 0x10)
    _flip(files[5], -1)  # and one image: named in the list
    result = browser.run("damaged-dicomdir", folder, password=VIEWER_PASSWORD, artifacts=str(artifacts_dir()))
    _clean(result)
    assert result["dcmseal"]["listSource"] == "files"
    assert result["error"].startswith("The DICOMDIR is damaged or altered")
    assert "read" in result["error"]
    assert "files themselves" in result["error"]
    study = result["patients"][0]["studies"][0]
    assert study["instances"] == SLICES - 1
    assert result["patients"][0]["id"] == "1CT1"
    assert "DICOMDIR" in result["damagedFiles"]
    assert files[5].name in result["damagedFiles"]
    assert result["state"] == "image"


def test_damaged_key_block_of_the_dicomdir_is_not_a_wrong_password(
    browser: Browser, series_medium: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    folder, _files = _damaged_copy(series_medium, tmp_path)
    dicomdir = folder / "DICOMDIR"
    data = dicomdir.read_bytes()
    # The wrapped key is the first OCTET STRING of 48 bytes (04 30): flip a byte of it.
    at = data.index(b"\x04\x30") + 10
    _flip(dicomdir, at)
    result = browser.run("damaged-keyblock", folder, password=VIEWER_PASSWORD)
    _clean(result)
    assert result["state"] == "image"
    assert result["dcmseal"]["listSource"] == "files"
    assert "does not open with the medium's key" in result["error"]
    # The wrong password is still one, decided by the recipients of up to three files.
    wrong = browser.run("damaged-keyblock-wrong", folder, password="not-the-password")
    assert wrong["state"] == "wrong-key"
    assert wrong["error"].startswith("Wrong password")


def test_password_on_a_certificate_only_medium_says_it_opens_with_a_private_key(
    browser: Browser, tmp_path: Path
) -> None:
    certificate = x509.load_pem_x509_certificate(TEST_CERT.read_bytes())
    _result, folder = burn_medium(
        tmp_path / "ktri", [sample("MR_small.dcm")], password=None, certificates=[certificate]
    )
    result = browser.run("key-kind", folder, password="anything at all")
    _clean(result)
    assert result["state"] == "key-kind"
    assert result["error"] == (
        "This medium opens with a private key (the key file of a recipient certificate), not a password."
    )
    assert result["dcmseal"]["stats"]["pbkdf2"] == 0


def test_the_password_field_is_not_a_form_and_is_emptied(
    browser: Browser, series_medium: tuple[Path, list[Path]]
) -> None:
    folder, _files = series_medium
    result = browser.run("form", folder, password=VIEWER_PASSWORD, drop=True)
    _clean(result)
    assert result["keyStep"] == {
        "insideForm": False,
        "type": "password",
        "autocomplete": "off",
        "label": "Password",
    }
    assert result["passwordAfter"] == ""
    # The emulated drop: Chromium's file:// page cannot read it, and the page says what to do instead.
    drop = result["afterDrop"]
    assert drop["state"] == "drop-refused"
    assert "Choose folder" in drop["error"]
    assert "decrypted" not in result["status"]


def test_unprotected_file_is_refused_then_shown_marked_not_verified(
    browser: Browser, series_medium: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    openssl = require_tool("openssl", "openssl")
    folder, files = _damaged_copy(series_medium, tmp_path)
    # A bare DICOM file in an envelope (plain `openssl cms -encrypt`, no digest), in place of slice 2.
    plain = tmp_path / "plain.dcm"
    shutil.copyfile(sample("CT_small.dcm"), plain)
    subprocess.run(
        [openssl, "cms", "-encrypt", "-binary", "-aes256", "-in", plain, "-outform", "DER",
         "-out", files[1], "-pwri_password", VIEWER_PASSWORD],
        check=True, capture_output=True,
    )  # fmt: skip
    result = browser.run("unprotected", folder, password=VIEWER_PASSWORD, steps=1, unprotected=True)
    _clean(result)
    # Read ahead and refused, slice 2 is stepped over like a damaged one, and named.
    step = result["steps"][0]
    assert step["instance"] == "2"
    assert "instance 2" in step["seriesDamage"]
    assert "stepped over instance 2: not shown" in step["overlay"]
    assert list(step["dcmseal"]["damaged"].values()) == [
        "not shown: no integrity protection (no digest or signature)"
    ]
    assert result["unprotectedBox"] is True
    accepted = result["afterAccept"]
    assert accepted["state"] == "image"
    assert accepted["instance"] == "0"
    shown = result["acceptedNext"]
    assert shown["state"] == "image"
    assert not shown["damaged"]
    assert shown["integrity"] == (
        "integrity NOT verified: no DigestedData or SignedData inside (not conformant to PS3.15 D.1.1); "
        "shown only because you asked"
    )
    assert shown["notice"].startswith("Integrity NOT verified")
