"""The CID 405 media type of each medium burn and rekey write."""

from __future__ import annotations

import pytest

from dcmseal.audit import MediaType, media_type_of


@pytest.mark.parametrize(
    ("medium", "output_format", "expected"),
    [
        ("cd", "iso", MediaType.CD),
        ("dvd", "iso", MediaType.DVD),
        ("usb", "iso", MediaType.USB_DISK_EMULATION),
        ("cd", "dir", MediaType.USB_DISK_EMULATION),
        ("dvd", "dir", MediaType.USB_DISK_EMULATION),
        ("dvd", "usb-image", MediaType.USB_DISK_EMULATION),
    ],
)
def test_media_type_of(medium: str, output_format: str, expected: MediaType) -> None:
    assert media_type_of(medium, output_format) is expected
