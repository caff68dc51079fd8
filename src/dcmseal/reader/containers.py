"""The files inside what the scanner is given: folders (mounted media), zip archives, ISO 9660 and UDF images, read in place.

Nothing is extracted to disk: folder files are read where they are, zip members and ISO files through
seekable streams (zipfile, pycdlib; a UDF-only image's files through 7-Zip, :mod:`dcmseal.reader.udf`). A zip inside an archive is opened too (:func:`open_nested`), from the
image's stream or, inside a zip, from memory, within bounds against zip bombs (:class:`NestingLimits`: depth,
size held in memory, bytes and members of all nested archives together). Names are only labels here (never
used to write), but they are checked for the tricks that matter to a reader of the report (control
characters are escaped).
"""

from __future__ import annotations

import io
import lzma
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from dcmseal.errors import InputError, ResourceLimitError
from dcmseal.reader.iso import IsoWalker, is_iso_image, is_udf_only_image
from dcmseal.reader.udf import list_udf, read_udf_member

__all__ = [
    "MAX_MEMBERS",
    "MAX_NESTING",
    "MEMBER_READ_ERRORS",
    "NESTED_SEPARATOR",
    "Archive",
    "ExtentsReader",
    "Member",
    "NestingBudget",
    "NestingLimits",
    "is_iso_image",
    "is_quarantine_dir",
    "is_udf_only_image",
    "is_zip_head",
    "iter_folder",
    "open_archive",
    "open_nested",
    "printable_name",
    "zip_name_problem",
]

#: More entries than this in one archive or image is refused (a 2,000-image study is a few thousand).
MAX_MEMBERS = 200_000
#: A zip member that expands more than this many times (and past 1 MiB) is not read: a bomb.
MAX_EXPANSION = 100
#: Archives inside an archive are opened this many levels deep (in ``medium.zip``, ``a.zip!b.zip!c.zip!IM1``
#: is three levels; a zip in a folder counts as the input itself).
MAX_NESTING = 3
#: A zip inside a zip is read into memory to be opened (never extracted to disk); a larger one is not opened.
MAX_NESTED_ARCHIVE_BYTES = 64 * 1024 * 1024
#: What all the archives nested in one input may hold together, as their directories declare: a zip bomb
#: made of many small layers (42.zip) stops here, each layer having passed the per-member checks.
MAX_NESTED_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
MAX_NESTED_MEMBERS = 100_000
#: Joins an archive's label and its members' names in reports: ``outer.zip!inner.zip!IM1``.
NESTED_SEPARATOR = "!"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
#: What reading a corrupt or hostile member raises: zipfile's BadZipFile (bad CRC), zlib and lzma errors
#: (bad compressed data), EOFError (truncated), NotImplementedError (unknown method, a RuntimeError), OSError.
MEMBER_READ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)
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
    problem: str | None = None  # why it cannot be read (encrypted zip member, bomb, unsafe name)
    key: Any = None  # the archive's handle for it (ZipInfo; the extents of an image's file)
    #: The problem says the container is malformed or hostile (a name escaping the root, a file past the end
    #: of the image): ``open`` refuses such a medium, ``scan`` reports it as a finding.
    structural: bool = False


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


_DRIVE = re.compile(r"^[A-Za-z]:")


def zip_name_problem(name: str) -> str | None:
    """Why the zip member name ``name`` would escape a destination (zip-slip), or None.

    Windows tools sometimes write ``\\`` as the separator: it counts as one, so ``..\\evil`` is caught too.
    """
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        return "an absolute path"
    parts = [p for p in normalized.split("/") if p]
    if not parts or any(p in {".", ".."} for p in parts):
        return "'..' or '.' in its path"
    if _CONTROL.search(normalized):
        return "control characters in its name"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class NestingLimits:
    """How far archives inside archives are opened (see the module constants for the defaults' reasons)."""

    depth: int = MAX_NESTING
    archive_bytes: int = MAX_NESTED_ARCHIVE_BYTES
    total_bytes: int = MAX_NESTED_TOTAL_BYTES
    total_members: int = MAX_NESTED_MEMBERS


