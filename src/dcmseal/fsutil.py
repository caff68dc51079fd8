"""Atomic writes, chunked copies and safe output paths."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CHUNK_SIZE_BYTES",
    "MAX_PENDING_FILES",
    "NO_TMPFILE_ENV",
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "SHARED_DIR_MODE",
    "SHARED_FILE_MODE",
    "STAGING_MARKER",
    "WATCHDOG_TAG",
    "BatchCommit",
    "Extent",
    "ExtentReader",
    "PendingFile",
    "atomic_write",
    "content_modes",
    "die_with_parent",
    "fsync_dir",
    "iter_files",
    "link_or_copy",
    "make_dirs",
    "make_state_directory",
    "new_staging_folder",
    "open_state_file",
    "private_file_mode",
    "register_temporaries",
    "relative_output_path",
    "release_staging_folder",
    "set_tree_modes",
    "sha256_file",
    "staging_area",
    "staging_registry",
    "start_writeback",
    "state_path",
    "sweep_staging",
    "sync_filesystem",
    "try_hard_link",
    "use_state_directory",
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
_prctl = _libc_function("prctl", ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """In a forked worker: have the kernel SIGKILL this process when its parent dies (Linux; elsewhere nothing).

    A run killed with SIGKILL runs no cleanup; its workers would go on writing plaintext (and keep its staging
    record locked, so the next run could not remove its staging folder).
    """
    if _prctl is None or not sys.platform.startswith("linux"):
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the request took effect


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


# -- plaintext that is not finished never has a name ---------------------------------------------------------
#
# An output is written to an unnamed file (O_TMPFILE, Linux 3.11+) in its destination's folder and linked in
# (linkat through /proc/self/fd) only once it is complete, verified and (durable outputs) on disk. A process
# killed before that (kill -9, OOM killer, power loss) leaves nothing: the kernel frees an unnamed file with its
# last descriptor. Where O_TMPFILE is missing (macOS, some network and FUSE file systems) the temporary file
# is named, inside a staging folder of its own in the destination's folder (:func:`new_staging_folder`), which
# the next run of any command removes if this one cannot (:func:`sweep_staging`).

_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
#: errno values by which a file system refuses O_TMPFILE (EISDIR: kernels older than 3.11).
_NO_TMPFILE_ERRNOS = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL})
#: Set (to anything) to stage named temporary files even where O_TMPFILE works: for a file system that
#: accepts O_TMPFILE but fails to link the file in, and for the tests of that path.
NO_TMPFILE_ENV = "DCMSEAL_NO_TMPFILE"
_PROC_FD = "/proc/self/fd"
#: errno values by which a file system that made an unnamed file refuses to link it in (no hard links).
_NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK})


def _unnamed_files_possible() -> bool:
    return bool(_O_TMPFILE) and NO_TMPFILE_ENV not in os.environ and os.path.isdir(_PROC_FD)


#: The modes of what dcmseal creates, whatever the umask: private (plaintext, secrets, state: the owner only)
#: unless it is the content of a medium the user asked for, to hand out (readable by all, writable by the owner).
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SHARED_DIR_MODE = 0o755
SHARED_FILE_MODE = 0o644


def content_modes(*, shared: bool) -> tuple[int, int]:
    """(folder mode, file mode) for private or shared content."""
    return (SHARED_DIR_MODE, SHARED_FILE_MODE) if shared else (PRIVATE_DIR_MODE, PRIVATE_FILE_MODE)


def set_tree_modes(root: Path, *, shared: bool) -> None:
    """Give ``root`` and every folder and file under it the modes of private or shared content.

    For a tree built in a staging folder (where the umask chose the modes) before it is put in place.
    Symbolic links are neither followed nor changed, nor is a file with another name (a hard link to a
    source: its mode is the source's, which is never changed).
    """
    dir_mode, file_mode = content_modes(shared=shared)
    for folder, _dirnames, filenames in os.walk(root):
        os.chmod(folder, dir_mode)
        for name in filenames:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                os.chmod(path, file_mode)


def make_dirs(path: Path, *, mode: int = PRIVATE_DIR_MODE) -> None:
    """Create ``path`` and its missing parents with exactly ``mode`` (umask notwithstanding); existing folders
    are left as they are.

    ``Path.mkdir(parents=True)`` gives the parents the default 0777 less the umask, so under ``umask 000``
    every folder would be writable by everyone.
    """
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue
        os.chmod(folder, mode)


@dataclass(slots=True)
class PendingFile:
    """A finished output not yet in place: an unnamed file (``fd``) or a staged temporary file (``temp``)."""

    destination: Path
    overwrite: bool
    fd: int = -1
    temp: Path | None = None

    def readable_path(self) -> Path:
        """A path that reads the finished bytes before they are in place (the unnamed file through /proc)."""
        if self.fd >= 0:
            return Path(f"{_PROC_FD}/{self.fd}")
        assert self.temp is not None
        return self.temp

    def discard(self) -> None:
        """Drop the bytes: close the unnamed file (the kernel frees it), or remove the temporary file."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.temp is not None:
            release_staging_folder(self.temp.parent)
            self.temp = None

    def place(self) -> None:
        """Give the finished file its name; an existing destination only with ``overwrite``.

        Raises
        ------
        FileExistsError
            The destination exists and ``overwrite`` is false (it is never replaced then).
        """
        dst = self.destination
        if self.fd >= 0 and self.temp is not None:
            # A staged temporary file, still open: renamed below, never linked (FAT and exFAT have no links).
            os.close(self.fd)
            self.fd = -1
        if self.fd >= 0:
            try:
                self._link(dst)
            except OSError as exc:
                if exc.errno not in _NO_LINK_ERRNOS:
                    raise
                # A file system that made the unnamed file but cannot link it in: stage its bytes and rename.
                self._stage_unnamed()
            else:
                return
        assert self.temp is not None
        if not self.overwrite and dst.exists():
            raise FileExistsError(str(dst))
        os.replace(self.temp, dst)
        release_staging_folder(self.temp.parent)
        self.temp = None

    def _link(self, dst: Path) -> None:
        """Name the unnamed file ``dst`` (see :meth:`place`)."""
        if not self.overwrite:
            _link_unnamed(self.fd, dst)  # fails with EEXIST rather than replace: no check-then-act race
        else:
            # A link cannot replace; a second name, then an atomic rename over the old file.
            beside = dst.with_name(f".{dst.name}.{secrets.token_hex(6)}.dcmseal-new")
            _link_unnamed(self.fd, beside)
            try:
                os.replace(beside, dst)
            except BaseException:
                beside.unlink(missing_ok=True)
                raise
        os.close(self.fd)
        self.fd = -1

    def _stage_unnamed(self) -> None:
        """Copy the unnamed file's bytes to a staged temporary file (synced) and drop the unnamed file."""
        folder = new_staging_folder(self.destination.parent)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f"{self.destination.name[:64]}.", suffix=".part")
        self.temp = Path(temp)
        with open(f"{_PROC_FD}/{self.fd}", "rb") as source, open(fd, "wb") as copy:
            os.fchmod(copy.fileno(), stat.S_IMODE(os.fstat(self.fd).st_mode))
            shutil.copyfileobj(source, copy, CHUNK_SIZE_BYTES)
            copy.flush()
            os.fsync(copy.fileno())
        os.close(self.fd)
        self.fd = -1


