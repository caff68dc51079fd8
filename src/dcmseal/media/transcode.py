"""Lossless conversion of instances to a transfer syntax the chosen profile allows; never lossy.

The conversion itself is :func:`dcmseal.part10.transcode.conform` (the import uses it too); this module gives it
a profile's transfer syntaxes.
"""

from __future__ import annotations

from pathlib import Path

from dcmseal.media.profiles import Profile
from dcmseal.part10.transcode import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, ConformResult
from dcmseal.part10.transcode import conform as conform_to

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "ConformResult",
    "conform",
]


def conform(
    src: Path,
    dst: Path,
    profile: Profile,
    *,
    overwrite: bool = False,
    durable: bool = True,
    link: bool = False,
) -> ConformResult:
    """Write ``src`` to ``dst`` in a transfer syntax that ``profile`` allows (PS3.11 Tables D.3-1, H.3-1, J.3-1),
    losing nothing; see :func:`dcmseal.part10.transcode.conform`."""
    return conform_to(
        src,
        dst,
        allowed=profile.transfer_syntaxes,
        allowed_by=profile.value,
        overwrite=overwrite,
        durable=durable,
        link=link,
    )
