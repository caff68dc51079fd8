"""Where a medium or File-set goes, and what dcmseal may replace there.

A folder output (``--format dir``, ``open``) may be a new path, an empty folder, the root of an empty
USB stick, or a folder holding a medium dcmseal wrote before. Every folder output carries a manifest
(:data:`MANIFEST_NAME`, hidden) listing each file dcmseal wrote there with its size and SHA-256;
``--force`` replaces exactly those files and nothing else. A file dcmseal did not write (or one changed
since) is never deleted, overwritten or written beside: the output is refused, naming it.

Why not beside foreign files: PS3.12 Annex R puts one File-set in the root of the stick, and PS3.10
lets a File-set hold files its DICOMDIR does not reference, so the standard would allow it; but a medium
handed to a patient or a partner would then carry somebody else's files (a photo, a letter), and a
foreign ``DICOMDIR`` or ``DICOM/`` folder would be taken for part of ours. An empty stick is the rule.

The files go to the target folder in place (the target itself is never renamed: a mount point cannot
be), each one written to a hidden temporary name beside its final name and renamed when every file is
written and synced. The manifest is written first, marked incomplete and listing every name the write
may leave, so an interrupted write (power cut, stick pulled) is still known as dcmseal's and ``--force``
can clear it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from dcmseal.errors import InputError
from dcmseal.fsutil import (
    CHUNK_SIZE_BYTES,
    content_modes,
    fsync_dir,
    make_dirs,
    register_temporaries,
    set_tree_modes,
    sync_filesystem,
)
from dcmseal.reader.detect import MANIFEST_NAME
from dcmseal.reader.fat import boot_sector_kind

__all__ = [
    "FAT_MAX_FILE_BYTES",
    "MANIFEST_NAME",
    "FileSystem",
    "FolderTarget",
    "Manifest",
    "ManifestEntry",
    "WrittenFolder",
    "annex_r_notes",
    "check_fits",
    "check_folder_target",
    "file_system_of",
    "mount_of",
    "removal_advice",
    "same_device",
    "write_folder",
]

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA = "dcmseal.manifest/1"

#: What operating systems put on a stick by themselves: neither ours nor the user's files, never touched.
SYSTEM_ENTRIES = frozenset(
    {
        "System Volume Information",
        "$RECYCLE.BIN",
        ".Trashes",
        ".fseventsd",
        ".Spotlight-V100",
        ".TemporaryItems",
        ".DS_Store",
        "lost+found",
    }
)

#: FAT16 and FAT32 store a file's size in 32 bits (PS3.12 Annex R media: the largest file is 4 GiB - 1).
FAT_MAX_FILE_BYTES = 2**32 - 1
#: The file systems of PS3.12 Annex R (FAT16, FAT32), as Linux names them in /proc/self/mountinfo.
FAT_TYPES = frozenset({"vfat", "msdos", "fat", "fuseblk.vfat"})
#: exFAT is no Annex R file system; dcmseal writes it as a documented extension (large sticks come with it).
EXFAT_TYPES = frozenset({"exfat", "fuseblk.exfat", "fuse.exfat"})

_PART_SUFFIX = ".dcmseal-part"


def _is_system_entry(name: str) -> bool:
    return name in SYSTEM_ENTRIES or name.startswith(".Trash-")


# --- the manifest ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file dcmseal wrote: its path under the folder (POSIX), size and SHA-256 (None while being written)."""

    path: str
    size: int | None = None
    sha256: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a folder output holds from dcmseal. ``complete`` is False while a write is under way or was cut."""

    entries: tuple[ManifestEntry, ...]
    complete: bool
    medium_id: str | None = None
    written_at: str | None = None

    def to_bytes(self) -> bytes:
        document = {
            "schema": MANIFEST_SCHEMA,
            "complete": self.complete,
            "medium_id": self.medium_id,
            "written_at": self.written_at,
            "files": [e.to_json() for e in self.entries],
        }
        return (json.dumps(document, indent=1) + "\n").encode("utf-8")

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        """The manifest of ``folder``; None when there is none or it is not one of ours (then nothing is ours)."""
        path = folder / MANIFEST_NAME
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                return None
            document = json.loads(path.read_bytes())
            if document.get("schema") != MANIFEST_SCHEMA:
                return None
            entries = tuple(
                ManifestEntry(
                    path=_checked_relative(str(item["path"])),
                    size=None if item.get("size") is None else int(item["size"]),
                    sha256=None if item.get("sha256") is None else str(item["sha256"]),
                )
                for item in document["files"]
            )
            return cls(
                entries=entries,
                complete=bool(document.get("complete")),
                medium_id=document.get("medium_id"),
                written_at=document.get("written_at"),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def _checked_relative(text: str) -> str:
    """A manifest path must stay inside its folder: relative, no ``..``, no empty parts."""
    path = PurePosixPath(text)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        raise ValueError(f"not a path inside the folder: {text!r}")
    return path.as_posix()


def _digest(path: Path) -> str:
    with open(path, "rb") as fp:
        return hashlib.file_digest(fp, "sha256").hexdigest()


def _still_ours(folder: Path, entry: ManifestEntry, *, complete: bool) -> bool:
    """Is the file of ``entry`` still as dcmseal wrote it (a regular file, same size and SHA-256)?

    An entry of an incomplete write has no digest yet: the file is ours if it is a regular file.
    """
    path = folder / entry.path
    try:
        info = path.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    if entry.sha256 is None:
        return not complete
    return info.st_size == entry.size and _digest(path) == entry.sha256


# --- file systems -----------------------------------------------------------------------------------------


def _fuse_kind(source: str) -> str | None:
    """What a FUSE block-device mount really is (mountinfo says only "fuseblk"): its device's boot sector,
    where it can be read (root, the disk group), else udev's word through lsblk."""
    try:
        with open(source, "rb") as device:
            kind = boot_sector_kind(device.read(512))
        if kind is not None:
            return kind
    except OSError:
        pass
    lsblk = shutil.which("lsblk")
    if lsblk is None or not source.startswith("/dev/"):
        return None
    try:
        found = subprocess.run(
            [lsblk, "-no", "FSTYPE", source], capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return found or None


@dataclass(frozen=True, slots=True)
class FileSystem:
    """The mounted file system holding a path, as /proc/self/mountinfo and statvfs tell."""

    mount_point: Path
    fs_type: str  # "vfat", "exfat", "ext4", ... ("" where mountinfo is unreadable)
    source: str
    free_bytes: int | None  # None where the driver does not tell (some FUSE file systems)
    cluster_bytes: int

    @property
    def is_fat(self) -> bool:
        return self.fs_type in FAT_TYPES

    @property
    def is_exfat(self) -> bool:
        return self.fs_type in EXFAT_TYPES

    @property
    def max_file_bytes(self) -> int | None:
        return FAT_MAX_FILE_BYTES if self.is_fat else None


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    return field.encode("latin-1").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def mount_of(resolved: Path, mountinfo: str) -> tuple[Path, str, str] | None:
    """The mount holding the absolute, resolved path ``resolved``, from /proc/self/mountinfo text.

    Returns (mount point, file system type, source), or None when no line covers it. Of the mounts
    covering the path, the deepest wins, and on the same point the later line (it hides the earlier).
    """
    best: tuple[int, str, str, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = _unescape_mountinfo(fields[4])
        after = line.split(" - ", 1)[1].split(" ")
        fs_type, source = after[0], _unescape_mountinfo(after[1]) if len(after) > 1 else ""
        inside = mount_point == "/" or resolved == Path(mount_point) or Path(mount_point) in resolved.parents
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), mount_point, fs_type, source)
    return None if best is None else (Path(best[1]), best[2], best[3])


