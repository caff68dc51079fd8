"""The viewer on a burned medium, end to end in headless Chromium (playwright-core, Debian's chromium).

Media are burned from pydicom's samples, the ISO is extracted with our reader, INDEX.HTM is opened from file://,
the folder is chosen through the <input webkitdirectory> and the password typed; viewer/test/browser.mjs reports
what the page showed (study list, canvas pixels read back with getImageData, state, counters) as JSON.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography import x509
from pydicom import dcmread
from pydicom.pixels.processing import apply_color_lut

from dcmseal.cms import is_enveloped_data
from dcmseal.media.profiles import Profile
from dcmseal.reader.isofiles import list_iso
from tests.documents.samples import minimal_pdf
from tests.peers.tools import require_tool
from tests.viewer.conftest import (
    PALETTE_PATIENT,
    SAMPLES,
    TEST_CERT,
    TEST_KEY,
    VIEWER_PASSWORD,
    Browser,
    artifacts_dir,
    burn_medium,
    copy_tree,
    sample,
)
from tests.viewer.reference import canvas_rgb, grey_reference, mean_abs_diff

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encrypted_medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """The CT, MR, US, RGB and JPEG lossless samples on one encrypted ISO (DVD-JPEG), extracted; file IDs by modality."""
    work = tmp_path_factory.mktemp("viewer-encrypted")
    result, folder = burn_medium(work, [sample(name) for name in SAMPLES.values()])
    assert result.profile is Profile.DVD_JPEG
    by_origin = {Path(f.origin).name: f.file_id for f in result.files}
    return work / "medium.iso", folder, {key: by_origin[name] for key, name in SAMPLES.items()}


@pytest.fixture(scope="module")
def opened(browser: Browser, encrypted_medium: tuple[Path, Path, dict[str, str]]) -> dict[str, Any]:
    """One browser session over the encrypted medium: the list, each modality's image, scrolling, a window drag."""
    _iso, folder, _ids = encrypted_medium
    return browser.run(
        "encrypted",
        folder,
        password=VIEWER_PASSWORD,
        artifacts=str(artifacts_dir()),
        select=["CT", "MR", "US", "OT", f"US@{PALETTE_PATIENT}"],
        scroll="US",
        drag="CT",
    )


def _clean_console(result: dict[str, Any]) -> None:
    assert result["pageErrors"] == []
    # Nothing in the console on a normal load: not even a missing file (the loader picks the case that exists).
    assert result["console"] == []
    # Nothing but the medium's own files and blob: URLs was requested: no network, no remote resource. (Chromium's
    # built-in PDF viewer loads from chrome-extension:// and chrome:// inside the browser.)
    assert {url.split(":", 1)[0] for url in result["requests"]} <= {
        "file",
        "blob",
        "data",
        "chrome",
        "chrome-extension",
    }
    assert not [
        url for url in result["requests"] if url.startswith(("http:", "https:", "ws:", "wss:", "ftp:"))
    ]


def test_viewer_files_have_iso_level1_names(encrypted_medium: tuple[Path, Path, dict[str, str]]) -> None:
    iso, folder, _ids = encrypted_medium
    names = {entry.iso_path for entry in list_iso(iso)}
    assert {"/INDEX.HTM;1", "/VIEWER", "/VIEWER/VIEWER.JS;1", "/VIEWER/VIEWER.CSS;1"} <= names
    assert sorted(p.name for p in (folder / "VIEWER").iterdir()) == ["VIEWER.CSS", "VIEWER.JS"]


