"""ISO 9660 Level 1 images (plus UDF for DVD profiles) of a staged File-set, written with pycdlib.

PS3.12 Annex F (CD-R) asks for ISO 9660 Level 1, at most 8 directory levels (the root is level 1), File ID
components mapped to ``/COMP1/.../COMPN.;1`` (no extension, version 1) and the DICOMDIR at ``/DICOMDIR.;1``;
Annex P (DVD) asks readers to read both UDF and ISO 9660, so DVD images carry both trees with the same names
(a UDF 1.02 bridge: what pycdlib writes, see :func:`write_iso`).
No Joliet and no Rock Ridge: a conformant reader sees the names exactly as the File IDs (standards.md §6.4).

Images, zips and FAT images are read back by :mod:`dcmseal.reader` (:func:`dcmseal.reader.medium.medium_as_folder`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from dcmseal.errors import InputError
from dcmseal.fsutil import CHUNK_SIZE_BYTES, atomic_write

__all__ = [
    "MAX_DIRECTORY_LEVELS",
    "MAX_PATH_COMPONENTS",
    "ExtentFiller",
    "IsoSummary",
    "sanitize_volume_id",
    "write_iso",
]

logger = logging.getLogger(__name__)

#: PS3.12 Annex F and ECMA-119 §6.8.2.1: at most 8 levels, the root directory being level 1. pycdlib
#: counts a file as a level too, so a path below the root has at most 7 components, directory or file
#: (File IDs of 8 components, which PS3.10 §8.2 allows, do not fit on a disc written this way).
MAX_DIRECTORY_LEVELS = 8
MAX_PATH_COMPONENTS = MAX_DIRECTORY_LEVELS - 1
#: ECMA-119 §8.4.6: the Volume Identifier is 32 d-characters.
VOLUME_ID_MAX_CHARS = 32
_DEFAULT_VOLUME_ID = "DICOM"
_APPLICATION_ID = "DCMSEAL"


# ISO 9660 Level 1 (ECMA-119 §7.5, §10.1): d-characters only, file names 8.3, directory names 8.
_DIR_NAME = re.compile(r"[A-Z0-9_]{1,8}")
_FILE_NAME = re.compile(r"([A-Z0-9_]{1,8})(?:\.([A-Z0-9_]{1,3}))?")


@dataclass(frozen=True, slots=True, kw_only=True)
class IsoSummary:
    """What :func:`write_iso` wrote."""

    path: Path
    size: int
    file_count: int
    udf: bool

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "size": self.size, "file_count": self.file_count, "udf": self.udf}


def sanitize_volume_id(label: str) -> str:
    """Map ``label`` to an ISO 9660 Volume Identifier: at most 32 d-characters ``[A-Z0-9_]`` (ECMA-119 §8.4.6).

    Lowercase letters are upper-cased, anything else becomes ``_``; an empty result becomes ``DICOM``.
    """
    sanitized = re.sub(r"[^A-Z0-9_]", "_", label.strip().upper())[:VOLUME_ID_MAX_CHARS]
    return sanitized.strip("_") or _DEFAULT_VOLUME_ID


def _iso_file_name(name: str, path: Path) -> str:
    match = _FILE_NAME.fullmatch(name)
    if match is None:
        raise ValueError(
            f"{path}: {name!r} is not an ISO 9660 Level 1 file name "
            "(1-8 characters A-Z 0-9 _, optionally '.' and a 1-3 character extension)"
        )
    stem, extension = match.groups()
    # PS3.12 F.3: a File ID component maps to "NAME.;1"; an 8.3 name such as README.TXT keeps its extension.
    return f"{stem}.{extension or ''};1"


def _check_dir_name(name: str, path: Path) -> None:
    if _DIR_NAME.fullmatch(name) is None:
        raise ValueError(
            f"{path}: {name!r} is not an ISO 9660 Level 1 directory name (1-8 characters A-Z 0-9 _)"
        )


@dataclass(frozen=True, slots=True)
class _Planned:
    source: Path
    iso_path: str
    udf_path: str
    is_dir: bool


def _plan(staging: Path, virtual: Iterable[Path] = ()) -> list[_Planned]:
    """Every directory (parents first) and file under ``staging`` with its ISO 9660 and UDF paths.

    ``virtual`` files (paths below ``staging``) are planned as if they were there, with their folders.
    """
    planned: list[_Planned] = []
    # Per folder, the names of virtual files and folders in it (a virtual folder has no entry on disk).
    virtual_files: dict[Path, set[str]] = {}
    virtual_dirs: dict[Path, set[str]] = {}
    for path in virtual:
        if staging not in path.parents:
            raise ValueError(f"{path}: not inside {staging}")
        virtual_files.setdefault(path.parent, set()).add(path.name)
        for child in [path.parent, *path.parent.parents]:
            if child == staging:
                break
            virtual_dirs.setdefault(child.parent, set()).add(child.name)

    def check_depth(path: Path, parts: tuple[str, ...]) -> None:
        if len(parts) > MAX_PATH_COMPONENTS:
            raise ValueError(
                f"{path}: more than {MAX_PATH_COMPONENTS} path components below the root "
                f"(ISO 9660 allows {MAX_DIRECTORY_LEVELS} levels, the root being level 1; PS3.12 Annex F)"
            )

    def add_dir(path: Path, name: str, iso_parts: tuple[str, ...]) -> None:
        _check_dir_name(name, path)
        parts = (*iso_parts, name)
        check_depth(path, parts)
        joined = "/" + "/".join(parts)
        planned.append(_Planned(path, joined, joined, True))
        visit(path, parts)

    def add_file(path: Path, name: str, iso_parts: tuple[str, ...]) -> None:
        iso_name = _iso_file_name(name, path)
        check_depth(path, (*iso_parts, iso_name))
        planned.append(
            _Planned(path, "/" + "/".join((*iso_parts, iso_name)), "/" + "/".join((*iso_parts, name)), False)
        )

    def visit(directory: Path, iso_parts: tuple[str, ...]) -> None:
        kinds: dict[str, str] = {}
        if directory.is_dir():
            with os.scandir(directory) as scan:
                for entry in scan:
                    path = Path(entry.path)
                    if entry.is_dir(follow_symlinks=False):
                        kinds[entry.name] = "dir"
                    elif entry.is_file():
                        kinds[entry.name] = "file"
                    else:
                        raise ValueError(f"{path}: neither a regular file nor a directory")
        for name in virtual_dirs.get(directory, ()):
            if kinds.setdefault(name, "dir") != "dir":
                raise ValueError(f"{directory / name}: a file where a folder is planned")
        for name in virtual_files.get(directory, ()):
            if kinds.setdefault(name, "file") != "file":
                raise ValueError(f"{directory / name}: a folder where a file is planned")
        for name in sorted(kinds):
            if kinds[name] == "dir":
                add_dir(directory / name, name, iso_parts)
            else:
                add_file(directory / name, name, iso_parts)

    visit(staging, ())
    return planned


#: ``fill(fd, offsets)``: writes each reserved file (by its path below the staging folder) into the open image
#: ``fd`` at its byte offset.
ExtentFiller = Callable[[int, Mapping[Path, int]], None]


class _Hole(bytes):
    """Bytes pycdlib copies into the image that :class:`_HoleWriter` skips instead of writing."""


class _HoleReader:
    """The content of a reserved file, filled later: holes of the sizes pycdlib reads."""

    mode = "rb"  # what pycdlib checks of a file object

    def __init__(self, size: int) -> None:
        self._left = size

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return offset

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        return _hole(n)


_HOLES: dict[int, _Hole] = {}


def _hole(n: int) -> _Hole:
    """One immutable hole per size (pycdlib reads in equal blocks): no new zero-filled bytes per block."""
    found = _HOLES.get(n)
    if found is None:
        if len(_HOLES) > 64:
            _HOLES.clear()
        found = _HOLES[n] = _Hole(n)
    return found


class _HoleWriter:
    """The image file as pycdlib writes it, with the holes skipped (a seek instead of a write of zeros)."""

    mode = "wb"  # what pycdlib checks of a file object

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp

    def write(self, data: bytes) -> int:
        if type(data) is _Hole:
            self._fp.seek(len(data), os.SEEK_CUR)
            return len(data)
        return self._fp.write(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()

    def flush(self) -> None:
        self._fp.flush()


def write_iso(
    staging: Path,
    out: Path,
    *,
    volume_id: str,
    udf: bool,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    reserved: Mapping[Path, int] | None = None,
    fill: ExtentFiller | None = None,
) -> IsoSummary:
    """Write the staged File-set ``staging`` as an ISO 9660 Level 1 image ``out`` (PS3.12 Annex F, Annex P).

    Every directory and file under ``staging`` goes in with its own name: a File ID component ``CT000001``
    becomes ``CT000001.;1``, an 8.3 name such as ``README.TXT`` becomes ``README.TXT;1``. With ``udf`` the
    image also holds a UDF 1.02 tree with the same names (no version suffix), as DVD profiles want. There
    is no Joliet and no Rock Ridge tree. File contents are streamed from disk while the image is written,
    so memory does not grow with their size; the image appears atomically.

    Parameters
    ----------
    staging
        The File-set root, already named per PS3.10 §8.2 (uppercase, at most 8 characters, no extension)
        plus plain 8.3 names such as ``README.TXT``.
    out
        The image to write; its directory is created if needed.
    volume_id
        A label for the volume, reduced to 32 d-characters by :func:`sanitize_volume_id`.
    udf
        Add the UDF bridge (DVD profiles, PS3.12 Annex P).
    overwrite
        Replace an existing ``out``.
    progress
        Called as ``progress(bytes_done, bytes_total)`` while the image is written.
    reserved
        Files of the image whose bytes are not on disk, by their path below ``staging`` (nothing needs to be
        there) with their sizes: pycdlib lays the image out leaving their extents empty, then ``fill`` writes
        them. A medium's files are sealed straight into the image this way, with no sealed copy on disk first.
    fill
        Required with ``reserved``: ``fill(fd, offsets)`` writes each reserved file into the open image at its
        offset (on several cores, say), before the image is made durable and put in place.

    Returns
    -------
    IsoSummary

    Raises
    ------
    ValueError
        ``staging`` is not a directory, holds a name ISO 9660 Level 1 cannot carry, is deeper than 8
        levels (:data:`MAX_PATH_COMPONENTS` path components) or holds something that is neither file nor directory, or ``out`` lies inside it.
    InputError
        ``out`` exists and ``overwrite`` is false, or the image cannot be written (disk full, ...);
        nothing is left behind.
    """
    staging, out = Path(staging), Path(out)
    if not staging.is_dir():
        raise ValueError(f"{staging}: not a directory")
    staging_root = staging.resolve()
    out_resolved = out.resolve()
    if staging_root == out_resolved or staging_root in out_resolved.parents:
        raise ValueError(f"{out}: the image cannot be written inside the staging directory {staging}")
    reserved = reserved or {}
    if reserved and fill is None:
        raise ValueError("reserved files need a fill to write them")
    planned = _plan(staging, reserved)
    vol_ident = sanitize_volume_id(volume_id)

    iso = pycdlib.PyCdlib()
    iso.new(
        interchange_level=1,
        vol_ident=vol_ident,
        app_ident_str=_APPLICATION_ID,
        joliet=None,
        rock_ridge=None,
        # pycdlib's only UDF option is named "2.60", but the structures it writes are UDF 1.02: the domain
        # identifier suffix and the LVID's minimum/maximum read and write revisions are 0x0102, the Volume
        # Recognition Sequence has NSR02 (tests/media/test_profile_deviations.py reads them back).
        udf="2.60" if udf else None,
    )
    file_count = 0
    try:
        for item in planned:
            udf_path = item.udf_path if udf else None
            try:
                if item.is_dir:
                    iso.add_directory(iso_path=item.iso_path, udf_path=udf_path)
                elif item.source in reserved:
                    # pycdlib only seeks to 0 and reads: a hole of the file's size stands in for it.
                    size = reserved[item.source]
                    iso.add_fp(
                        cast(BinaryIO, _HoleReader(size)), size, iso_path=item.iso_path, udf_path=udf_path
                    )
                    file_count += 1
                else:
                    # add_file keeps the path only: pycdlib opens each file while mastering and
                    # copies it in blocks, so nothing of the content is held in memory.
                    iso.add_file(str(item.source), iso_path=item.iso_path, udf_path=udf_path)
                    file_count += 1
            except PyCdlibException as exc:
                raise ValueError(f"{item.source}: pycdlib refused {item.iso_path}: {exc}") from exc

        def report(done: int, total: int, _opaque: object) -> None:
            if progress is not None:
                progress(done, total)

        try:
            with atomic_write(out, overwrite=overwrite) as fp:
                # pycdlib only writes, seeks and tells: the wrapper stands in for the file.
                iso.write_fp(cast(BinaryIO, _HoleWriter(fp)), blocksize=CHUNK_SIZE_BYTES, progress_cb=report)
                if fill is not None and reserved:
                    fp.flush()
                    block = iso.logical_block_size
                    fill(
                        fp.fileno(),
                        {
                            item.source: iso.get_record(iso_path=item.iso_path).extent_location() * block
                            for item in planned
                            if item.source in reserved
                        },
                    )
        except FileExistsError:
            raise InputError("already exists (use --force to overwrite)", path=out) from None
        except OSError as exc:
            raise InputError(f"cannot write the ISO image: {exc.strerror or exc}", path=out) from exc
    finally:
        iso.close()
    size = out.stat().st_size
    logger.info("%s: ISO 9660 image written (%d files, %d bytes, UDF %s)", out, file_count, size, udf)
    return IsoSummary(path=out, size=size, file_count=file_count, udf=udf)
