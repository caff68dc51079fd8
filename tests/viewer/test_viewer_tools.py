"""The reading tools in Chromium, measured against a synthetic CT whose geometry and values are known.

The image: 200 x 200 pixels of 0.5 mm (Pixel Spacing), air (-1000 HU) around a 40 x 40 pixel square (20 x 20 mm)
whose pixels alternate 90 and 110 HU (mean 100, SD 10), axial (Image Orientation (Patient) 1\\0\\0\\0\\1\\0),
an overlay plane (6000) with one line, and a file window 40 / 400. What changes pixels (window presets, keyboard
window, invert, zoom) is compared with the rendering computed here from pydicom's pixels; measurements with the
known size in mm and values in HU.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid

from tests.viewer.conftest import VIEWER_PASSWORD, Browser, artifacts_dir, burn_medium, sample
from tests.viewer.reference import canvas_rgb, mean_abs_diff, windowed

pytestmark = pytest.mark.slow

SIZE = 200
SQUARE = slice(60, 100)  # rows and columns of the object: 40 pixels = 20 mm
OVERLAY_ROW = 20


def _synthetic(
    path: Path,
    *,
    modality: str = "CT",
    spacing: str | None = "PixelSpacing",
    slices: int = 1,
    description: str = "",
) -> None:
    """CT_small's header with the synthetic pixels (see the module docstring), written as ``slices`` files."""
    ds = dcmread(sample("CT_small.dcm"))
    hu = np.full((SIZE, SIZE), -1000, dtype=np.int32)
    checker = np.indices((40, 40)).sum(axis=0) % 2
    hu[SQUARE, SQUARE] = np.where(checker == 0, 90, 110)
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = (hu + 1024).astype(np.uint16).tobytes()
    ds.Modality = modality
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.WindowCenterWidthExplanation = "SOFT"
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in ds:
            delattr(ds, keyword)
    if spacing is not None:
        setattr(ds, spacing, [0.5, 0.5])
    overlay = np.zeros((SIZE, SIZE), dtype=np.uint8)
    overlay[OVERLAY_ROW, 10:190] = 1
    ds.add_new(0x60000010, "US", SIZE)
    ds.add_new(0x60000011, "US", SIZE)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", np.packbits(overlay.ravel(), bitorder="little").tobytes())
    ds.RecommendedDisplayFrameRate = 5
    ds.SeriesDescription = description or f"Synthetic {modality}"
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = f"SYN-{modality}"
    for index in range(slices):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = index + 1
        ds.save_as(path.with_name(f"{path.stem}{index}.dcm"))


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("viewer-tools")
    sources = work / "sources"
    sources.mkdir()
    _synthetic(sources / "ct", slices=3)
    _synthetic(sources / "prior", slices=5, description="Prior CT")
    _synthetic(sources / "dx", modality="DX", spacing="ImagerPixelSpacing")
    _synthetic(sources / "ot", modality="OT", spacing=None)
    _result, folder = burn_medium(work / "burn", [sources])
    return folder


def _reference() -> Dataset:
    ds = dcmread(sample("CT_small.dcm"))
    hu = np.full((SIZE, SIZE), -1000, dtype=np.int32)
    hu[SQUARE, SQUARE] = np.where(np.indices((40, 40)).sum(axis=0) % 2 == 0, 90, 110)
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = (hu + 1024).astype(np.uint16).tobytes()
    return ds


def _grey(snap: dict[str, Any]) -> NDArray[np.uint8]:
    return canvas_rgb(snap["pixels"])[..., 0]


def _screen(snap: dict[str, Any]) -> NDArray[np.uint8]:
    image = Image.open(io.BytesIO(base64.b64decode(snap["screenshot"]))).convert("RGB")
    return np.asarray(image)