def test_lowercase_names_load_without_console_errors(
    browser: Browser, encrypted_medium: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """Linux shows an ISO 9660 disc without Rock Ridge in lower case: index.htm loads viewer/viewer.js."""
    _iso, folder, _ids = encrypted_medium
    lower = tmp_path / "disc"
    for path in sorted(folder.rglob("*")):
        target = lower / path.relative_to(folder).as_posix().lower()
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    result = browser.run("lowercase", lower, index="index.htm", password=VIEWER_PASSWORD)
    _clean_console(result)
    assert result["state"] == "image"
    assert [u.rsplit("/", 2)[-2:] for u in result["requests"] if "viewer" in u.lower()] == [
        ["viewer", "viewer.css"],
        ["viewer", "viewer.js"],
    ]


def test_study_list_shows_patients_and_counts(opened: dict[str, Any]) -> None:
    _clean_console(opened)
    assert opened["afterFolder"] == "need-key"
    patients = {p["id"]: p for p in opened["final"]["patients"]}
    # Patient IDs of the samples; SC_rgb_jpeg_dcmd.dcm has none, and the DICOMDIR carries an invented one.
    assert {"1CT1", "4MR1", "204", "ID1", PALETTE_PATIENT} <= set(patients)
    assert len(patients) == 6
    assert patients["1CT1"]["name"] == "CompressedSamples, CT1"
    for patient in patients.values():
        assert [(s["series"], s["instances"]) for s in patient["studies"]] == [(1, 1)]
    modalities = sorted(
        se["modality"] for p in patients.values() for s in p["studies"] for se in s["seriesList"]
    )
    assert modalities == ["CT", "MR", "OT", "OT", "US", "US"]


def test_key_is_derived_once(opened: dict[str, Any]) -> None:
    counters = opened["final"]["dcmseal"]["stats"]
    assert counters["pbkdf2"] == 1
    assert counters["opened"] >= 5  # the DICOMDIR and the four images, all verified


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_grey_canvas_matches_the_python_reference(
    opened: dict[str, Any], encrypted_medium: tuple[Path, Path, dict[str, str]], modality: str
) -> None:
    image = opened["images"][modality]
    assert image["state"] == "image"
    assert image["integrity"] == "SHA-256 digest"
    ds = dcmread(sample(SAMPLES[modality]))
    assert image["sop"] == ds.SOPInstanceUID
    canvas = canvas_rgb(image["pixels"])
    expected = grey_reference(ds)
    assert canvas.shape[:2] == expected.shape
    # Grey: R = G = B.
    assert np.array_equal(canvas[..., 0], canvas[..., 1])
    assert np.array_equal(canvas[..., 0], canvas[..., 2])
    assert mean_abs_diff(canvas[..., 0], expected) < 1.0


def test_rgb_canvas_matches_the_pixels(opened: dict[str, Any]) -> None:
    canvas = canvas_rgb(opened["images"]["OT"]["pixels"])
    expected = dcmread(sample(SAMPLES["OT"])).pixel_array
    assert canvas.shape == expected.shape
    assert mean_abs_diff(canvas, expected) < 1.0


def test_palette_colour_canvas_matches_pydicom(opened: dict[str, Any]) -> None:
    image = opened["images"][f"US@{PALETTE_PATIENT}"]
    assert image["state"] == "image"
    ds = dcmread(sample(SAMPLES["PALETTE"]))
    expected = apply_color_lut(ds.pixel_array, ds)  # 16-bit entries
    assert mean_abs_diff(canvas_rgb(image["pixels"]), (expected >> 8).astype(np.uint8)) < 1.0


def test_jpeg_multiframe_renders_and_scrolls(opened: dict[str, Any]) -> None:
    us = opened["images"]["US"]
    assert us["overlay"].endswith("Frame 1/30")
    ds = dcmread(sample(SAMPLES["US"]))
    # The browser's JPEG decoder and pydicom's differ in IDCT and chroma upsampling, by a grey level or two.
    assert mean_abs_diff(canvas_rgb(us["pixels"]), ds.pixel_array[0]) < 3.0
    scroll = opened["scroll"]
    assert (scroll["before"]["frame"], scroll["after"]["frame"]) == ("0", "2")
    assert scroll["after"]["sop"] == scroll["before"]["sop"]
    after = canvas_rgb(scroll["after"]["pixels"])
    assert mean_abs_diff(after, canvas_rgb(scroll["before"]["pixels"])) > 0.5  # another frame is on screen
    assert mean_abs_diff(after, ds.pixel_array[2]) < 3.0


def test_dragging_changes_the_window(opened: dict[str, Any]) -> None:
    before = [float(v) for v in opened["drag"]["before"].split(",")]
    after = [float(v) for v in opened["drag"]["after"].split(",")]
    assert after[0] > before[0]
    assert after[1] > before[1]


def test_screenshots_are_saved(opened: dict[str, Any]) -> None:
    folder = artifacts_dir()
    assert (folder / "encrypted-study-list.png").stat().st_size > 10_000
    assert (folder / "encrypted-image-CT.png").stat().st_size > 10_000


def test_wrong_password_shows_the_error_and_nothing_else(
    browser: Browser, encrypted_medium: tuple[Path, Path, dict[str, str]]
) -> None:
    _iso, folder, _ids = encrypted_medium
    result = browser.run("wrong", folder, password="not-the-password", artifacts=str(artifacts_dir()))
    _clean_console(result)
    assert result["state"] == "wrong-key"
    assert result["error"].startswith("Wrong password")
    assert result["patients"] == []
    assert result["canvas"] == {"width": 0, "height": 0, "rendered": None}
    assert result["dcmseal"]["stats"]["opened"] == 0


def test_tampered_file_shows_the_integrity_error(
    browser: Browser, encrypted_medium: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _iso, folder, ids = encrypted_medium
    tampered = copy_tree(folder, tmp_path / "disc")
    target = tampered / ids["CT"]
    data = bytearray(target.read_bytes())
    assert is_enveloped_data(bytes(data[:32]))
    # A byte in the middle of the ciphertext: CBC garbles one block and flips a bit of the next, the padding
    # stays valid, so decryption succeeds and only the inner digest can tell.
    data[len(data) // 2] ^= 0x40
    target.write_bytes(bytes(data))
    result = browser.run(
        "tampered", tampered, password=VIEWER_PASSWORD, select=["MR"], artifacts=str(artifacts_dir())
    )
    _clean_console(result)
    # The CT series opens first (it is the first patient's): its file is marked damaged, nothing of it is drawn.
    assert result["state"] == "damaged"
    assert result["error"] is None
    assert "damaged or altered: integrity check failed (the SHA-256 digest does not match" in result["notice"]
    assert result["damaged"]
    assert result["canvas"]["rendered"] is None
    # The list is still there and the untouched files still open.
    assert len(result["patients"]) == 6
    assert result["images"]["MR"]["state"] == "image"


def test_plain_medium_opens_without_password_and_decodes_jpeg2000(browser: Browser, tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(minimal_pdf(text="Viewer test report"))
    # The PDF joins the only study of the DICOM sources (Encapsulated PDF, its own series).
    sources = [sample("SC_rgb_gdcm_KY.dcm"), report]
    result, folder = burn_medium(
        tmp_path / "plain", sources, password=None, output_format="dir", profile=Profile.USB_J2K
    )
    assert result.profile_name == "STD-GEN-USB-J2K"
    assert not is_enveloped_data((folder / "DICOMDIR").read_bytes()[:32])
    assert (folder / "README.TXT").read_text().startswith("DICOM MEDIUM - NOT ENCRYPTED")
    modalities = {f.origin: f for f in result.files}
    assert str(report) in modalities
    opened = browser.run("plain", folder, select=["OT", "DOC"], artifacts=str(artifacts_dir()))
    _clean_console(opened)
    assert opened["afterFolder"] != "need-key"
    assert "not encrypted" in opened["status"]
    image = opened["images"]["OT"]
    assert image["integrity"] == "not encrypted"
    # JPEG 2000 through OpenJPEG's WebAssembly, inlined in VIEWER.JS and allowed by the CSP ('wasm-unsafe-eval').
    ds = dcmread(sample("SC_rgb_gdcm_KY.dcm"))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"
    assert mean_abs_diff(canvas_rgb(image["pixels"]), ds.pixel_array) < 1.0
    assert opened["final"]["dcmseal"]["stats"]["pbkdf2"] == 0
    # The Encapsulated PDF goes to the browser's own PDF viewer through a blob: URL (no network, no plug-in).
    document = opened["images"]["DOC"]
    assert document["state"] == "document"
    assert document["document"]["src"].startswith(
        "blob:"
    )  # blob:null/... : a file:// page has an opaque origin
    assert document["document"]["link"] == document["document"]["src"]
    # Named by its Document Title (0042,0010), not by the blob's UUID.
    pdf_file = next(f for f in result.files if f.origin == str(report))
    title = str(dcmread(folder / pdf_file.file_id).DocumentTitle)
    assert title
    assert document["document"]["title"] == title
    assert document["document"]["heading"] == title
    assert document["document"]["save"].endswith(".pdf")
    assert title.split()[0] in document["document"]["save"]
    # A plain medium is never said to be decrypted.
    assert "decrypt" not in opened["status"]


def test_private_key_opens_a_certificate_only_medium(browser: Browser, tmp_path: Path) -> None:
    certificate = x509.load_pem_x509_certificate(TEST_CERT.read_bytes())
    _result, folder = burn_medium(
        tmp_path / "ktri", [sample("MR_small.dcm")], password=None, certificates=[certificate]
    )
    # KTRI with RSA PKCS#1 v1.5 (RFC 3370, what PS3.15 D.1 names): the viewer's BigInt RSA, no PBKDF2 at all.
    opened = browser.run("key", folder, keyfile=str(TEST_KEY))
    _clean_console(opened)
    assert opened["afterFolder"] == "need-key"
    assert opened["state"] == "image"
    assert opened["integrity"] == "SHA-256 digest"
    assert opened["dcmseal"]["stats"]["pbkdf2"] == 0
    expected = grey_reference(dcmread(sample("MR_small.dcm")))
    assert opened["canvas"]["width"] == expected.shape[1]


def test_12_bit_jpeg_extended_is_shown(browser: Browser, tmp_path: Path) -> None:
    """A 12-bit JPEG Extended (.4.51) CT, kept as it is by the burner, decoded in the page like DCMTK decodes it."""
    dcmcjpeg = require_tool("dcmcjpeg", "dcmtk")
    dcmdjpeg = require_tool("dcmdjpeg", "dcmtk")
    ds = dcmread(sample("CT_small.dcm"))
    values = ds.pixel_array.astype(np.int32)
    ds.PixelData = (
        ((values - values.min()) * 4095 // (values.max() - values.min())).astype(np.uint16).tobytes()
    )
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    native = tmp_path / "ct12.dcm"
    ds.save_as(native)
    lossy = tmp_path / "sources" / "ct12j.dcm"
    lossy.parent.mkdir()
    subprocess.run([dcmcjpeg, "+ee", native, lossy], check=True, capture_output=True)
    reference = tmp_path / "ct12d.dcm"
    subprocess.run([dcmdjpeg, lossy, reference], check=True, capture_output=True)
    assert dcmread(lossy).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51"
    result, folder = burn_medium(tmp_path / "burn", [lossy])
    # Kept as it is on the medium (DVD-JPEG allows it), so the page must decode it.
    assert result.profile is Profile.DVD_JPEG
    assert result.files[0].conversion is None
    opened = browser.run("jpeg12", folder, password=VIEWER_PASSWORD, firstPixels=True)
    _clean_console(opened)
    assert opened["state"] == "image"
    assert opened["integrity"] == "SHA-256 digest"
    canvas = canvas_rgb(opened["firstPixels"])
    expected = grey_reference(dcmread(reference))
    assert canvas.shape[:2] == expected.shape
    assert mean_abs_diff(canvas[..., 0], expected) < 1.0
