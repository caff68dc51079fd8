"""FAT images (a USB medium as one file, PS3.12 Annex R) recognised by their boot sector and read with mtools."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from dcmseal.errors import InputError

__all__ = [
    "FAT_SECTOR_BYTES",
    "MTOOLS_TIMEOUT_S",
    "boot_sector_kind",
    "extract_fat_image",
    "fat_tool",
    "is_fat_image",
]

#: The sector size of the FAT images dcmseal writes and reads (the boot sector is one).
FAT_SECTOR_BYTES = 512
#: mtools and mkfs.fat on a large image take minutes, not hours.
MTOOLS_TIMEOUT_S = 3600


def boot_sector_kind(boot: bytes) -> str | None:
    """ "vfat" for a FAT12/16/32 boot sector, "exfat" for an exFAT one, else None (the first 512 bytes)."""
    if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
        return None
    if boot[3:11] == b"EXFAT   ":
        return "exfat"
    if boot[54:59] in (b"FAT16", b"FAT12") or boot[82:87] == b"FAT32":
        return "vfat"
    return None


def fat_tool(name: str, package: str) -> str:
    """The path of ``name`` (an mtools or dosfstools program); an error saying how to install it when missing."""
    path = shutil.which(name)
    if path is None:
        raise InputError(f"{name} is not installed: a FAT image needs it (apt-get install {package})")
    return path


def is_fat_image(path: Path) -> bool:
    """Does ``path`` start with a FAT16 or FAT32 boot sector (boot signature, file system type string)?"""
    try:
        with open(path, "rb") as fp:
            return boot_sector_kind(fp.read(FAT_SECTOR_BYTES)) == "vfat"
    except OSError:
        return False


def extract_fat_image(image: Path, dest: Path) -> Path:
    """Copy every file of the FAT image ``image`` into the new folder ``dest`` (mtools: no mount); return it."""
    mcopy = fat_tool("mcopy", "mtools")
    dest.mkdir(parents=True)
    copied = subprocess.run(
        [mcopy, "-i", str(image), "-s", "-n", "-Q", "::/*", str(dest)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
        timeout=MTOOLS_TIMEOUT_S,
    )
    if copied.returncode != 0 and "no match" not in copied.stderr.lower():
        raise InputError(f"cannot read the FAT image: {copied.stderr.strip()}", path=image)
    return dest
