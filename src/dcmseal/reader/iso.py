"""The one ISO 9660 reader: every entry of an image with its best name and where its bytes lie, checked.

Used by the scanner (:mod:`dcmseal.reader.containers`), by ``open`` and by the extraction of
:mod:`dcmseal.reader.isofiles`, so that what one refuses the other reports. Entries are reached through pycdlib's
directory records, never through paths (an identifier holding ``/`` would make a path that pycdlib refuses or
misreads), and file data is read from the image at the extents the directory records declare: pycdlib
shortens a length that runs past the end of the image, which would let a truncated image pass as whole.

Names: Rock Ridge names when the image has them (``genisoimage -R``), else Joliet names (``-J``), else the
UDF names of an ISO/UDF bridge's files (the files are those of its ISO 9660 tree), else the ISO 9660 identifiers without version (``CT000001.;1`` ->
``CT000001``). A name that would not be a safe path component (empty, ``.``, ``..``, holding ``/``, ``\\`` or
a control character), a file whose extent runs past the end of the image, and a Rock Ridge symbolic link are
marked on the entry (:attr:`IsoItem.problem`); the caller decides whether that refuses the image (``open``,
extraction) or is a finding (``scan``).

UDF-only images (``mkudffs``, some DVD and Blu-ray authoring tools) have no ISO 9660 tree; pycdlib reads UDF
only beside one, so they are recognised (:func:`is_udf_only_image`) and read with 7-Zip (:mod:`dcmseal.reader.udf`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcmseal.errors import InputError, MissingInputError, ResourceLimitError

__all__ = [
    "ISO_MAX_DEPTH",
    "UDF_ONLY_MESSAGE",
    "IsoItem",
    "IsoWalker",
    "clean_iso_identifier",
    "is_iso_image",
    "is_udf_only_image",
    "iso_volume",
    "unsafe_component",
]

SECTOR_BYTES = 2048
#: The Primary Volume Descriptor sits in sector 16; its Standard Identifier "CD001" at byte 1 (ECMA-119 §8.4).
_PVD_MAGIC_OFFSET = 16 * SECTOR_BYTES + 1
#: ECMA-167 §2/9.1: the Volume Recognition Sequence from byte 32768 holds BEA01, NSR02/NSR03, TEA01.
_UDF_MARKERS = (b"BEA01", b"NSR02", b"NSR03")
#: PS3.12 allows 8 levels; other writers go deeper, but not without end.
ISO_MAX_DEPTH = 64
#: Said when a UDF-only image cannot be read: 7-Zip (:mod:`dcmseal.reader.udf`) is not installed.
UDF_ONLY_MESSAGE = (
    "a UDF-only image (no ISO 9660 tree): reading it needs 7-Zip (apt-get install p7zip-full); "
    "or mount it read-only (mount -o loop,ro IMAGE DIR) and give the folder"
)
_VERSION_SUFFIX = re.compile(r";[0-9]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_iso_image(path: Path) -> bool:
    """Whether ``path`` is a file with an ISO 9660 volume descriptor in sector 16 (by content, not name)."""
    try:
        with open(path, "rb") as fp:
            fp.seek(_PVD_MAGIC_OFFSET)
            return fp.read(5) == b"CD001"
    except OSError:
        return False


# ECMA-167 2/9.1: the Volume Recognition Sequence follows the ISO 9660 descriptors from sector 16 on; an NSR02 or
# NSR03 descriptor (standard identifier at offset 1) says the volume also holds a UDF file system.
_VRS_SECTORS = range(16, 32)
_UDF_NSR = (b"NSR02", b"NSR03")
_PVD_VOLUME_ID = slice(40, 72)  # ECMA-119 8.4.6, in the Primary Volume Descriptor


def iso_volume(path: Path) -> tuple[str, bool]:
    """The Volume Identifier of the ISO 9660 image ``path`` and whether it carries a UDF bridge.

    Returns ``("", False)`` for what is not a readable image. dcmseal writes the UDF bridge on DVD
    profiles only, so it tells a DVD image from a CD image.
    """
    try:
        with open(path, "rb") as fp:
            fp.seek(16 * SECTOR_BYTES)
            sectors = fp.read(len(_VRS_SECTORS) * SECTOR_BYTES)
    except OSError:
        return "", False
    if sectors[1:6] != b"CD001":
        return "", False
    volume_id = sectors[_PVD_VOLUME_ID].decode("ascii", "replace").strip(" \x00")
    starts = range(0, len(sectors), SECTOR_BYTES)
    udf = any(sectors[start + 1 : start + 6] in _UDF_NSR for start in starts)
    return volume_id, udf


def is_udf_only_image(path: Path) -> bool:
    """Whether ``path`` has a UDF Volume Recognition Sequence but no ISO 9660 volume descriptor."""
    try:
        with open(path, "rb") as fp:
            fp.seek(16 * SECTOR_BYTES)
            area = fp.read(16 * SECTOR_BYTES)
    except OSError:
        return False
    if area[1:6] == b"CD001":
        return False
    return any(marker in area for marker in _UDF_MARKERS)


def clean_iso_identifier(identifier: str) -> str:
    """``CT000001.;1`` -> ``CT000001``, ``README.TXT;1`` -> ``README.TXT`` (ECMA-119 §7.5.1)."""
    name = _VERSION_SUFFIX.sub("", identifier)
    return name[:-1] if name.endswith(".") and name not in {".", ".."} else name


def unsafe_component(name: str) -> str | None:
    """Why ``name`` cannot be one component of a path, or None (empty, ``.``, ``..``, separators, controls)."""
    if name in {"", ".", ".."}:
        return "an empty, '.' or '..' name"
    if "/" in name or "\\" in name:
        return "a path separator in a name"
    if _CONTROL.search(name):
        return "control characters in a name"
    return None


def _shown(name: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)


@dataclass(frozen=True, slots=True)
class IsoItem:
    """One entry of an image."""

    name: str  # POSIX path below the root, in the best names the image has
    iso_path: (
        str  # the ISO 9660 identifiers joined (as pycdlib spells them), for messages and the writer's tests
    )
    is_dir: bool
    size: int  # as the directory record declares it
    #: (offset, length) byte ranges of the file in the image, in order (one, unless multi-extent).
    extents: tuple[tuple[int, int], ...] = ()
    problem: str | None = None  # why the entry is not read (unsafe name, truncated, link)
    structural: bool = False  # the problem says the image is malformed or hostile, not just this file
    symlink: bool = False

    @property
    def contiguous(self) -> bool:
        return len(self.extents) <= 1


class IsoWalker:
    """A pycdlib reader over the image ``path``; failures to open become :class:`InputError` naming it."""

    def __init__(self, path: Path) -> None:
        import pycdlib  # loaded only for images
        from pycdlib.pycdlibexception import PyCdlibException

        self.path = Path(path)
        self.iso: Any = pycdlib.PyCdlib()
        try:
            self.size = self.path.stat().st_size
            self.raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise MissingInputError(path) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from exc
        try:
            self.iso.open_fp(self.raw)
        except (PyCdlibException, struct.error, ValueError, IndexError, EOFError, KeyError) as exc:
            self.raw.close()
            if is_udf_only_image(self.path):
                raise InputError(UDF_ONLY_MESSAGE, path=path) from exc
            raise InputError(
                f"not a readable ISO 9660 image (truncated or corrupt?): {_shown(str(exc))}", path=path
            ) from exc
        except OSError as exc:
            self.raw.close()
            raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from exc
        self.block = int(self.iso.logical_block_size)

    def close(self) -> None:
        self.iso.close()
        self.raw.close()

    @property
    def names(self) -> str:
        """Which names the walk gives: ``rock-ridge``, ``joliet``, ``udf`` or ``iso9660``."""
        if self.iso.has_rock_ridge():
            return "rock-ridge"
        if self.iso.has_joliet():
            return "joliet"
        if self.iso.has_udf():
            return "udf"
        return "iso9660"

    def _declared(self, directory: Any) -> dict[bytes, list[tuple[int, int]]]:
        """Identifier -> [(offset, length)] of its extents, as the directory's own records declare them."""
        start = int(directory.extent_location()) * self.block
        length = max(0, min(int(directory.get_data_length()), self.size - start))
        self.raw.seek(start)
        data = self.raw.read(length)
        declared: dict[bytes, list[tuple[int, int]]] = {}
        offset = 0
        while offset < len(data):
            record_length = data[offset]
            if record_length == 0:  # padding up to the next logical block
                offset += self.block - offset % self.block
                continue
            record = data[offset : offset + record_length]
            offset += record_length
            if len(record) < 33 or len(record) < 33 + record[32]:
                break
            identifier = record[33 : 33 + record[32]]
            extent = int.from_bytes(record[2:6], "little")
            size = int.from_bytes(record[10:14], "little")
            # A multi-extent file has one record per extent, all with the same identifier (ECMA-119 §9.1.6).
            declared.setdefault(identifier, []).append((extent * self.block, size))
        return declared

    def walk(self, *, max_members: int) -> Iterator[IsoItem]:
        """Every entry below the root, parents first, sorted by name; problems marked, never raised.

        Raises
        ------
        ResourceLimitError
            More than ``max_members`` entries.
        InputError
            A directory cannot be listed at all.
        """
        kind = self.names
        udf_names = self._udf_names(max_members=max_members) if kind == "udf" else {}
        from pycdlib.pycdlibexception import PyCdlibException

        try:
            root = (
                self.iso.get_record(joliet_path="/")
                if kind == "joliet"
                else self.iso.get_record(iso_path="/")
            )
        except (PyCdlibException, struct.error, ValueError) as exc:
            raise InputError(f"cannot list the image's root: {exc}", path=self.path) from exc
        count = 0
        stack: list[tuple[Any, str, str, int]] = [(root, "", "", 1)]
        while stack:
            directory, prefix, iso_prefix, level = stack.pop()
            try:
                children = [c for c in directory.children if not (c.is_dot() or c.is_dotdot())]
                declared = self._declared(directory)
            except (PyCdlibException, struct.error, ValueError, AttributeError) as exc:
                raise InputError(f"cannot list {iso_prefix or '/'}: {exc}", path=self.path) from exc
            subdirs: list[tuple[Any, str, str, int]] = []
            seen: set[bytes] = set()
            for record in sorted(children, key=lambda c: c.file_identifier()):
                identifier = bytes(record.file_identifier())
                if identifier in seen:
                    continue  # the next extent of a multi-extent file: one entry, all its extents
                seen.add(identifier)
                count += 1
                if count > max_members:
                    raise ResourceLimitError(f"more than {max_members} entries", path=self.path)
                raw_name = _record_name(record, identifier, kind)
                iso_path = f"{iso_prefix}/{identifier.decode('latin-1')}"
                name = f"{prefix}{raw_name}"
                why = unsafe_component(raw_name)
                if why is not None:
                    yield IsoItem(
                        name=f"{prefix}{_shown(raw_name)}",
                        iso_path=iso_path,
                        is_dir=bool(record.is_dir()),
                        size=0,
                        problem=f"refusing the name {_shown(raw_name)!r} in {iso_prefix or '/'}: "
                        f"unsafe as a path component ({why})",
                        structural=True,
                    )
                    continue
                if record.is_dir():
                    if level >= ISO_MAX_DEPTH:
                        yield IsoItem(
                            name=name,
                            iso_path=iso_path,
                            is_dir=True,
                            size=0,
                            problem=f"directories nested deeper than {ISO_MAX_DEPTH} levels",
                            structural=True,
                        )
                        continue
                    subdirs.append((record, f"{name}/", iso_path, level + 1))
                    yield IsoItem(name=name, iso_path=iso_path, is_dir=True, size=0)
                    continue
                if kind == "rock-ridge" and record.rock_ridge is not None and record.rock_ridge.is_symlink():
                    yield IsoItem(
                        name=name,
                        iso_path=iso_path,
                        is_dir=False,
                        size=0,
                        problem="a symbolic link (Rock Ridge): not followed",
                        symlink=True,
                    )
                    continue
                if udf_names and getattr(record, "inode", None) is not None:
                    name = udf_names.get(id(record.inode), name)
                extents = tuple(declared.get(identifier, [(int(record.extent_location()) * self.block, 0)]))
                extents = tuple((start, length) for start, length in extents if length)
                size = sum(length for _, length in extents)
                end = max((start + length for start, length in extents), default=0)
                problem = None
                if end > self.size:
                    problem = f"truncated ISO image: {_shown(iso_path)} ends at byte {end}, the image has {self.size}"
                yield IsoItem(
                    name=name,
                    iso_path=iso_path,
                    is_dir=False,
                    size=size,
                    extents=extents,
                    problem=problem,
                    structural=problem is not None,
                )
            stack.extend(reversed(subdirs))

    def _udf_names(self, *, max_members: int) -> dict[int, str]:
        """id(inode) -> the file's path in the UDF tree of a bridge image (pycdlib shares one inode per file)."""
        from pycdlib.pycdlibexception import PyCdlibException

        names: dict[int, str] = {}
        stack: list[tuple[str, str, int]] = [("/", "", 1)]
        while stack and len(names) <= max_members:
            udf_dir, prefix, level = stack.pop()
            try:
                children = [c for c in self.iso.list_children(udf_path=udf_dir) if c is not None]
            except (PyCdlibException, struct.error, ValueError, UnicodeError):
                continue  # the ISO 9660 names stand for what the UDF tree does not say
            for entry in children:
                if entry.is_dot() or entry.is_dotdot():
                    continue
                identifier = bytes(entry.file_identifier())
                try:
                    name = identifier.decode("utf-8")
                except UnicodeDecodeError:
                    name = identifier.decode("latin-1")  # OSTA CS0 8-bit
                if unsafe_component(name) is not None:
                    continue  # an unsafe UDF name is not used; the ISO 9660 one is checked on its own
                if entry.is_dir():
                    if level < ISO_MAX_DEPTH:
                        stack.append((f"{udf_dir.rstrip('/')}/{name}", f"{prefix}{name}/", level + 1))
                elif entry.inode is not None:
                    names[id(entry.inode)] = f"{prefix}{name}"
        return names


def _record_name(record: Any, identifier: bytes, kind: str) -> str:
    if kind == "joliet":
        name = identifier.decode("utf-16-be", "replace")
        return _VERSION_SUFFIX.sub("", name)
    if kind == "rock-ridge" and record.rock_ridge is not None:
        try:
            rr = bytes(record.rock_ridge.name())
        except (AttributeError, TypeError, ValueError):
            rr = b""
        if rr:
            return rr.decode("utf-8", "replace")
    return clean_iso_identifier(identifier.decode("ascii", "replace"))
