"""Atomic writes, chunked copies and safe output paths."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["CHUNK_SIZE_BYTES", "atomic_write", "iter_files", "relative_output_path"]

#: Every stream in dcmseal moves in chunks of this size; memory is bounded by it, not by file size.
CHUNK_SIZE_BYTES = 1024 * 1024


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(
    dst: Path, *, mode: int = 0o600, overwrite: bool = False, durable: bool = True
) -> Iterator[BinaryIO]:
    """Write ``dst`` all at once or not at all.

    The bytes go to a temporary file beside ``dst``, which is flushed, fsynced and renamed over
    ``dst`` only when the ``with`` block ends without an exception; on any exception the temporary
    file is removed, so no partial output (and no partial plaintext) survives. The directory is
    fsynced after the rename. ``durable=False`` skips the fsyncs, for scratch files in a staging folder
    that is thrown away anyway (still all or nothing, still removed on failure).

    Raises
    ------
    FileExistsError
        ``dst`` exists and ``overwrite`` is false.
    """
    dst = Path(dst)
    if not overwrite and dst.exists():
        raise FileExistsError(str(dst))
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            yield out
            out.flush()
            if durable:
                os.fsync(out.fileno())
        if not overwrite and dst.exists():
            raise FileExistsError(str(dst))
        os.replace(tmp, dst)
        if durable:
            _fsync_dir(dst.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
