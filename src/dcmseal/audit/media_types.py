"""The CID 405 media type an audit message names for a medium dcmseal writes (CD, DVD or USB)."""

from __future__ import annotations

from dcmseal.audit.codes import MediaType

__all__ = ["media_type_of"]


def media_type_of(medium: str, output_format: str) -> MediaType:
    """The CID 405 media type for a medium of a PS3.11 profile (``cd``, ``dvd``, ``usb``) written as ``output_format``.

    A folder (``dir``) or a USB image is a USB disk, whatever the profile; an ISO image is a DVD for the DVD
    profiles (PS3.12 Annex P) and a CD otherwise.
    """
    if output_format in ("dir", "usb-image") or str(medium) == "usb":
        return MediaType.USB_DISK_EMULATION
    return MediaType.DVD if str(medium) == "dvd" else MediaType.CD
