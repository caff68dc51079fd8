"""ISO 9660 Level 1 images (plus UDF for DVD profiles) of a staged File-set, written and read with pycdlib.

PS3.12 Annex F (CD-R) asks for ISO 9660 Level 1, at most 8 directory levels (the root is level 1), File ID
components mapped to ``/COMP1/.../COMPN.;1`` (no extension, version 1) and the DICOMDIR at ``/DICOMDIR.;1``;
Annex P (DVD) asks readers to read both UDF and ISO 9660, so DVD images carry both trees with the same names
(a UDF 1.02 bridge: what pycdlib writes, see :func:`write_iso`).
No Joliet and no Rock Ridge: a conformant reader sees the names exactly as the File IDs (standards.md §6.4).

Readers (:func:`list_iso`, :func:`extract_iso`, :func:`open_medium`) take media from other writers too, and
treat them as hostile: names that would escape the destination, images cut short, archives that expand
without bound are refused with an :class:`~dcmseal.errors.InputError` naming the file.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from dcmseal.errors import HostileMediumError, InputError, MissingInputError, ResourceLimitError
from dcmseal.fsutil import CHUNK_SIZE_BYTES, Extent, atomic_write, make_dirs
from dcmseal.media.fatimage import extract_fat_image, is_fat_image
from dcmseal.reader.containers import ExtentsReader, printable_name, zip_name_problem
from dcmseal.reader.iso import IsoItem, IsoWalker, clean_iso_identifier, is_iso_image, iso_volume

__all__ = [
    "DEFAULT_MAX_EXPANSION",
    "DEFAULT_MAX_EXTRACT_BYTES",
    "DEFAULT_MAX_MEMBERS",
    "MAX_DIRECTORY_LEVELS",
    "MAX_PATH_COMPONENTS",
    "ExtentFiller",
    "IsoEntry",
    "IsoFile",
    "IsoSummary",
    "extract_iso",
    "extract_zip",
    "is_iso_image",
    "iso_file_extents",
    "iso_volume",
    "list_iso",
    "open_medium",
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

#: An archive that announces more than this much content is refused before anything is extracted
#: (a DVD holds 8.5 GB, a Blu-ray 100 GB; a study on a USB stick rarely more than a few tens of GB).
DEFAULT_MAX_EXTRACT_BYTES = 64 * 1024**3
#: A zip whose content is more than this many times the archive is treated as a bomb (DICOM
#: images compress 2-10x losslessly; 100x is the usual zip-bomb threshold).
DEFAULT_MAX_EXPANSION = 100
#: Below this much content the expansion ratio is not checked: a few small files cannot hurt.
_EXPANSION_GRACE_BYTES = 1024 * 1024
#: More entries than this in one archive or image is refused (a 2,000-image study is a few thousand).
DEFAULT_MAX_MEMBERS = 200_000

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


# --- writing ------------------------------------------------------------------------------------------------


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


# --- reading ------------------------------------------------------------------------------------------------


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


class _Created:
    """Files and directories an extraction created, removed again if it fails (no partial output)."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.dirs: list[Path] = []

    def mkdir(self, path: Path) -> None:
        if path.is_dir():
            return
        path.mkdir()
        self.dirs.append(path)

    def rollback(self) -> None:
        for file in reversed(self.files):
            file.unlink(missing_ok=True)
        for directory in reversed(self.dirs):
            shutil.rmtree(directory, ignore_errors=True)


def _target(dest: Path, relative: PurePosixPath, source: Path) -> Path:
    resolved_root = dest.resolve()
    candidate = dest.joinpath(*relative.parts)
    resolved = candidate.resolve()
    if resolved == resolved_root or resolved_root not in resolved.parents:
        raise HostileMediumError(f"refusing {relative}: it would escape {dest}", path=source)
    return candidate


def _copy_limited(read: Callable[[int], bytes], out: Any, expected: int) -> int:
    written = 0
    while written < expected:
        chunk = read(min(CHUNK_SIZE_BYTES, expected - written))
        if not chunk:
            break
        out.write(chunk)
        written += len(chunk)
    return written


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
    created = _Created()
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
            target = _target(dest, PurePosixPath(item.name), path)
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
                written = _copy_limited(data.read, out, item.size)
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