def _as_displayed(
    snap: dict[str, Any], grey: NDArray[np.uint8]
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """The screenshot's inside of the image, and the reference resampled there by nearest neighbour."""
    d = snap["display"]
    shot = _screen(snap)[..., 0]
    ys, xs = np.mgrid[0 : shot.shape[0], 0 : shot.shape[1]]
    cols = np.floor((xs + 0.5 - d["tx"]) / d["scale"]).astype(int)
    rows = np.floor((ys + 0.5 - d["ty"]) / (d["scale"] * d["aspect"])).astype(int)
    # One pixel in from the image's edges (where the browser's sampling may differ by a pixel).
    inside = (cols >= 1) & (cols < SIZE - 1) & (rows >= 1) & (rows < SIZE - 1)
    inside &= (ys > 40) & (ys < shot.shape[0] - 40)  # the corner text and the scale bar
    inside &= np.abs(rows - OVERLAY_ROW) > 1  # the overlay line, drawn over the image
    return shot[inside], grey[rows[inside], cols[inside]]


@pytest.fixture(scope="module")
def ct(browser: Browser, medium: Path) -> dict[str, Any]:
    actions: list[dict[str, Any]] = [
        {"do": "snapshot", "name": "opened", "screenshot": True},
        {"do": "focus", "selector": "tr[data-testid=series]"},
        {"do": "press", "key": "Enter"},
        {"do": "press", "key": "ArrowDown"},
        {"do": "snapshot", "name": "keyboard-only"},
        {"do": "press", "key": "Home"},
        {"do": "key", "key": "0"},
        {"do": "snapshot", "name": "one", "screenshot": True},
        {"do": "key", "key": "+"},
        {"do": "snapshot", "name": "zoomed", "screenshot": True},
        {"do": "key", "key": "f"},
        {"do": "key", "key": "6"},
        {"do": "snapshot", "name": "lung"},
        {"do": "key", "key": "i"},
        {"do": "snapshot", "name": "inverted", "screenshot": True},
        {"do": "key", "key": "r"},
        {"do": "key", "key": "Shift+ArrowUp"},
        {"do": "key", "key": "Shift+ArrowRight"},
        {"do": "snapshot", "name": "keyboard"},
        {"do": "key", "key": "r"},
        {"do": "tool", "tool": "length"},
        {"do": "drag", "from": [60, 120], "to": [100, 120]},
        {"do": "tool", "tool": "rectangle"},
        {"do": "drag", "from": [60, 60], "to": [100, 100]},
        {"do": "tool", "tool": "ellipse"},
        {"do": "drag", "from": [60, 60], "to": [100, 100]},
        {"do": "tool", "tool": "angle"},
        {"do": "drag", "from": [150, 150], "to": [130, 150]},
        {"do": "tap", "at": [130, 130]},
        {"do": "snapshot", "name": "measured", "screenshot": True},
        {"do": "key", "key": "v"},
        {"do": "snapshot", "name": "no-overlays"},
        {"do": "tool", "tool": "window"},
        {"do": "key", "key": "c"},
        {"do": "cine", "frames": 4},
        {"do": "snapshot", "name": "cine"},
        {"do": "key", "key": "Home"},
        {"do": "compare", "modality": "CT", "description": "Prior CT"},
        {"do": "compared", "index": 0},
        {"do": "key", "key": "ArrowDown"},
        {"do": "compared", "index": 2},
        {"do": "key", "key": "End"},
        {"do": "compared", "index": 4},
        {"do": "snapshot", "name": "compared", "screenshot": True},
    ]
    return browser.run(
        "tools",
        medium,
        password=VIEWER_PASSWORD,
        select=["CT"],
        actions=actions,
        artifacts=str(artifacts_dir()),
    )


def test_small_image_is_magnified_to_fit_and_shows_the_right_pixels(ct: dict[str, Any]) -> None:
    assert ct["pageErrors"] == []
    assert ct["console"] == []
    opened = ct["actions"]["opened"]
    d = opened["display"]
    stage = opened["stage"]
    # 200 x 200 pixels in a stage several times larger: magnified until one side fills it.
    assert d["scale"] > 2
    assert min(stage["width"] / SIZE, stage["height"] / SIZE) == pytest.approx(d["scale"])
    # The canvas keeps the image's own pixels: the file window 40 / 400.
    reference = _reference()
    assert mean_abs_diff(_grey(opened), windowed(reference, 40, 400)) < 0.01
    shown, expected = _as_displayed(opened, windowed(reference, 40, 400))
    assert mean_abs_diff(shown, expected) < 1.0


def test_one_to_one_and_zoom_show_the_pixels_at_their_scale(ct: dict[str, Any]) -> None:
    reference = windowed(_reference(), 40, 400)
    one = ct["actions"]["one"]
    assert one["display"]["scale"] == 1
    shown, expected = _as_displayed(one, reference)
    assert shown.size > 30_000
    assert mean_abs_diff(shown, expected) < 0.5
    zoomed = ct["actions"]["zoomed"]
    assert zoomed["display"]["scale"] == pytest.approx(1.25)
    shown, expected = _as_displayed(zoomed, reference)
    assert mean_abs_diff(shown, expected) < 2.0


def test_ct_presets_invert_and_keyboard_window_match_the_reference(ct: dict[str, Any]) -> None:
    reference = _reference()
    lung = ct["actions"]["lung"]
    assert lung["display"]["preset"] == "Lung"
    assert lung["window"] == "-600,1500"
    assert mean_abs_diff(_grey(lung), windowed(reference, -600, 1500)) < 0.01
    inverted = ct["actions"]["inverted"]
    assert inverted["display"]["inverted"] is True
    assert mean_abs_diff(_grey(inverted), windowed(reference, -600, 1500, invert=True)) < 0.01
    shown, expected = _as_displayed(inverted, windowed(reference, -600, 1500, invert=True))
    assert mean_abs_diff(shown, expected) < 1.0
    # Reset, then Shift+Up (centre + width/20) and Shift+Right (width + width/20).
    keyboard = ct["actions"]["keyboard"]
    assert keyboard["window"] == "60,420"
    assert keyboard["display"]["inverted"] is False
    assert mean_abs_diff(_grey(keyboard), windowed(reference, 60, 420)) < 0.01


def test_measurements_match_the_known_geometry_and_values(ct: dict[str, Any]) -> None:
    measured = ct["actions"]["measured"]["measurements"]
    assert [m["kind"] for m in measured] == ["length", "rectangle", "ellipse", "angle"]
    length, rectangle, ellipse, angle = measured
    assert length["value"] == pytest.approx(20.0, abs=0.05)
    assert length["text"] == "Length 20.0 mm"
    stats = rectangle["stats"]
    assert stats["pixels"] == 1600
    assert (stats["mean"], stats["sd"], stats["min"], stats["max"]) == (100, 10, 90, 110)
    assert stats["area"] == pytest.approx(400, abs=0.5)
    assert rectangle["text"].startswith("Rectangle: mean 100 HU, SD 10.0, min 90.0, max 110, area 400.0 mm²")
    assert ellipse["stats"]["area"] == pytest.approx(np.pi * 100, abs=0.5)
    assert ellipse["stats"]["mean"] == pytest.approx(100, abs=0.5)
    assert angle["value"] == pytest.approx(90, abs=0.1)
    assert ct["actions"]["measured"]["measurementList"][0] == "1. Length 20.0 mm"


def test_overlay_is_drawn_and_toggled(ct: dict[str, Any]) -> None:
    def yellow_on_the_overlay_row(snap: dict[str, Any]) -> int:
        png = base64.b64decode(snap["annotation"].split(",", 1)[1])
        rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
        d = snap["display"]
        y = int(d["ty"] + (OVERLAY_ROW + 0.5) * d["scale"] * d["aspect"])
        x0 = int(d["tx"] + 20 * d["scale"])
        x1 = int(d["tx"] + 180 * d["scale"])
        row = rgba[y, x0:x1]
        return int(((row[:, 0] == 255) & (row[:, 1] == 255) & (row[:, 2] == 0) & (row[:, 3] == 255)).sum())

    measured = ct["actions"]["measured"]
    assert yellow_on_the_overlay_row(measured) > 0.9 * 160 * measured["display"]["scale"]
    assert yellow_on_the_overlay_row(ct["actions"]["no-overlays"]) == 0
    assert measured["display"]["orientation"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


def test_cine_plays_the_series_at_the_recommended_rate(ct: dict[str, Any]) -> None:
    cine = ct["actions"]["cine"]["cine"]
    assert cine["fps"] == 5
    assert cine["source"] == "Recommended Display Frame Rate"
    assert cine["shown"] >= 4
    assert cine["playing"] is False  # paused again


@pytest.mark.parametrize(
    ("modality", "text"),
    [
        ("DX", "Length 20.0 mm (at the detector: Imager Pixel Spacing)"),
        ("OT", "Length 40.0 px (uncalibrated: no Pixel Spacing)"),
    ],
)
def test_length_says_which_spacing_and_when_uncalibrated(
    browser: Browser, medium: Path, modality: str, text: str
) -> None:
    actions = [
        {"do": "tool", "tool": "length"},
        {"do": "drag", "from": [60, 120], "to": [100, 120]},
        {"do": "snapshot", "name": "measured"},
    ]
    result = browser.run(
        "tools-" + modality, medium, password=VIEWER_PASSWORD, select=[modality], actions=actions
    )
    assert result["actions"]["measured"]["measurements"][0]["text"] == text


def test_series_list_has_thumbnails_and_descriptions(ct: dict[str, Any]) -> None:
    """Every series gets a thumbnail; its Series Description comes from an instance when the DICOMDIR has none."""
    series = [se for p in ct["final"]["patients"] for s in p["studies"] for se in s["seriesList"]]
    assert sorted((se["modality"], se["description"], se["thumbnail"]) for se in series) == [
        ("CT", "Prior CT", True),
        ("CT", "Synthetic CT", True),
        ("DX", "Synthetic DX", True),
        ("OT", "Synthetic OT", True),
    ]


def test_side_by_side_comparison_scrolls_with_the_image(ct: dict[str, Any]) -> None:
    """The prior (5 slices) beside the current series (3): slice 1 -> 1, 2 -> 3, 3 -> 5 as the user scrolls."""
    compared = ct["actions"]["compared"]
    assert compared["compare"]["active"] is True
    assert compared["compare"]["instances"] == 5
    assert compared["compare"]["index"] == 4
    assert compared["compare"]["title"] == "CT series 1, Prior CT: instance 5/5"
    assert compared["compare"]["canvas"] == {"width": SIZE, "height": SIZE}
    assert compared["instance"] == "2"
    assert compared["state"] == "image"


def test_keyboard_only_reaches_the_image_and_every_control_has_a_name(ct: dict[str, Any]) -> None:
    """A series row opened with Enter puts the focus on the image, where the arrow keys scroll."""
    snap = ct["actions"]["keyboard-only"]
    assert snap["active"] == "image"
    assert snap["instance"] == "1"
    assert snap["unlabelled"] == []
