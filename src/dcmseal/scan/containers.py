"""The files inside what the scanner is given: folders (mounted media), zip archives and ISO 9660 images, read in place.

Nothing is extracted to disk: folder files are read where they are, zip members and ISO files through
seekable streams (zipfile, pycdlib). Names are only labels here (never used to write), but they are checked
for the tricks that matter to a reader of the report (control characters are escaped).
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dcmseal.errors import InputError, ResourceLimitError

__all__ = [
    "MAX_MEMBERS",
    "Archive",
    "Member",
    "is_iso_image",
    "is_quarantine_dir",
    "iter_folder",
    "open_archive",
    "printable_name",
]

#: More entries than this in one archive or image is refused (a 2,000-image study is a few thousand).
MAX_MEMBERS = 200_000
#: A zip member that expands more than this many times (and past 1 MiB) is not read: a bomb.
MAX_EXPANSION = 100
_SECTOR_BYTES = 2048
_PVD_MAGIC_OFFSET = 16 * _SECTOR_BYTES + 1
_VERSION_SUFFIX = re.compile(r";[0-9]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The markers a quarantine folder carries (see :mod:`dcmseal.scan.quarantine`); scans and imports skip it.
QUARANTINE_MARKERS = (".dcmseal-quarantine", "QUARANTINE.JSON")


def is_quarantine_dir(path: Path) -> bool:
    """Whether ``path`` is a dcmseal quarantine folder (it holds a marker file)."""
    return any((Path(path) / marker).is_file() for marker in QUARANTINE_MARKERS)


def printable_name(name: str) -> str:
    """``name`` with control characters escaped (names on a hostile medium can hold anything)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)


@dataclass(slots=True)  # not frozen: one is made per file of a tree, and frozen __init__ costs 3x
class Member:
    """One file of a folder, zip or image."""

    name: str  # POSIX path relative to the container's root
    size: int
    path: str | None = None  # on disk (folders); a str, not a Path: this is the hot path of big trees
    symlink: bool = False  # a symbolic link (folders): never followed
    problem: str | None = None  # why it cannot be read (encrypted zip member, bomb)
    key: Any = None  # the archive's handle for it (ZipInfo, ISO path)


