"""The files of an ISO 9660 image as dcmseal takes them in: listed, located in place or extracted, strictly.

The walk is the shared one (:class:`dcmseal.reader.iso.IsoWalker`), made strict: the first problem it marks
(an unsafe name, a file running past the end of a truncated image) refuses the image.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dcmseal.errors import HostileMediumError, InputError, ResourceLimitError
from dcmseal.fsutil import Extent, make_dirs
from dcmseal.reader.containers import ExtentsReader
from dcmseal.reader.extraction import (
    DEFAULT_MAX_EXTRACT_BYTES,
    DEFAULT_MAX_MEMBERS,
    CreatedFiles,
    contained_target,
    copy_limited,
)
from dcmseal.reader.iso import IsoItem, IsoWalker, clean_iso_identifier

__all__ = ["IsoEntry", "IsoFile", "extract_iso", "iso_file_extents", "list_iso"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class IsoEntry:
    """One file or directory of an image, by its ISO 9660 path (``/DICOM/CT000001.;1``)."""

    iso_path: str
    size: int
    is_dir: bool

    @property
    def relative_path(self) -> PurePosixPath:
        """The path without version numbers nor the dot of extension-less names (``DICOM/CT000001``)."""
        return PurePosixPath(*(clean_iso_identifier(part) for part in self.iso_path.strip("/").split("/")))

    def to_json(self) -> dict[str, object]:
        return {"iso_path": self.iso_path, "size": self.size, "is_dir": self.is_dir}


def _walk(reader: IsoWalker, *, max_members: int = DEFAULT_MAX_MEMBERS) -> Iterator[IsoItem]:
    """The shared walk (:class:`dcmseal.reader.iso.IsoWalker`) made strict: the first problem refuses the image
    (a symbolic link is left out, as open leaves it out)."""
    for item in reader.walk(max_members=max_members):
        if item.symlink:  # a Rock Ridge link is never followed nor made: not extracted (open reports it)
            logger.info("%s: %s is a symbolic link, not extracted", reader.path, item.name)
            continue
        if item.problem is not None:
            raise HostileMediumError(item.problem, path=reader.path)
        yield item


def list_iso(path: Path) -> list[IsoEntry]:
    """List every directory and file of the ISO 9660 image ``path`` (its ISO 9660 tree, parents first).

    Raises
    ------
    InputError
        ``path`` is not a readable ISO 9660 image, is truncated (a file runs past its end), or holds
        names that are not plain ASCII or would escape a destination (``..``, ``/``).
    """
    path = Path(path)
    reader = IsoWalker(path)
    try:
        return [IsoEntry(iso_path=i.iso_path, size=i.size, is_dir=i.is_dir) for i in _walk(reader)]
    finally:
        reader.close()


@dataclass(frozen=True, slots=True)
class IsoFile:
    """A file of an ISO image and where its bytes lie in the image (to be read in place)."""

    relative_path: PurePosixPath  # as :func:`extract_iso` would name it under its destination
    extent: Extent


def iso_file_extents(path: Path, *, max_total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES) -> list[IsoFile] | None:
    """Every file of the ISO 9660 image ``path`` with its byte range in the image, in image order.

    Reading a file in place spares the copy :func:`extract_iso` makes of the whole image. The checks
    are the extraction's: the same names (cleaned, refused when unsafe or duplicated), the same
    truncation and size limits, the same errors. Returns None when a file is not one contiguous range
    of the image (an ISO 9660 multi-extent file): such an image is extracted instead.

    Raises
    ------
    InputError, ResourceLimitError
        As :func:`extract_iso`.
    """
    path = Path(path)
    reader = IsoWalker(path)
    try:
        items = list(_walk(reader))
        total = sum(item.size for item in items)
        if total > max_total_bytes:
            raise ResourceLimitError(
                f"the image holds {total} bytes of files, more than the limit of {max_total_bytes}", path=path
            )
        kinds: dict[PurePosixPath, bool] = {}  # cleaned name -> is a directory
        files: list[IsoFile] = []
        for item in items:
            relative = PurePosixPath(item.name)
            if relative in kinds:
                if item.is_dir and kinds[relative]:
                    continue
                what = (
                    "two entries share the name"
                    if item.is_dir or kinds[relative]
                    else "two entries with one name"
                )
                raise InputError(f"{item.iso_path}: {what} {relative}", path=path)
            kinds[relative] = item.is_dir
            if item.is_dir:
                continue
            if not item.contiguous:
                return None  # several extents: not one range of the image
            start = item.extents[0][0] if item.extents else 0
            files.append(IsoFile(relative_path=relative, extent=Extent(path, start, item.size)))
        return files
    finally:
        reader.close()


def extract_iso(path: Path, dest: Path, *, max_total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES) -> list[Path]:
    """Extract every file of the ISO 9660 image ``path`` under ``dest``; return the files, in image order.

    Names lose their version number and the dot of extension-less names (``/DICOM/CT000001.;1`` becomes
    ``dest/DICOM/CT000001``); existing files are never overwritten. Contents are copied in chunks.

    Raises
    ------
    InputError
        Not a readable ISO 9660 image, truncated (a file extends past the end of the image), names that
        are not ASCII or would escape ``dest``, two entries with the same name once cleaned, or a file
        already present in ``dest``. Whatever was extracted before the failure is removed.
    ResourceLimitError
        The files add up to more than ``max_total_bytes``.
    """
    path, dest = Path(path), Path(dest)
    reader = IsoWalker(path)
    created = CreatedFiles()
    extracted: list[Path] = []
    try:
        items = list(_walk(reader))
        total = sum(item.size for item in items)
        if total > max_total_bytes:
            raise ResourceLimitError(
                f"the image holds {total} bytes of files, more than the limit of {max_total_bytes}", path=path
            )
        make_dirs(dest)
        for item in items:
            target = contained_target(dest, PurePosixPath(item.name), path)
            if item.is_dir:
                if target.exists() and not target.is_dir():
                    raise InputError(f"{item.iso_path}: two entries share the name {target.name}", path=path)
                created.mkdir(target)
                continue
            try:
                out = open(target, "xb")  # noqa: SIM115 - closed below; "x" never follows a planted file
            except FileExistsError:
                raise InputError(
                    f"{item.iso_path}: {target} already exists (two entries with one name?)", path=path
                ) from None
            created.files.append(target)
            with out, io.BufferedReader(ExtentsReader(path, item.extents)) as data:
                written = copy_limited(data.read, out, item.size)
            if written != item.size:
                raise InputError(
                    f"truncated ISO image: {item.iso_path} has {written} of {item.size} bytes", path=path
                )
            extracted.append(target)
    except BaseException:
        created.rollback()
        raise
    finally:
        reader.close()
    logger.info("%s: %d files extracted to %s", path, len(extracted), dest)
    return extracted
