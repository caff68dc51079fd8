"""A USB medium as a FAT image file (``--format usb-image``): for ``dd`` or a stick duplicator.

PS3.12 Annex R: one File-set in the root of the first partition of a FAT16 or FAT32 file system, or of the
whole device when it has no partition table. The image is such an unpartitioned file system (a
"superfloppy", as many sticks come): written to a stick with ``dd``, it is the whole device. FAT16 up to
about 2 GB of content, FAT32 above; the file system is made by dosfstools' ``mkfs.fat`` and filled by
mtools' ``mcopy``, the maintained tools for both (no mount, no root).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dcmseal.errors import InputError
from dcmseal.media.target import FAT_MAX_FILE_BYTES, check_fits
from dcmseal.reader.fat import FAT_SECTOR_BYTES, MTOOLS_TIMEOUT_S, fat_tool

__all__ = ["FatLayout", "fat_layout", "write_fat_image"]

_DIR_ENTRY = 32
#: FAT16 counts 4,085 to 65,524 clusters; FAT32 from 65,525 (Microsoft's FAT specification, "FAT type determination").
_FAT16_CLUSTERS = (4085, 65524)
_FAT32_MIN_CLUSTERS = 65525
_CHOICES = [(16, 512 << s) for s in range(2, 7)] + [(32, 512 << s) for s in range(3, 7)]


@dataclass(frozen=True, slots=True)
class FatLayout:
    """The FAT type, cluster size and image size that hold a medium's files."""

    fat_bits: int
    cluster_bytes: int
    image_bytes: int


def _tree(root: Path) -> tuple[list[int], list[int]]:
    """The sizes of the files under ``root`` and, per folder (root included), its number of entries."""
    sizes: list[int] = []
    entries: list[int] = []
    for _dirpath, dirnames, filenames in os.walk(root):
        entries.append(len(dirnames) + len(filenames))
        sizes.extend((Path(_dirpath) / name).stat().st_size for name in filenames)
    return sizes, entries


def fat_layout(sizes: list[int], folder_entries: list[int]) -> FatLayout:
    """The smallest FAT16 (else FAT32) layout whose clusters hold the files and folders, with room to spare.

    Every file and folder takes whole clusters; a folder's entries are 32 bytes each (8.3 names: no long
    name entries), plus "." and "..". Two FATs, 32 reserved sectors, a 512-entry FAT16 root directory.
    """
    for bits, cluster in _CHOICES:
        data = sum(-(-size // cluster) for size in sizes)
        # The root folder of FAT16 lives outside the clusters; the others take clusters of their own.
        data += sum(-(-(n + 2) * _DIR_ENTRY // cluster) for n in folder_entries[1:])
        data += 1 if bits == 32 else 0  # the FAT32 root folder
        clusters = data + data // 50 + 16  # 2 % and a few clusters spare
        if bits == 16:
            if clusters > _FAT16_CLUSTERS[1]:
                continue
            clusters = max(clusters, _FAT16_CLUSTERS[0] + 16)
        else:
            clusters = max(clusters, _FAT32_MIN_CLUSTERS + 16)
        fat_bytes = -(-(clusters + 2) * bits // 8 // FAT_SECTOR_BYTES) * FAT_SECTOR_BYTES
        root_dir = 512 * _DIR_ENTRY if bits == 16 else 0
        total = 32 * FAT_SECTOR_BYTES + 2 * fat_bytes + root_dir + clusters * cluster
        return FatLayout(fat_bits=bits, cluster_bytes=cluster, image_bytes=-(-total // 1024) * 1024)
    raise InputError("the medium is too large for a FAT32 image")  # 2 TiB: never for one study


def write_fat_image(
    medium_dir: Path,
    image: Path,
    *,
    volume_label: str,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the files of ``medium_dir`` into a new FAT image at ``image``; return its size in bytes.

    Raises
    ------
    InputError
        A file is over the FAT limit of 4 GiB - 1 (PS3.12 Annex R), or a tool is missing or fails.
    """
    mkfs = fat_tool("mkfs.fat", "dosfstools")
    mcopy = fat_tool("mcopy", "mtools")
    sizes, entries = _tree(medium_dir)
    relative = [p.relative_to(medium_dir).as_posix() for p in medium_dir.rglob("*") if p.is_file()]
    check_fits(
        zip(relative, (p.stat().st_size for p in medium_dir.rglob("*") if p.is_file()), strict=True),
        where=image,
        max_file_bytes=FAT_MAX_FILE_BYTES,
        free_bytes=None,
        cluster_bytes=1,
        fs_name="a FAT image",
    )
    layout = fat_layout(sizes, entries)
    step = progress or (lambda _done, _total: None)
    step(0, len(sizes))
    label = (volume_label or "DICOM").upper()[:11]
    made = subprocess.run(
        [
            mkfs,
            "-C",
            "-F",
            str(layout.fat_bits),
            "-S",
            str(FAT_SECTOR_BYTES),
            "-s",
            str(layout.cluster_bytes // FAT_SECTOR_BYTES),
            "-n",
            label,
            str(image),
            str(layout.image_bytes // 1024),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=MTOOLS_TIMEOUT_S,
    )
    if made.returncode != 0:
        image.unlink(missing_ok=True)
        raise InputError(f"mkfs.fat failed: {made.stderr.strip() or made.stdout.strip()}", path=image)
    top = sorted(str(p) for p in medium_dir.iterdir())
    if top:
        copied = subprocess.run(
            [mcopy, "-i", str(image), "-s", "-Q", "-m", *top, "::/"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
            timeout=MTOOLS_TIMEOUT_S,
        )
        if copied.returncode != 0:
            image.unlink(missing_ok=True)
            raise InputError(f"mcopy failed: {copied.stderr.strip() or copied.stdout.strip()}", path=image)
    step(len(sizes), len(sizes))
    return image.stat().st_size
