"""Reference renderings computed in Python from the same pixels and window the viewer uses (PS3.3 C.11.2.1.2)."""

from __future__ import annotations

import base64

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset


def linear_window(x: NDArray[np.float64], center: float, width: float) -> NDArray[np.float64]:
    """PS3.3 C.11.2.1.2.1 (VOI LUT Function LINEAR) to the output range 0..255."""
    if width <= 1:
        return np.where(x <= center - 0.5, 0.0, 255.0)
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.where(x <= low, 0.0, np.where(x > high, 255.0, y))


def windowed(ds: Dataset, center: float, width: float, *, invert: bool = False) -> NDArray[np.uint8]:
    """Rescale, then the window (center, width), as grey levels; ``invert`` as the viewer's Invert does."""
    values = ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
        getattr(ds, "RescaleIntercept", 0) or 0
    )
    grey = np.floor(linear_window(values, center, width) + 0.5)
    if (ds.PhotometricInterpretation == "MONOCHROME1") != invert:
        grey = 255 - grey
    return grey.astype(np.uint8)


def grey_reference(ds: Dataset, frame: int = 0) -> NDArray[np.uint8]:
    """Rescale (slope, intercept), then the file's first window, else the full range of the modality values."""
    pixels = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[frame]
    values = pixels.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
        getattr(ds, "RescaleIntercept", 0) or 0
    )
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center = ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter
        width = ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth
        center, width = float(center), float(width)
    else:
        low, high = float(values.min()), float(values.max())
        center, width = (low + high) / 2, max(high - low, 1.0)
    grey = np.floor(linear_window(values, center, width) + 0.5)  # Math.round: half up
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = 255 - grey
    return grey.astype(np.uint8)


def canvas_rgb(pixels: dict[str, object]) -> NDArray[np.uint8]:
    """The RGB pixels browser.mjs read from the canvas with getImageData (rows x columns x 3)."""
    raw = np.frombuffer(base64.b64decode(str(pixels["rgb"])), dtype=np.uint8)
    return raw.reshape(int(str(pixels["height"])), int(str(pixels["width"])), 3)


def mean_abs_diff(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())