# --- zip archives -------------------------------------------------------------------------------------------


def _zip_member_path(name: str, archive: Path) -> PurePosixPath:
    problem = zip_name_problem(name)
    if problem is not None:
        raise HostileMediumError(f"refusing the member {printable_name(name)!r}: {problem}", path=archive)
    return PurePosixPath(*[p for p in name.replace("\\", "/").split("/") if p])


def extract_zip(
    path: Path,
    dest: Path,
    *,
    max_total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    max_expansion: int = DEFAULT_MAX_EXPANSION,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[Path]:
    """Extract the zip archive ``path`` under ``dest`` safely; return the files written, in archive order.

    Every member is checked before anything is written: no absolute paths, no ``..``, no symbolic links,
    no encrypted members, no duplicates; the announced content must stay within ``max_total_bytes`` and
    within ``max_expansion`` times the archive's size (zip bombs). The bytes actually written are counted
    against the same limits, as the announced sizes may lie.

    Raises
    ------
    InputError
        Not a zip archive, a refused member (named), or a member whose data is corrupt. Whatever was
        extracted before the failure is removed.
    ResourceLimitError
        Too much content, too high an expansion ratio, or more than ``max_members`` members.
    """
    path, dest = Path(path), Path(dest)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise MissingInputError(path) from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"not a readable zip archive: {exc}", path=path) from exc
    created = _Created()
    extracted: list[Path] = []
    with archive:
        try:
            infos = archive.infolist()
            if len(infos) > max_members:
                raise ResourceLimitError(f"more than {max_members} members", path=path)
            plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            seen: set[PurePosixPath] = set()
            total = 0
            for info in infos:
                member = _zip_member_path(info.filename, path)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise InputError(f"refusing the member {info.filename!r}: symbolic link", path=path)
                if info.flag_bits & 0x1:
                    raise InputError(f"refusing the member {info.filename!r}: encrypted", path=path)
                if member in seen:
                    raise InputError(f"refusing the member {info.filename!r}: duplicated name", path=path)
                seen.add(member)
                total += info.file_size
                plan.append((info, member))
            archive_size = max(path.stat().st_size, 1)
            if total > max_total_bytes:
                raise ResourceLimitError(
                    f"the archive announces {total} bytes, more than the limit of {max_total_bytes}",
                    path=path,
                )
            if total > _EXPANSION_GRACE_BYTES and total > max_expansion * archive_size:
                raise ResourceLimitError(
                    f"the archive expands {total / archive_size:.0f} times ({total} bytes from {archive_size}), "
                    f"more than the limit of {max_expansion} (zip bomb?)",
                    path=path,
                )
            make_dirs(dest)
            written_total = 0
            for info, member in plan:
                target = _target(dest, member, path)
                if info.is_dir():
                    for parent in reversed(member.parents[:-1]):
                        created.mkdir(_target(dest, parent, path))
                    created.mkdir(target)
                    continue
                for parent in reversed(member.parents[:-1]):
                    created.mkdir(_target(dest, parent, path))
                try:
                    out = open(target, "xb")  # noqa: SIM115 - closed below; "x" never follows a planted file
                except FileExistsError:
                    raise InputError(
                        f"refusing the member {info.filename!r}: {target} exists", path=path
                    ) from None
                created.files.append(target)
                with out, archive.open(info) as data:
                    # zipfile stops at the announced size and checks the CRC at the end of the member.
                    written = _copy_limited(data.read, out, info.file_size)
                    if data.read(1):
                        raise InputError(f"the member {info.filename!r} is longer than announced", path=path)
                written_total += written
                if written != info.file_size:
                    raise InputError(f"the member {info.filename!r} is shorter than announced", path=path)
                if written_total > max_total_bytes:
                    raise ResourceLimitError(f"more than {max_total_bytes} bytes extracted", path=path)
                extracted.append(target)
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, zlib.error) as exc:
            created.rollback()
            raise InputError(f"corrupt zip archive: {exc}", path=path) from exc
        except BaseException:
            created.rollback()
            raise
    logger.info("%s: %d files extracted to %s", path, len(extracted), dest)
    return extracted


# --- media --------------------------------------------------------------------------------------------------


def open_medium(
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
