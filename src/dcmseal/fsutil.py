"""Atomic writes, chunked copies and safe output paths."""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CHUNK_SIZE_BYTES",
    "BatchCommit",
    "Extent",
    "ExtentReader",
    "PendingFile",
    "atomic_write",
    "fsync_dir",
    "iter_files",
    "link_or_copy",
    "make_state_directory",
    "open_state_file",
    "private_file_mode",
    "relative_output_path",
    "sha256_file",
    "start_writeback",
    "sync_filesystem",
    "try_hard_link",
]

#: Every stream in dcmseal moves in chunks of this size; memory is bounded by it, not by file size.
CHUNK_SIZE_BYTES = 1024 * 1024

#: A durable file starts its write-back every this many bytes, so the final fsync finds little left.
WRITEBACK_BYTES = 32 * 1024 * 1024

_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start write-out of the range's dirty pages, do not wait


def _load_libc() -> ctypes.CDLL | None:
    # The symbols already loaded in this process (libc among them): no library search at import time
    # (ctypes.util.find_library runs ldconfig, tens of milliseconds on every command).
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def _libc_function(name: str, *argtypes: type) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    function = getattr(_LIBC, name, None) if _LIBC is not None else None
    if function is not None:
        function.argtypes = list(argtypes)
        function.restype = ctypes.c_int
    return function