def file_system_of(path: Path) -> FileSystem:
    """The file system that holds ``path`` (or would hold it: its nearest existing parent)."""
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    resolved = probe.resolve()
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="latin-1")
    except OSError:
        text = ""
    mount_point, fs_type, source = mount_of(resolved, text) or (Path("/"), "", "")
    if fs_type == "fuseblk":  # exfat-fuse, ntfs-3g ...: the device tells
        probed = _fuse_kind(source)
        fs_type = f"fuseblk.{probed}" if probed else fs_type
    vfs = os.statvfs(resolved)
    return FileSystem(
        mount_point=mount_point,
        fs_type=fs_type,
        source=source,
        free_bytes=vfs.f_bavail * vfs.f_frsize if vfs.f_blocks else None,
        cluster_bytes=vfs.f_bsize or 4096,
    )


def check_fits(
    sizes: Iterable[tuple[str, int]],
    *,
    where: Path,
    max_file_bytes: int | None,
    free_bytes: int | None,
    cluster_bytes: int,
    fs_name: str,
) -> int:
    """Refuse, before a byte is written, a medium whose files the file system cannot hold; return the room needed.

    Every file must be under ``max_file_bytes`` (FAT: 4 GiB - 1) and all of them, each rounded up to whole
    clusters, within ``free_bytes`` (when known).
    """
    needed = 0
    for name, size in sizes:
        if max_file_bytes is not None and size > max_file_bytes:
            raise InputError(
                f"{name} is {size:,} bytes: {fs_name} holds no file over {max_file_bytes:,} bytes "
                "(PS3.12 Annex R); split the study",
                path=where,
            )
        needed += -(-size // cluster_bytes) * cluster_bytes
    if free_bytes is not None and needed > free_bytes:
        raise InputError(
            f"the medium needs {needed:,} bytes but {where} has {free_bytes:,} free; "
            "use a larger stick or split the study",
            path=where,
        )
    return needed


# --- folder targets ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FolderTarget:
    """A folder output that may be written: new, empty, or holding only what dcmseal wrote (``previous``)."""

    path: Path
    exists: bool
    previous: Manifest | None
    #: Temporary files an interrupted write of ours left (removed before the new files are written).
    leftovers: tuple[str, ...] = ()


def _scan(folder: Path, manifest: Manifest | None) -> tuple[list[str], list[str]]:
    """Files in ``folder`` dcmseal did not write, and temporary files of an interrupted write of ours.

    Paths are relative to ``folder`` (POSIX); system entries and the manifest itself are neither. An empty
    folder that no file of ours explains is the user's too (reported with a trailing ``/``).
    """
    ours = {e.path for e in manifest.entries} if manifest is not None else set()
    ours_dirs = {parent.as_posix() for p in ours for parent in PurePosixPath(p).parents}
    interrupted = manifest is not None and not manifest.complete
    foreign: list[str] = []
    leftovers: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath).relative_to(folder).as_posix()
        prefix = "" if here == "." else here + "/"
        if not prefix:
            dirnames[:] = [d for d in dirnames if not _is_system_entry(d)]
            filenames = [f for f in filenames if not _is_system_entry(f) and f != MANIFEST_NAME]
        else:
            filenames = [
                f for f in filenames if f != ".DS_Store"
            ]  # macOS leaves one in every folder it shows
        dirnames.sort()
        for name in sorted(filenames):
            relative = prefix + name
            if relative in ours:
                continue
            if (interrupted and name.startswith(".") and name.endswith(_PART_SUFFIX)) or (
                not prefix and name.startswith(f".{MANIFEST_NAME}.") and name.endswith(".part")
            ):
                leftovers.append(relative)  # a temporary file of ours, cut short
            else:
                foreign.append(relative)
        for name in dirnames:
            relative = prefix + name
            path = Path(dirpath) / name
            if path.is_symlink() or (relative not in ours_dirs and _is_empty_dir(path)):
                foreign.append(relative + "/")  # a link (never followed), or an empty folder of the user's
    return foreign, leftovers