@dataclass(slots=True)
class NestingBudget:
    """What the archives nested in one input have used of their :class:`NestingLimits` so far."""

    limits: NestingLimits
    bytes_used: int = 0
    members_used: int = 0


def is_zip_head(head: bytes) -> bool:
    """Whether ``head`` starts as a zip archive does (a local file header, or the directory of an empty one)."""
    return bytes(head[:4]) in _ZIP_MAGICS


class Archive:
    """Members of a zip archive, an ISO 9660 image or a UDF-only image, each readable as a seekable stream."""

    def __init__(
        self, path: Path, members: list[Member], opener: Any, closer: Any, *, kind: str = "zip"
    ) -> None:
        self.path = path
        self.members = members
        self.kind = kind  # "zip", "iso" or "udf"
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
    """Open the zip archive, ISO 9660 image or UDF-only image ``path`` for reading in place.

    Raises
    ------
    InputError
        Neither a readable zip nor a readable ISO 9660 image, or a UDF-only image 7-Zip cannot read (or is
        not installed to read).
    """
    if is_udf_only_image(path):
        archive = _open_udf(path)
    else:
        archive = _open_iso(path) if is_iso_image(path) else _open_zip(path)
    try:
        yield archive
    finally:
        archive.close()


def _open_zip(path: Path, source: BinaryIO | None = None, *, max_members: int = MAX_MEMBERS) -> Archive:
    try:
        zf = zipfile.ZipFile(path if source is None else source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(f"not a readable zip archive: {exc}", path=path) from exc
    members: list[Member] = []
    seen: set[str] = set()
    infos = zf.infolist()
    if len(infos) > max_members:
        zf.close()
        raise ResourceLimitError(f"more than {max_members} members", path=path)
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename.replace("\\", "/")
        unsafe = zip_name_problem(info.filename)
        link = stat.S_ISLNK(info.external_attr >> 16)
        problem = None
        if unsafe is not None:
            problem = f"refusing the member {printable_name(info.filename)!r}: {unsafe}"
        elif name in seen:
            problem = f"refusing the member {printable_name(info.filename)!r}: two members with one name"
        elif info.flag_bits & 0x1:
            problem = "encrypted zip member: cannot be read"
        elif link:
            problem = "symbolic link in the archive"
        elif info.file_size > 1024 * 1024 and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
            problem = f"expands {info.file_size // max(info.compress_size, 1)} times: a zip bomb?"
        structural = unsafe is not None or name in seen
        seen.add(name)
        members.append(
            Member(
                printable_name(name),
                info.file_size,
                problem=problem,
                key=info,
                symlink=link,
                structural=structural,
            )
        )
    return Archive(path, members, lambda m: zf.open(m.key), zf.close)


def open_nested(parent: Archive, member: Member, *, label: str, depth: int, budget: NestingBudget) -> Archive:
    """Open the zip archive ``member`` of ``parent`` (``depth`` 1 for an archive inside the input).

    Inside an ISO image the member's own stream is opened (seeks are cheap there); inside a zip the member
    is read into memory first (seeking back in a compressed stream decompresses it again from its start),
    at most ``archive_bytes``. Its members' declared sizes and count are charged to ``budget``.

    Raises
    ------
    ResourceLimitError
        A bound of ``budget.limits`` would be passed: nothing of the archive is read beyond its directory.
    InputError
        Not a readable zip archive.
    """
    limits = budget.limits
    where = Path(label)
    if member.problem is not None:
        raise InputError(member.problem, path=where)
    if depth > limits.depth:
        raise ResourceLimitError(
            f"an archive nested more than {limits.depth} levels deep: not opened", path=where
        )
    if budget.members_used >= limits.total_members:
        raise _members_exceeded(where, limits)
    stack = ExitStack()  # closes the member's stream (an ISO's) or the bytes read (a zip's) with the archive
    if parent.kind == "iso":
        source: BinaryIO = stack.enter_context(parent.open(member))
    else:
        if member.size > limits.archive_bytes:
            raise ResourceLimitError(
                f"a nested archive of {member.size} bytes (more than {limits.archive_bytes} to hold in memory): "
                "not opened",
                path=where,
            )
        if budget.bytes_used + member.size > limits.total_bytes:
            raise _total_exceeded(where, limits)
        with parent.open(member) as fp:
            data = fp.read(limits.archive_bytes + 1)
        if len(data) > limits.archive_bytes:  # the directory understated the size
            raise ResourceLimitError(
                f"a nested archive larger than its directory says (over {limits.archive_bytes} bytes): not opened",
                path=where,
            )
        budget.bytes_used += len(data)
        source = stack.enter_context(io.BytesIO(data))
    try:
        archive = _open_zip(where, source, max_members=limits.total_members - budget.members_used)
    except ResourceLimitError:
        stack.close()
        raise _members_exceeded(where, limits) from None
    except BaseException:
        stack.close()
        raise
    declared = sum(m.size for m in archive.members)
    if budget.bytes_used + declared > limits.total_bytes:
        archive.close()
        stack.close()
        raise _total_exceeded(where, limits)
    budget.bytes_used += declared
    budget.members_used += len(archive.members)
    stack.callback(archive._closer)  # LIFO: the zip first, then its source

    def close() -> None:
        stack.close()

    archive._closer = close
    return archive


def _members_exceeded(where: Path, limits: NestingLimits) -> ResourceLimitError:
    return ResourceLimitError(
        f"nested archives would hold more than {limits.total_members} members in all (a zip bomb?): not opened",
        path=where,
    )


def _total_exceeded(where: Path, limits: NestingLimits) -> ResourceLimitError:
    return ResourceLimitError(
        f"nested archives would expand past {limits.total_bytes} bytes in all (a zip bomb?): not opened",
        path=where,
    )


def _open_iso(path: Path) -> Archive:
    walker = IsoWalker(path)
    members: list[Member] = []
    try:
        for item in walker.walk(max_members=MAX_MEMBERS):
            if item.is_dir and item.problem is None:
                continue
            members.append(
                Member(
                    item.name,
                    item.size,
                    problem=item.problem,
                    key=item.extents,
                    symlink=item.symlink,
                    structural=item.structural,
                )
            )
    except BaseException:
        walker.close()
        raise

    def opener(member: Member) -> BinaryIO:
        return io.BufferedReader(ExtentsReader(path, member.key))

    return Archive(path, members, opener, walker.close, kind="iso")


def _open_udf(path: Path, *, max_members: int = MAX_MEMBERS) -> Archive:
    """A UDF-only image through 7-Zip: its names checked as a zip's are, its links marked and never read."""
    members: list[Member] = []
    seen: set[str] = set()
    for entry in list_udf(path, max_members=max_members):
        if entry.is_dir and not entry.symlink:
            continue
        unsafe = zip_name_problem(entry.path)
        problem = None
        if unsafe is not None:
            problem = f"refusing the file {printable_name(entry.path)!r}: {unsafe}"
        elif entry.path in seen:
            problem = f"refusing the file {printable_name(entry.path)!r}: two files with one name"
        elif entry.symlink:
            problem = "a symbolic link (UDF): not followed"
        structural = problem is not None and not entry.symlink
        seen.add(entry.path)
        members.append(
            Member(
                printable_name(entry.path),
                entry.size,
                problem=problem,
                key=entry.path,
                symlink=entry.symlink,
                structural=structural,
            )
        )

    def opener(member: Member) -> BinaryIO:
        return cast(BinaryIO, read_udf_member(path, member.key, member.size))

    return Archive(path, members, opener, lambda: None, kind="udf")


class ExtentsReader(io.RawIOBase):
    """The bytes of a file of an image as one stream: its extents, in order, read from the image."""

    def __init__(self, image: Path, extents: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self._fd = os.open(image, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.name = str(image)  # io.BufferedReader and pydicom ask a stream for one
        self._extents = extents
        self._size = sum(length for _, length in extents)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any, /) -> int:
        want = min(len(buffer), self._size - self._position)
        if want <= 0:
            return 0
        skip = self._position
        for start, length in self._extents:
            if skip >= length:
                skip -= length
                continue
            n = min(want, length - skip)
            view = memoryview(buffer).cast("B")[:n]
            got = os.preadv(self._fd, [view], start + skip)
            self._position += got
            return got
        return 0

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