_sync_file_range = _libc_function(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)
_syncfs = _libc_function("syncfs", ctypes.c_int)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to disk now (Linux; elsewhere nothing).

    The final fsync of a large output then finds little left to write.
    """
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # advisory: an error changes nothing


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _WritebackWriter(io.BufferedWriter):
    """A buffered file that starts the write-back of every :data:`WRITEBACK_BYTES` it is given.

    Left alone, the kernel holds a large file's pages dirty until the final fsync, which then waits
    for all of them (0.6-0.9 s per GiB measured); started early, the disk writes while we encrypt.
    """

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__(raw, buffer_size=256 * 1024)
        self._started_to = 0  # write-back was asked for every byte before this offset
        self._written = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:  # type: ignore[override]
        n = super().write(data)
        self._written += n
        if self._written - self._started_to >= WRITEBACK_BYTES:
            self.flush()
            start_writeback(self.fileno(), self._started_to, self._written - self._started_to)
            self._started_to = self._written
        return n


@contextmanager
def atomic_write(
    dst: Path,
    *,
    mode: int = 0o600,
    overwrite: bool = False,
    durable: bool = True,
    batch: BatchCommit | None = None,
) -> Iterator[BinaryIO]:
    """Write ``dst`` all at once or not at all.

    The bytes go to a temporary file beside ``dst``, which is flushed, fsynced and renamed over
    ``dst`` only when the ``with`` block ends without an exception; on any exception the temporary
    file is removed, so no partial output (and no partial plaintext) survives. The directory is
    fsynced after the rename. ``durable=False`` skips the fsyncs, for scratch files in a staging folder
    that is thrown away anyway (still all or nothing, still removed on failure).

    With ``batch``, the finished temporary file is handed to the batch instead of being fsynced and
    renamed here: :meth:`BatchCommit.commit` makes the whole batch durable at once, then renames.

    Raises
    ------
    FileExistsError
        ``dst`` exists and ``overwrite`` is false.
    """
    dst = Path(dst)
    if not overwrite and dst.exists():
        raise FileExistsError(str(dst))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if batch is not None:
        tmp = str(batch.temp_path(dst))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    else:
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    try:
        raw = io.FileIO(fd, "wb")
        out: BinaryIO
        with _WritebackWriter(raw) if durable and batch is None else io.BufferedWriter(raw) as out:
            os.fchmod(out.fileno(), mode)
            yield out
            out.flush()
            if durable and batch is None:
                os.fsync(out.fileno())
            elif durable:
                # The batch syncs at the end; the disk can start on this file now, while the next is written.
                start_writeback(out.fileno(), 0, out.tell())
        if batch is not None:
            batch.add(PendingFile(temp=Path(tmp), destination=dst, overwrite=overwrite))
            return
        if not overwrite and dst.exists():
            raise FileExistsError(str(dst))
        os.replace(tmp, dst)
        if durable:
            _fsync_dir(dst.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class PendingFile:
    """A finished temporary file and where it goes once its batch is durable."""

    temp: Path
    destination: Path
    overwrite: bool


def _sync_filesystem(directory: Path) -> None:
    """Flush every dirty page of the filesystem holding ``directory`` (one journal commit), and wait."""
    if _syncfs is None:
        raise OSError("syncfs is not available")
    fd = os.open(directory, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), str(directory))
    finally:
        os.close(fd)


def sync_filesystem(directory: Path) -> None:
    """Write every dirty page of the file system holding ``directory`` to its device, and wait.

    After it returns a removable medium holds what was written (it still wants unmounting before it is
    pulled). Where syncfs(2) is missing, sync(2) does the same for every file system.
    """
    if _syncfs is None:
        os.sync()
        return
    _sync_filesystem(directory)


#: Make a rename or a new name in a directory durable.
fsync_dir = _fsync_dir


@dataclass(slots=True)
class BatchCommit:
    """Many outputs written as temporary files first, then made durable together and renamed.

    "Temporary file, fsync, rename" for one file costs two journal commits (1-2 ms); for a batch of
    thousands of small files that is most of the time. Here every file of the batch is written to a
    temporary name beside its destination (:func:`atomic_write` with ``batch=``), then
    :meth:`commit` runs one ``syncfs(2)`` per filesystem (each file's fsync where syncfs is missing),
    renames every file, and fsyncs each folder once. Nothing is renamed before its bytes are durable.

    Temporary names carry the batch's random ``token``, so :meth:`abort` also finds the ones a killed
    worker process could not report: after an abort no temporary file of the batch remains.
    ``durable=False`` skips syncfs and the folder fsyncs (scratch output thrown away anyway).
    """

    durable: bool = True
    token: str = field(default_factory=lambda: secrets.token_hex(6))
    pending: list[PendingFile] = field(default_factory=list)
    #: How many syncfs(2) / fsync(2) calls the last commit made (for tests; never timed).
    syncfs_calls: int = 0
    fsync_calls: int = 0

    def temp_path(self, dst: Path) -> Path:
        return dst.with_name(f".{dst.name}.{self.token}.part")

    def add(self, item: PendingFile) -> None:
        self.pending.append(item)

    def extend(self, items: list[PendingFile]) -> None:
        self.pending.extend(items)

    def _make_durable(self) -> None:
        devices: dict[int, Path] = {}
        for item in self.pending:
            devices.setdefault(item.temp.parent.stat().st_dev, item.temp.parent)
        try:
            for directory in devices.values():
                _sync_filesystem(directory)
                self.syncfs_calls += 1
        except OSError as exc:
            if _syncfs is not None and exc.errno is not None:
                raise  # syncfs ran and failed (EIO): the data may not be on disk
            for item in self.pending:  # no syncfs here: fsync each file
                fd = os.open(item.temp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self.fsync_calls += 1

    def commit(self) -> dict[Path, OSError]:
        """Make every pending file durable, rename it into place, and fsync the folders.

        Returns the files that could not be renamed (their destination appeared meanwhile without
        ``overwrite``, or the rename failed), by destination; their temporary files are removed.
        If the data cannot be made durable, every temporary file is removed and the error raised.
        """
        failed: dict[Path, OSError] = {}
        if not self.pending:
            return failed
        try:
            if self.durable:
                self._make_durable()
        except BaseException:
            self.abort()
            raise
        directories: set[Path] = set()
        try:
            while self.pending:
                item = self.pending.pop()
                try:
                    if not item.overwrite and item.destination.exists():
                        raise FileExistsError(str(item.destination))
                    os.replace(item.temp, item.destination)
                    directories.add(item.destination.parent)
                except OSError as exc:
                    item.temp.unlink(missing_ok=True)
                    failed[item.destination] = exc
        except BaseException:
            self.abort()
            raise
        if self.durable:
            for directory in sorted(directories):
                _fsync_dir(directory)
                self.fsync_calls += 1
        return failed

    def abort(self, directories: set[Path] | None = None) -> None:
        """Remove every temporary file of the batch: the ones reported, and any left in ``directories``."""
        swept = set(directories or ())
        while self.pending:
            item = self.pending.pop()
            item.temp.unlink(missing_ok=True)
            swept.add(item.temp.parent)
        suffix = f".{self.token}.part"
        for directory in swept:
            try:
                names = os.listdir(directory)
            except OSError:
                continue
            for name in names:
                if name.startswith(".") and name.endswith(suffix):
                    (directory / name).unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Extent:
    """A file's bytes inside another file: ``length`` bytes at ``offset`` of ``container`` (a file of an ISO image)."""

    container: Path
    offset: int
    length: int


class ExtentReader(io.RawIOBase):
    """Read an :class:`Extent` as if it were a file of its own: reads stop at its end."""

    def __init__(self, extent: Extent) -> None:
        super().__init__()
        self._fd = os.open(extent.container, os.O_RDONLY | os.O_CLOEXEC)
        self._position = extent.offset
        self._end = extent.offset + extent.length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray, /) -> int:  # type: ignore[override]
        want = min(len(buffer), self._end - self._position)
        if want <= 0:
            return 0
        view = memoryview(buffer).cast("B")[:want]
        n = os.preadv(self._fd, [view], self._position)
        self._position += n
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def sha256_file(path: Path) -> str:
    """The SHA-256 (hex) of the file at ``path``, read in chunks (memory does not grow with the file)."""
    with open(path, "rb") as fp:
        return hashlib.file_digest(fp, "sha256").hexdigest()


