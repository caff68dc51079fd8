"""Any medium as a folder: a folder as it is; an ISO image, a FAT image or a zip extracted under a work folder."""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from dcmseal.errors import InputError, MissingInputError
from dcmseal.fsutil import make_dirs
from dcmseal.reader.extraction import DEFAULT_MAX_EXPANSION, DEFAULT_MAX_EXTRACT_BYTES
from dcmseal.reader.fat import extract_fat_image, is_fat_image
from dcmseal.reader.iso import is_iso_image
from dcmseal.reader.isofiles import extract_iso
from dcmseal.reader.zipfiles import extract_zip

__all__ = ["medium_as_folder"]


def medium_as_folder(
    path: Path,
    workdir: Path,
    *,
    max_total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    max_expansion: int = DEFAULT_MAX_EXPANSION,
) -> Path:
    """Return the root of the medium ``path`` as a folder: an ISO image or a zip is extracted under ``workdir``.

    The kind is found by content, not by name: an ISO 9660 volume descriptor in sector 16, a FAT boot
    sector (a USB medium as an image, read with mtools; its content is bounded by the image's size), a zip
    end of central directory, or a directory (a mounted disc, a USB stick), which is returned as it is. A new
    directory is made under ``workdir`` for each extraction.

    Raises
    ------
    InputError
        ``path`` does not exist, is none of the three, or cannot be extracted (see :func:`extract_iso`,
        :func:`extract_zip`).
    """
    path, workdir = Path(path), Path(workdir)
    if path.is_dir():
        return path
    if not path.exists():
        raise MissingInputError(path)
    if not path.is_file():
        raise InputError("not a medium: neither a file nor a folder", path=path)
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem)[:32] or "medium"
    if is_iso_image(path):
        make_dirs(workdir)
        root = Path(tempfile.mkdtemp(prefix=f"{stem}-iso-", dir=workdir))
        try:
            extract_iso(path, root, max_total_bytes=max_total_bytes)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return root
    if is_fat_image(path):  # a USB medium as an image (--format usb-image)
        make_dirs(workdir)
        root = Path(tempfile.mkdtemp(prefix=f"{stem}-fat-", dir=workdir))
        try:
            extract_fat_image(path, root / "medium")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return root / "medium"
    if zipfile.is_zipfile(path):
        make_dirs(workdir)
        root = Path(tempfile.mkdtemp(prefix=f"{stem}-zip-", dir=workdir))
        try:
            extract_zip(path, root, max_total_bytes=max_total_bytes, max_expansion=max_expansion)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return root
    raise InputError("not a medium: expected an ISO 9660 image, a folder or a zip archive", path=path)
