"""Stage a medium beside its destination and put it there at once, as an ISO image or a folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dcmseal.errors import InputError, UsageError
from dcmseal.media.iso import ExtentFiller, write_iso

__all__ = ["OUTPUT_FORMATS", "place_medium", "staging_dir"]

OUTPUT_FORMATS = ("iso", "dir")


@contextmanager
def staging_dir(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """A private folder beside ``out`` (same file system, so the final rename is atomic).

    It holds plaintext copies while a medium is built or opened, so it is removed however the
    ``with`` block ends: success, error or interrupt.
    """
    if out.exists() and not overwrite:
        raise InputError("already exists (use --force to overwrite)", path=out)
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=parent))
    os.chmod(staging, 0o700)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_dir(built: Path, out: Path) -> None:
    """Move the folder ``built`` to ``out``; an existing ``out`` is set aside first, then removed."""
    old: Path | None = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
    try:
        os.rename(built, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()


def place_medium(
    medium_dir: Path,
    out: Path,
    *,
    output_format: str,
    staging: Path,
    volume_id: str,
    udf: bool,
    before_commit: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    reserved: Mapping[Path, int] | None = None,
    fill: ExtentFiller | None = None,
) -> int:
    """Write the finished medium in ``medium_dir`` to ``out`` (ISO image or folder); return its size in bytes.

    ``before_commit`` runs when the output is complete but not yet in place (the registry record): if
    it raises, nothing appears at ``out``. ``reserved`` and ``fill`` (ISO only): files of ``medium_dir`` written into
    the image by ``fill`` (see :func:`dcmseal.media.iso.write_iso`).
    """
    if output_format not in OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {output_format!r}: use iso or dir")
    if output_format == "iso":
        image = staging / "medium.iso"
        summary = write_iso(
            medium_dir, image, volume_id=volume_id, udf=udf, progress=progress, reserved=reserved, fill=fill
        )
        if before_commit is not None:
            before_commit()
        if out.is_dir():
            _replace_dir(image, out)
        else:
            os.replace(image, out)
        return summary.size
    if reserved:
        raise ValueError("reserved files go into an image: a folder medium holds written files")
    size = sum(p.stat().st_size for p in medium_dir.rglob("*") if p.is_file())
    if before_commit is not None:
        before_commit()
    _replace_dir(medium_dir, out)
    return size