def _link_unnamed(fd: int, dst: Path) -> None:
    # linkat(AT_FDCWD, "/proc/self/fd/N", dirfd, name, AT_SYMLINK_FOLLOW): os.link uses linkat only when given
    # a folder descriptor (plain link(2) would not follow the /proc link and fails with EXDEV).
    folder = os.open(dst.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"{_PROC_FD}/{fd}", dst.name, dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _open_pending(dst: Path, overwrite: bool) -> PendingFile:
    """A new empty file that will become ``dst``: unnamed where possible, else staged (see above)."""
    if _unnamed_files_possible():
        try:
            fd = os.open(dst.parent, _O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE_ERRNOS:
                raise
        else:
            return PendingFile(destination=dst, overwrite=overwrite, fd=fd)
    # A staging folder of its own (no other writer can be caught by its removal), removed with the file.
    fd, temp = tempfile.mkstemp(
        dir=new_staging_folder(dst.parent), prefix=f"{dst.name[:64]}.", suffix=".part"
    )
    return PendingFile(destination=dst, overwrite=overwrite, fd=fd, temp=Path(temp))


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

    The bytes go to an unnamed file in ``dst``'s folder (a staged temporary file where the file system has no
    unnamed files), which is flushed, fsynced and linked in as ``dst`` only when the ``with`` block ends
    without an exception; on any exception, and if the process dies, no partial output (and no partial
    plaintext) survives. The folder is fsynced afterwards. ``durable=False`` skips the fsyncs, for scratch
    files in a staging folder that is thrown away anyway (still all or nothing). Missing folders are created
    0700, the file gets ``mode`` (umask notwithstanding).

    With ``batch``, the finished file is handed to the batch instead of being fsynced and linked here:
    :meth:`BatchCommit.commit` makes the whole batch durable at once, then names every file.

    Raises
    ------
    FileExistsError
        ``dst`` exists and ``overwrite`` is false.
    """
    dst = Path(dst)
    if not overwrite and dst.exists():
        raise FileExistsError(str(dst))
    make_dirs(dst.parent)
    pending = _open_pending(dst, overwrite)
    try:
        raw = io.FileIO(pending.fd, "wb", closefd=False)
        out: BinaryIO
        with _WritebackWriter(raw) if durable and batch is None else io.BufferedWriter(raw) as out:
            os.fchmod(pending.fd, mode)
            yield out
            out.flush()
            if durable and batch is None:
                os.fsync(pending.fd)
            elif durable:
                # The batch syncs at the end; the disk can start on this file now, while the next is written.
                start_writeback(pending.fd, 0, out.tell())
        if batch is not None:
            if pending.temp is not None:  # a named file need not stay open until the commit
                os.close(pending.fd)
                pending.fd = -1
            batch.add(pending)
            return
        pending.place()
        if durable:
            _fsync_dir(dst.parent)
    except BaseException:
        pending.discard()
        raise
    finally:
        if batch is None:
            pending.discard()  # after place() there is nothing left to discard


def _sync_filesystem(directory: Path) -> None:
    """Flush every dirty page of the filesystem holding ``directory`` (one journal commit), and wait."""
    if _syncfs is None:
        raise OSError("syncfs is not available")
    fd = os.open(directory, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            errno_ = ctypes.get_errno()
            raise OSError(errno_, os.strerror(errno_), str(directory))
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
    """Many outputs written first, then made durable together and named.

    "Write, fsync, name" for one file costs two journal commits (1-2 ms); for a batch of thousands of small
    files that is most of the time. Here every file of the batch is written unnamed (:func:`atomic_write`
    with ``batch=``), then :meth:`commit` runs one ``syncfs(2)`` per filesystem (each file's fsync where
    syncfs is missing), names every file, and fsyncs each folder once. Nothing is named before its bytes are
    durable.

    The unnamed files are descriptors of this process: the process that wrote a batch commits it (a worker
    commits each of its tasks). Keep a batch to tens of files (:data:`MAX_PENDING_FILES`): each holds a
    descriptor until the commit. ``durable=False`` skips syncfs and the folder fsyncs (scratch output).
    """

    durable: bool = True
    pending: list[PendingFile] = field(default_factory=list)
    #: How many syncfs(2) / fsync(2) calls the commits made (for tests; never timed).
    syncfs_calls: int = 0
    fsync_calls: int = 0

    def add(self, item: PendingFile) -> None:
        self.pending.append(item)

    def readable_path(self, dst: Path) -> Path:
        """Where the finished, not yet committed bytes of ``dst`` can be read."""
        for item in reversed(self.pending):
            if item.destination == dst:
                return item.readable_path()
        raise KeyError(dst)

    @property
    def full(self) -> bool:
        return len(self.pending) >= MAX_PENDING_FILES

    def _make_durable(self) -> None:
        devices: dict[int, Path] = {}
        for item in self.pending:
            devices.setdefault(item.destination.parent.stat().st_dev, item.destination.parent)
        try:
            for directory in devices.values():
                _sync_filesystem(directory)
                self.syncfs_calls += 1
        except OSError as exc:
            if _syncfs is not None and exc.errno is not None:
                raise  # syncfs ran and failed (EIO): the data may not be on disk
            for item in self.pending:  # no syncfs here: fsync each file
                fd = os.open(item.readable_path(), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self.fsync_calls += 1

    def commit(self) -> dict[Path, OSError]:
        """Make every pending file durable, name it, and fsync the folders.

        Returns the files that could not be named (their destination appeared meanwhile without
        ``overwrite``, or the link failed), by destination; their bytes are dropped.
        If the data cannot be made durable, every pending file is dropped and the error raised.
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
                item = self.pending.pop(0)
                try:
                    item.place()
                    directories.add(item.destination.parent)
                except OSError as exc:
                    failed[item.destination] = exc
                finally:
                    item.discard()
        except BaseException:
            self.abort()
            raise
        if self.durable:
            for directory in sorted(directories):
                _fsync_dir(directory)
                self.fsync_calls += 1
        return failed

    def abort(self) -> None:
        """Drop every pending file of the batch."""
        while self.pending:
            self.pending.pop().discard()


#: A batch holds at most this many files before it must commit (each keeps a file descriptor open).
MAX_PENDING_FILES = 32


# -- staging folders: named plaintext, marked, registered, and removed by the next run if not by this one ----
#
# A medium is built or opened in a folder beside its destination (one file system, so the result is renamed
# into place). Such a folder is named ``.dcmseal.XXXXXXXX.staging``, holds a marker file with its run's token,
# and is listed in a record of the run in the user's data folder (``staging/<token>.run``) that the run keeps
# locked (flock) while it lives. :func:`sweep_staging`, which every command runs first, removes the folders of
# every record whose lock it can take (its process is gone): only a folder that still carries its marker with
# that token, so nothing dcmseal did not create is ever removed.

STAGING_PREFIX = ".dcmseal."
STAGING_SUFFIX = ".staging"
STAGING_MARKER = "DCMSEAL-STAGING"
_RECORD_SUFFIX = ".run"


@dataclass(slots=True)
class _Run:
    """This process's record of the staging folders it made."""

    pid: int
    token: str
    record: Path
    record_fd: int


_RUN: _Run | None = None
_RUN_LOCK = threading.Lock()


#: This process's run records go here (set from the settings by the command line), else the user data folder.
_STATE_DIRECTORY: Path | None = None


def use_state_directory(directory: Path | None) -> None:
    """Keep this process's run records (staging registry, unseal records) in ``directory`` (None: the default)."""
    global _STATE_DIRECTORY
    _STATE_DIRECTORY = directory


def state_path(name: str) -> Path:
    """The folder ``name`` of this user's run records (see :func:`dcmseal.config.private_state_directory`)."""
    from dcmseal.config import private_state_directory

    return (_STATE_DIRECTORY or private_state_directory()) / name


def staging_registry() -> Path:
    """The folder of the runs' records."""
    return state_path("staging")


def _forget_parent_run() -> None:
    """In a forked child: the parent's record stays locked by the parent alone; the child makes its own."""
    global _RUN
    if _RUN is not None:
        os.close(_RUN.record_fd)
        _RUN = None


os.register_at_fork(after_in_child=_forget_parent_run)


def _this_run() -> _Run:
    global _RUN
    with _RUN_LOCK:
        if _RUN is None or _RUN.pid != os.getpid():  # a forked worker keeps a record of its own
            registry = staging_registry()
            make_dirs(registry)
            token = secrets.token_hex(8)
            record = registry / f"{token}{_RECORD_SUFFIX}"
            fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process ends: the sweep sees the run is alive
            _RUN = _Run(pid=os.getpid(), token=token, record=record, record_fd=fd)
        return _RUN


def new_staging_folder(directory: Path) -> Path:
    """A new, empty, marked and registered staging folder (0700) in ``directory`` (created if missing)."""
    run = _this_run()
    make_dirs(directory)
    folder = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, suffix=STAGING_SUFFIX, dir=directory))
    # Registered before anything goes in, so a kill at any later point leaves a folder the sweep will find.
    os.write(run.record_fd, (json.dumps(os.path.abspath(folder)) + "\n").encode())
    marker = os.open(folder / STAGING_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(marker, run.token.encode())
    finally:
        os.close(marker)
    return folder


def register_temporaries(folder: Path, suffix: str) -> None:
    """Have the next run remove this run's temporary files under ``folder`` if this one is killed: hidden files
    whose name ends with ``suffix``, which must carry a random token of this write (nothing else matches it).

    For writes that cannot stage elsewhere (a medium written in place onto a stick, its files renamed at the end).
    """
    run = _this_run()
    entry = {"temporaries": os.path.abspath(folder), "suffix": suffix}
    os.write(run.record_fd, (json.dumps(entry) + "\n").encode())


def _remove_temporaries(folder: Path, suffix: str) -> list[Path]:
    """The hidden files ending with ``suffix`` under ``folder`` (owned by this user) removed; symlinks not followed."""
    removed: list[Path] = []
    if len(suffix) < 8:  # a suffix without a token could match a user's file
        return removed
    for root, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            if not (name.startswith(".") and name.endswith(suffix)):
                continue
            path = Path(root) / name
            try:
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid():
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
    return removed


def release_staging_folder(folder: Path) -> None:
    """Remove a staging folder with everything in it."""
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staging_area(directory: Path) -> Iterator[Path]:
    """A new staging folder in ``directory`` for the ``with`` block, removed however the block ends.

    If this process is killed, a watchdog process removes it at once (:data:`_WATCHDOG`); if the watchdog is
    killed too (the whole session, a power cut), the next run of any command does (:func:`sweep_staging`).
    """
    folder = new_staging_folder(directory)
    watchdog = _start_watchdog(folder)
    try:
        yield folder
    finally:
        release_staging_folder(folder)
        _stop_watchdog(watchdog)


#: Started beside a staging folder: waits for its run to say "done" (one byte on stdin); if the run dies
#: first (end of file, or a new parent), removes the folder, only while it still holds the run's marker.
_WATCHDOG = """
import os, select, shutil, sys
folder, token, parent = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
while os.getppid() == parent:
    if select.select([0], [], [], 0.5)[0]:
        if os.read(0, 1):
            sys.exit(0)
        break
try:
    with open(os.path.join(folder, sys.argv[4]), "rb") as marker:
        if marker.read() == token:
            shutil.rmtree(folder, ignore_errors=True)
except OSError:
    pass
"""
#: In the watchdog's command line, so that it can be recognised (tests).
WATCHDOG_TAG = "dcmseal-staging-watchdog"


def _start_watchdog(folder: Path) -> subprocess.Popen[bytes] | None:
    """The watchdog of ``folder`` (see :data:`_WATCHDOG`), in a session of its own (a Ctrl-C is not for it)."""
    run = _this_run()
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(folder), run.token, str(os.getpid()), STAGING_MARKER,
             WATCHDOG_TAG],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    except OSError:
        return None  # no watchdog: the next run removes the folder if this one is killed