def try_hard_link(src: Path, dst: Path) -> bool:
    """Make ``dst`` a hard link to ``src`` (atomic, no bytes copied); False where the file system cannot link
    (another device, protected hard links, no hard links at all).

    Only for scratch files that are read, never written: a write through a link would change ``src``.

    Raises
    ------
    FileExistsError
        ``dst`` exists.
    """
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def link_or_copy(src: Path, dst: Path) -> bool:
    """:func:`try_hard_link`, or a copy where the file system cannot link; True when linked."""
    if try_hard_link(src, dst):
        return True
    shutil.copyfile(src, dst)
    return False


def _is_shared(directory: Path) -> bool:
    """A shared station folder: setgid and group-writable (``install -d -m 2770 -g dcmseal /var/lib/dcmseal``)."""
    try:
        mode = directory.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat.S_ISGID and mode & stat.S_IWGRP)


def private_file_mode(directory: Path) -> int:
    """The mode for a file of dcmseal's own state (registry, audit log, journal) created in ``directory``.

    Owner-only (0600), except in a shared station folder (setgid and group-writable), whose group shares
    the files (0660): a second operator account then uses the registry and the audit log the first one made.
    """
    return 0o660 if _is_shared(directory) else 0o600


def open_state_file(path: Path, flags: int) -> int:
    """``os.open`` a file of dcmseal's state with :func:`private_file_mode`, whatever the umask.

    Only the file's owner sets the mode (the umask would take the group's write bit away); a second
    operator opening a shared file leaves it as it is.
    """
    mode = private_file_mode(path.parent)
    fd = os.open(path, flags | os.O_CREAT, mode)
    try:
        status = os.fstat(fd)
        if status.st_uid == os.getuid() and stat.S_IMODE(status.st_mode) != mode:
            os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def make_state_directory(path: Path) -> None:
    """Create a folder of dcmseal's state (the quarantine): 0700, or 2770 inside a shared station folder."""
    if path.is_dir():
        return
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    shared = _is_shared(parent)
    path.mkdir(mode=0o2770 if shared else 0o700, exist_ok=True)
    if shared:
        os.chmod(path, 0o2770)  # noqa: S103 - the operators' group of a shared station, past the umask


def iter_files(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """Yield ``(file, relative_name)`` for every regular file under ``paths``, sorted, hidden files skipped.

    A file given directly is relative to its own directory (its name); a file found by walking a
    directory keeps its path relative to that directory.
    """
    for root in paths:
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    path = Path(dirpath) / name
                    if path.is_file():
                        yield path, path.relative_to(root)
        else:
            yield root, Path(root.name)


def relative_output_path(out_dir: Path, relative: Path, *, suffix: str = "") -> Path:
    """Return where ``relative`` goes under ``out_dir``, refusing any path that would escape it."""
    candidate = (out_dir / relative).with_name(relative.name + suffix) if suffix else out_dir / relative
    resolved_root = out_dir.resolve()
    resolved = candidate.resolve()
    if resolved_root != resolved and resolved_root not in resolved.parents:
        raise ValueError(f"{relative} escapes {out_dir}")
    return candidate