def iter_folder(root: Path, *, max_members: int = MAX_MEMBERS) -> Iterator[Member]:
    """Every file under ``root`` (hidden ones too: a hostile medium hides things), sorted; links not followed.

    Quarantine folders (:func:`is_quarantine_dir`) are skipped.
    """
    count = 0
    stack = [(Path(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"cannot list: {exc.strerror or exc}", path=directory) from exc
        subdirs: list[tuple[Path, str]] = []
        for entry in entries:
            name = f"{prefix}{entry.name}"
            if entry.is_symlink():
                yield Member(name, 0, entry.path, symlink=True)
                continue
            if entry.is_dir(follow_symlinks=False):
                if not is_quarantine_dir(Path(entry.path)):
                    subdirs.append((Path(entry.path), f"{name}/"))
                continue
            if not entry.is_file(follow_symlinks=False):
                continue  # sockets, FIFOs, devices: nothing a medium carries
            count += 1
            if count > max_members:
                raise ResourceLimitError(f"more than {max_members} files", path=root)
            yield Member(name, -1, entry.path)
        stack.extend(reversed(subdirs))


def is_iso_image(path: Path) -> bool:
    """Whether ``path`` has an ISO 9660 volume descriptor in sector 16 (by content, not name)."""
    try:
        with open(path, "rb") as fp:
            fp.seek(_PVD_MAGIC_OFFSET)
            return fp.read(5) == b"CD001"
    except OSError:
        return False


class Archive:
    """Members of a zip archive or an ISO 9660 image, each readable as a seekable stream."""

    def __init__(self, path: Path, members: list[Member], opener: Any, closer: Any) -> None:
        self.path = path
        self.members = members
        self._opener = opener
        self._closer = closer

    def open(self, member: Member) -> BinaryIO:
        """A seekable stream of ``member``'s bytes (the caller closes it)."""
        stream: BinaryIO = self._opener(member)
        return stream

    def read(self, member: Member, limit: int) -> bytes:
        """Up to ``limit`` bytes of ``member`` from its start."""
        with self.open(member) as fp:
            return fp.read(limit)

    def close(self) -> None:
        self._closer()


@contextmanager
def open_archive(path: Path) -> Iterator[Archive]:
    """Open the zip archive or ISO 9660 image ``path`` for reading in place.

    Raises
    ------
    InputError
        Neither a readable zip nor a readable ISO 9660 image.
    """
    archive = _open_iso(path) if is_iso_image(path) else _open_zip(path)
    try:
        yield archive
    finally:
        archive.close()


def _open_zip(path: Path) -> Archive:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"not a readable zip archive: {exc}", path=path) from exc
    members: list[Member] = []
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        zf.close()
        raise ResourceLimitError(f"more than {MAX_MEMBERS} members", path=path)
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename.replace("\\", "/")
        problem = None
        if info.flag_bits & 0x1:
            problem = "encrypted zip member: cannot be read"
        elif stat.S_ISLNK(info.external_attr >> 16):
            problem = "symbolic link in the archive"
        elif info.file_size > 1024 * 1024 and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
            problem = f"expands {info.file_size // max(info.compress_size, 1)} times: a zip bomb?"
        members.append(Member(name, info.file_size, problem=problem, key=info))
    return Archive(path, members, lambda m: zf.open(m.key), zf.close)


def _clean_iso_name(identifier: str) -> str:
    """``CT000001.;1`` -> ``CT000001``, ``README.TXT;1`` -> ``README.TXT`` (ECMA-119 §7.5.1)."""
    name = _VERSION_SUFFIX.sub("", identifier)
    return name[:-1] if name.endswith(".") and name not in {".", ".."} else name


def _open_iso(path: Path) -> Archive:
    import pycdlib  # loaded only for images
    from pycdlib.pycdlibexception import PyCdlibException

    iso: Any = pycdlib.PyCdlib()
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the archive's closer
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    try:
        iso.open_fp(raw)
    except (PyCdlibException, struct.error, ValueError, IndexError, EOFError) as exc:
        raw.close()
        raise InputError(f"not a readable ISO 9660 image: {exc}", path=path) from exc
    members: list[Member] = []
    stack: list[tuple[str, str, int]] = [("/", "", 1)]
    try:
        while stack:
            iso_dir, prefix, level = stack.pop()
            children = sorted(
                (c for c in iso.list_children(iso_path=iso_dir) if not (c.is_dot() or c.is_dotdot())),
                key=lambda c: c.file_identifier(),
            )
            subdirs: list[tuple[str, str, int]] = []
            for record in children:
                identifier = record.file_identifier().decode("ascii", "replace")
                iso_path = f"{iso_dir.rstrip('/')}/{identifier}"
                name = f"{prefix}{_clean_iso_name(identifier)}"
                if record.is_dir():
                    if level >= 64:
                        raise InputError(f"{iso_path}: directories nested deeper than 64 levels", path=path)
                    subdirs.append((iso_path, f"{name}/", level + 1))
                    continue
                members.append(Member(name, int(record.get_data_length()), key=iso_path))
                if len(members) > MAX_MEMBERS:
                    raise ResourceLimitError(f"more than {MAX_MEMBERS} entries", path=path)
            stack.extend(reversed(subdirs))
    except (PyCdlibException, struct.error, ValueError, UnicodeError) as exc:
        iso.close()
        raw.close()
        raise InputError(f"cannot list the ISO image: {exc}", path=path) from exc
    except BaseException:
        iso.close()
        raw.close()
        raise

    def close() -> None:
        iso.close()
        raw.close()

    return Archive(path, members, lambda m: iso.open_file_from_iso(iso_path=m.key), close)