def _is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def _describe(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_folder_target(out: Path, *, overwrite: bool) -> FolderTarget:
    """Check that a folder output may be written at ``out``; refuse (one line, naming the files) otherwise.

    Raises
    ------
    InputError
        ``out`` is a file; it holds files dcmseal did not write (or changed since); or it holds a medium
        of dcmseal's and ``overwrite`` is false.
    """
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return FolderTarget(path=out, exists=False, previous=None)
    if not out.is_dir():
        raise InputError("is a file, not a folder: give a folder (or the mount point of a stick)", path=out)
    manifest = Manifest.read(out)
    foreign, leftovers = _scan(out, manifest)
    if foreign:
        raise InputError(
            f"holds {len(foreign)} file(s) dcmseal did not write ({_describe(foreign)}); dcmseal never deletes "
            "or writes beside them: choose an empty folder or an empty stick",
            path=out,
        )
    present = (
        [e.path for e in manifest.entries if (out / e.path).exists() or (out / e.path).is_symlink()]
        if manifest
        else []
    )
    if manifest is None or not (present or leftovers):
        # Empty, or only the manifest of a write that failed before any file took its name.
        return FolderTarget(path=out, exists=True, previous=None, leftovers=tuple(leftovers))
    if not overwrite:
        what = f"medium {manifest.medium_id}" if manifest.medium_id else "a File-set"
        state = "" if manifest.complete else " (its writing was interrupted)"
        raise InputError(f"holds {what} written by dcmseal{state}; use --force to replace it", path=out)
    changed = [p for p in present if not _still_ours(out, _entry(manifest, p), complete=manifest.complete)]
    if changed:
        raise InputError(
            f"{len(changed)} file(s) changed since dcmseal wrote them ({_describe(changed)}); "
            "--force replaces only what dcmseal wrote: move them away first",
            path=out,
        )
    return FolderTarget(path=out, exists=True, previous=manifest, leftovers=tuple(leftovers))


def _entry(manifest: Manifest, path: str) -> ManifestEntry:
    return next(e for e in manifest.entries if e.path == path)


# --- writing a folder -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrittenFolder:
    """A folder output in place: its files, its size, the file system it is on."""

    path: Path
    entries: tuple[ManifestEntry, ...]
    size_bytes: int
    file_system: FileSystem


def _built_files(built: Path) -> list[tuple[str, Path]]:
    return sorted(
        (p.relative_to(built).as_posix(), p)
        for p in built.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    )


def _write_manifest(folder: Path, manifest: Manifest, *, shared: bool) -> None:
    """Write the manifest whole or not at all: a named temporary file beside it, synced, renamed over it.

    Not :func:`dcmseal.fsutil.atomic_write`: a stick's file systems (FAT, exFAT through FUSE) have no hard
    links to name an unnamed file with, and a cut write here leaves one file :func:`_scan` knows as ours.
    """
    temporary = folder / f".{MANIFEST_NAME}.{secrets.token_hex(6)}.part"
    try:
        with open(temporary, "xb") as out:
            os.fchmod(out.fileno(), content_modes(shared=shared)[1])  # whatever the umask
            out.write(manifest.to_bytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, folder / MANIFEST_NAME)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def _copy_hashing(source: Path, target: Path, *, mode: int) -> ManifestEntry:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    os.fchmod(fd, mode)  # whatever the umask
    with open(source, "rb") as src, open(fd, "wb") as dst:
        while chunk := src.read(CHUNK_SIZE_BYTES):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return ManifestEntry(path="", size=size, sha256=digest.hexdigest())


def _remove_files(folder: Path, paths: Iterable[str]) -> None:
    """Remove files of ours, then every folder they leave empty (never a folder still holding anything)."""
    parents: set[Path] = set()
    for relative in paths:
        path = folder / relative
        path.unlink(missing_ok=True)
        parents.update(p for p in path.parents if folder in p.parents)
    for directory in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        _rmdir_quietly(directory)  # not empty (or gone): kept


def write_folder(
    built: Path,
    out: Path,
    *,
    overwrite: bool,
    medium_id: str | None = None,
    before_commit: Callable[[], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    shared: bool = False,
) -> WrittenFolder:
    """Put the finished folder ``built`` at ``out`` with a manifest; on any failure leave ``out`` as it was.

    Its folders and files get the modes of private content (0700, 0600: an opened medium is plaintext), or with
    ``shared`` those of a medium to hand out (0755, 0644), whatever the umask
    (:func:`dcmseal.fsutil.content_modes`).

    ``out`` is checked again here (:func:`check_folder_target`), its file system's limits and free space
    before a byte is written. ``before_commit`` runs when every file is written and synced but none has its
    final name yet (the registry record): if it raises, the new files are removed. Everything is synced
    to the device before this returns (a stick may be ejected then).
    """
    out = Path(out)
    target = check_folder_target(out, overwrite=overwrite)
    files = _built_files(built)
    file_system = file_system_of(out)
    previous = target.previous.entries if target.previous is not None else ()
    old_bytes = sum(e.size or 0 for e in previous)
    fs_name = f"{file_system.fs_type or 'this file system'} ({file_system.mount_point})"
    free = file_system.free_bytes
    needed = check_fits(
        ((name, path.stat().st_size) for name, path in files),
        where=out,
        max_file_bytes=file_system.max_file_bytes,
        free_bytes=None if free is None else free + old_bytes,
        cluster_bytes=file_system.cluster_bytes,
        fs_name=fs_name,
    )
    for note in annex_r_notes(file_system, out):
        if on_note is not None:
            on_note(note)
    if not target.exists and same_device(built, out.parent):
        set_tree_modes(built, shared=shared)
        return _rename_into_place(built, out, files, medium_id, before_commit, file_system, shared)
    new_names = [name for name, _ in files]
    # Old files go first only when both would not fit at once (then a failure leaves neither: said in the error).
    remove_first = bool(previous) and free is not None and needed > free
    created_out = not out.exists()
    dir_mode, file_mode = content_modes(shared=shared)
    make_dirs(out, mode=dir_mode)
    moment = datetime.now(UTC).isoformat(timespec="seconds")
    # Every name this write may leave, old and new, with no digest: a cut write is still known as ours.
    pending = Manifest(
        entries=tuple(ManifestEntry(path=p) for p in dict.fromkeys([e.path for e in previous] + new_names)),
        complete=False,
        medium_id=medium_id,
        written_at=moment,
    )
    token = secrets.token_hex(4)
    # Killed before the renames, the temporaries (plaintext, for an opened medium) go with the next run.
    register_temporaries(out, f".{token}{_PART_SUFFIX}")
    temporaries: list[tuple[Path, Path]] = []
    entries: list[ManifestEntry] = []
    committed = False
    try:
        _write_manifest(out, pending, shared=shared)
        _remove_files(out, target.leftovers)
        if remove_first:
            _remove_files(out, (e.path for e in previous))
        for name, source in files:
            final = out / name
            make_dirs(final.parent, mode=dir_mode)
            temporary = final.with_name(f".{final.name}.{token}{_PART_SUFFIX}")
            temporaries.append((temporary, final))
            copied = _copy_hashing(source, temporary, mode=file_mode)
            entries.append(ManifestEntry(path=name, size=copied.size, sha256=copied.sha256))
        sync_filesystem(out)
        if before_commit is not None:
            before_commit()
        committed = True
        for temporary, final in temporaries:
            os.replace(temporary, final)
        _remove_files(out, (e.path for e in previous if e.path not in set(new_names)))
        _write_manifest(
            out,
            Manifest(entries=tuple(entries), complete=True, medium_id=medium_id, written_at=moment),
            shared=shared,
        )
        sync_filesystem(out)
    except BaseException as exc:
        for temporary, _final in temporaries:
            temporary.unlink(missing_ok=True)
        if not committed:
            _remove_files(out, [t.relative_to(out).as_posix() for t, _ in temporaries])
            if remove_first or target.previous is None:
                # Nothing of ours is left (or only what --force was told to replace): the folder holds no medium.
                (out / MANIFEST_NAME).unlink(missing_ok=True)
                if created_out:
                    _rmdir_quietly(out)
            else:
                with contextlib.suppress(
                    OSError
                ):  # else the pending manifest stays: it still names only ours
                    _write_manifest(out, target.previous, shared=shared)
        if isinstance(exc, OSError):
            # A full or pulled stick is the user's to fix: one line naming it, not a traceback.
            raise InputError(f"cannot write the medium: {exc.strerror or exc}", path=out) from exc
        raise
    return WrittenFolder(
        path=out,
        entries=tuple(entries),
        size_bytes=sum(e.size or 0 for e in entries),
        file_system=file_system,
    )


def annex_r_notes(file_system: FileSystem, out: Path) -> list[str]:
    """What a folder output on ``file_system`` departs from PS3.12 Annex R in (nothing for a folder on a disk).

    Annex R: one File-set in the root of a FAT16 or FAT32 file system. exFAT is accepted as dcmseal's
    extension; a subfolder of a stick is written, but said; a mount of another type is said as well.
    """
    resolved = Path(os.path.abspath(out))
    at_root = resolved == file_system.mount_point
    notes: list[str] = []
    if file_system.is_exfat:
        notes.append(f"{out} is exFAT: PS3.12 Annex R names FAT16 and FAT32; exFAT is a dcmseal extension")
    if (file_system.is_fat or file_system.is_exfat) and not at_root:
        notes.append(
            f"the File-set goes into {out}, not the root of the stick ({file_system.mount_point}): "
            "PS3.12 Annex R readers look for the DICOMDIR in the root"
        )
    elif at_root and not (file_system.is_fat or file_system.is_exfat):
        notes.append(
            f"{out} is {file_system.fs_type}, not FAT16/FAT32 as PS3.12 Annex R expects of a USB medium"
        )
    return notes


def removal_advice(out: Path) -> str | None:
    """When an output (a folder, an image file) is on a removable-looking medium (FAT, exFAT, a mount point of
    its own): what to do before pulling it. None for an output on the station's own disk."""
    file_system = file_system_of(out)
    if not (file_system.is_fat or file_system.is_exfat or file_system.mount_point == Path(out).resolve()):
        return None
    return (
        f"every file is written and synced to {file_system.source or file_system.mount_point}: "
        f"unmount (eject) {file_system.mount_point}, then the stick is safe to remove"
    )


def same_device(a: Path, b: Path) -> bool:
    """Are ``a`` and ``b`` on one file system (so a rename from one to the other is atomic)?"""
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def _rename_into_place(
    built: Path,
    out: Path,
    files: list[tuple[str, Path]],
    medium_id: str | None,
    before_commit: Callable[[], None] | None,
    file_system: FileSystem,
    shared: bool,
) -> WrittenFolder:
    """A new ``out`` on the file system of ``built``: the finished folder is renamed there whole (atomic)."""
    entries = tuple(
        ManifestEntry(path=name, size=path.stat().st_size, sha256=_digest(path)) for name, path in files
    )
    moment = datetime.now(UTC).isoformat(timespec="seconds")
    _write_manifest(
        built, Manifest(entries=entries, complete=True, medium_id=medium_id, written_at=moment), shared=shared
    )
    if before_commit is not None:
        before_commit()
    try:
        os.rename(built, out)
    except OSError as exc:
        raise InputError(f"cannot write the medium: {exc.strerror or exc}", path=out) from exc
    fsync_dir(out.parent)
    return WrittenFolder(
        path=out, entries=entries, size_bytes=sum(e.size or 0 for e in entries), file_system=file_system
    )


def _rmdir_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