def _stop_watchdog(watchdog: subprocess.Popen[bytes] | None) -> None:
    if watchdog is None or watchdog.stdin is None:
        return
    try:
        watchdog.stdin.write(b"x")  # done: the folder is gone already
        watchdog.stdin.close()
    except OSError:
        pass
    try:
        watchdog.wait(timeout=10)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def _is_staging_folder_of(path: Path, token: str) -> bool:
    """Whether ``path`` is a staging folder made by the run ``token`` (by its name, owner and marker)."""
    try:
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        if not (path.name.startswith(STAGING_PREFIX) and path.name.endswith(STAGING_SUFFIX)):
            return False
        return (path / STAGING_MARKER).read_bytes() == token.encode()
    except OSError:
        return False


def sweep_staging() -> list[Path]:
    """Remove the staging folders (and registered temporary files) of every dcmseal run that is no longer
    running; return them.

    A run killed (kill -9, power loss) could not remove its own. Never raises: a folder that cannot be
    removed now is tried again by the next run.
    """
    removed: list[Path] = []
    try:
        records = sorted(staging_registry().glob(f"*{_RECORD_SUFFIX}"))
    except OSError:
        return removed
    for record in records:
        try:
            fd = os.open(record, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its run is alive (this process's own record included)
            token = record.name[: -len(_RECORD_SUFFIX)]
            with os.fdopen(os.dup(fd), "rb") as lines:
                entries = [json.loads(line) for line in lines if line.strip()]
            for entry in entries:
                if isinstance(entry, dict):  # temporary files of an in-place write (register_temporaries)
                    removed.extend(_remove_temporaries(Path(str(entry["temporaries"])), str(entry["suffix"])))
                    continue
                folder = Path(str(entry))
                if _is_staging_folder_of(folder, token):
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            record.unlink(missing_ok=True)
        except (OSError, ValueError):
            continue
        finally:
            os.close(fd)
    return removed


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
    make_dirs(parent)
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
