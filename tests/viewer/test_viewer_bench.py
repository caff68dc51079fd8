"""A 300-slice CT (512 x 512) in the browser: the key is derived once; the time from password to first image and
the renderer's memory after scrolling through every slice are reported.

The time is printed and recorded in BENCHMARKS.md (Viewer section), never asserted; the renderer's peak resident
memory (a count, not a timer) must stay under 300 MB. Run alone with
``.venv/bin/pytest tests/viewer/test_viewer_bench.py -s -p no:randomly``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from dcmseal.config import DEFAULT_PBKDF2_ITERATIONS
from tests.viewer.conftest import VIEWER_PASSWORD, Browser, burn_medium, sample

pytestmark = pytest.mark.slow

FILES = 300
#: The renderer's peak resident memory allowed for the whole series (issue 16).
RENDERER_LIMIT_MB = 300


def _series(folder: Path, count: int) -> list[Path]:
    """``count`` 512 x 512 CT slices of one series: pydicom's CT_small magnified 4 x, new UIDs and numbers."""
    template = dcmread(sample("CT_small.dcm"))
    template.PixelData = np.kron(
        template.pixel_array, np.ones((4, 4), dtype=template.pixel_array.dtype)
    ).tobytes()
    template.Rows = template.Columns = 512
    template.PixelSpacing = [float(v) / 4 for v in template.PixelSpacing]
    template.SeriesInstanceUID = generate_uid()
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        template.SOPInstanceUID = generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = index + 1
        path = folder / f"ct{index:04d}.dcm"
        template.save_as(path)
        paths.append(path)
    return paths


def test_300_slice_ct_derives_the_key_once_and_stays_small(browser: Browser, tmp_path: Path) -> None:
    sources = _series(tmp_path / "sources", FILES)
    # The production PBKDF2 cost (600,000 iterations of HMAC-SHA256), so the first-image time is the real one.
    result, folder = burn_medium(
        tmp_path / "burn", [tmp_path / "sources"], iterations=DEFAULT_PBKDF2_ITERATIONS
    )
    assert len(result.files) == len(sources)
    opened = browser.run("bench", folder, password=VIEWER_PASSWORD, walk=FILES - 1)
    assert opened["state"] == "image"
    assert opened["patients"][0]["studies"][0]["instances"] == FILES
    walked = opened["walked"]
    assert walked["canvas"]["rendered"] is not None
    assert int(walked["frame"]) == 0
    stats = walked["dcmseal"]["stats"]
    # DICOMDIR and every slice stepped through: all from one derivation.
    assert stats["opened"] >= FILES + 1
    assert stats["pbkdf2"] == 1
    timings = walked["dcmseal"]["timings"]
    memory = opened["rendererMemory"]
    print(
        f"\nviewer, {FILES}-file medium, PBKDF2-HMAC-SHA256 x {DEFAULT_PBKDF2_ITERATIONS:,}: "
        f"password -> study list {timings['submitToListMs']:.0f} ms, "
        f"password -> first image {timings['submitToFirstImageMs']:.0f} ms, "
        f"{opened['walkMsPerImage']:.1f} ms per image stepping through the series; "
        f"PBKDF2 derivations {stats['pbkdf2']}, files opened {stats['opened']}; renderer after the walk "
        f"{memory['rssMb']:.0f} MB resident, {memory['peakMb']:.0f} MB peak"
    )
    assert memory["processes"] >= 1
    assert memory["peakMb"] < RENDERER_LIMIT_MB
