"""Stage a medium and put it at its destination at once: an ISO image, a FAT image or a folder (a USB stick)."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dcmseal.errors import InputError, UsageError
from dcmseal.fsutil import SHARED_FILE_MODE, fsync_dir, staging_area, sync_filesystem
from dcmseal.media.fatimage import write_fat_image
from dcmseal.media.iso import ExtentFiller, write_iso
from dcmseal.media.target import check_folder_target, file_system_of, same_device, write_folder
from dcmseal.reader.fat import is_fat_image
from dcmseal.reader.iso import is_iso_image

__all__ = ["OUTPUT_FORMATS", "check_output", "place_medium", "staging_dir"]

OUTPUT_FORMATS = ("iso", "dir", "usb-image")


def _is_image_of(path: Path, output_format: str) -> bool:
    """Is ``path`` an image of the kind ``output_format`` writes (the only file ``--force`` may replace)?"""
    if output_format == "iso":
        return is_iso_image(path)
    return is_fat_image(path)


def check_output(out: Path, *, output_format: str, overwrite: bool) -> None:
    """Refuse an output that may not be written, before any work: one line naming it.

    A folder output follows :func:`dcmseal.media.target.check_folder_target` (empty, new, or only what
    dcmseal wrote). An image output is a file: never a folder, and ``--force`` replaces only an image of
    the same kind, never another file.
    """
    if output_format == "dir":
        check_folder_target(out, overwrite=overwrite)
        return
    if out.is_dir():
        raise InputError(
            f"is a folder: an {output_format} image is a file (give a file name, e.g. {out / 'medium.img'})"
            if output_format == "usb-image"
            else f"is a folder: an ISO image is a file (give a file name, e.g. {out / 'medium.iso'})",
            path=out,
        )
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise InputError("already exists (use --force to overwrite)", path=out)
    if out.is_symlink() or not _is_image_of(out, output_format):
        kind = "an ISO image" if output_format == "iso" else "a FAT image"
        raise InputError(f"is not {kind}: --force replaces only an image, never another file", path=out)


def _staging_parent(out: Path) -> Path:
    """Where plaintext is staged: beside ``out`` (one file system, so the final rename is atomic), unless that
    is a FAT or exFAT file system (a stick: deleted plaintext lingers there, and it may leave the building).
    """
    parent = out.parent if str(out.parent) else Path(".")
    file_system = file_system_of(parent)
    if file_system.is_fat or file_system.is_exfat:
        return Path(tempfile.gettempdir())
    return parent


@contextmanager
def staging_dir(out: Path, *, overwrite: bool, output_format: str = "dir") -> Iterator[Path]:
    """A private folder for the work, beside ``out`` where that is safe (see :func:`_staging_parent`).

    ``out`` is checked first (:func:`check_output`). The folder holds plaintext copies while a medium is
    built or opened, so it is removed however the ``with`` block ends: success, error or interrupt; and if
    the process is killed, by the next run of any dcmseal command (:func:`dcmseal.fsutil.staging_area`).
    """
    check_output(out, output_format=output_format, overwrite=overwrite)
    # Marked and registered: if this process is killed, the next run of any command removes it.
    with staging_area(_staging_parent(out)) as staging:
        yield staging


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
    overwrite: bool = False,
    medium_id: str | None = None,
    on_note: Callable[[str], None] | None = None,
) -> int:
    """Write the finished medium in ``medium_dir`` to ``out`` (ISO image, FAT image or folder); return its size.

    ``before_commit`` runs when the output is complete but not yet in place (the registry record): if
    it raises, nothing appears at ``out``. A folder goes in with a manifest and replaces only what
    dcmseal wrote (:func:`dcmseal.media.target.write_folder`); ``on_note`` hears what the user should know
    (a file system other than FAT). ``reserved`` and ``fill`` (ISO only): files of ``medium_dir`` written into
    the image by ``fill`` (see :func:`dcmseal.media.iso.write_iso`).
    """
    if output_format not in OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {output_format!r}: use {', '.join(OUTPUT_FORMATS)}")
    if output_format == "dir":
        if reserved:
            raise ValueError("reserved files go into an image: a folder medium holds written files")
        written = write_folder(
            medium_dir,
            out,
            overwrite=overwrite,
            medium_id=medium_id,
            before_commit=before_commit,
            on_note=on_note,
            shared=True,  # a medium is made to be handed out
        )
        return written.size_bytes
    parent = out.parent if str(out.parent) else Path(".")
    # The image is made where it can be renamed to ``out``: in the staging folder when that is beside ``out``,
    # else (staging kept off a stick) as a hidden file beside ``out`` (it holds only what the medium holds).
    beside = not same_device(staging, parent)
    image = (
        parent / f".{out.name}.{secrets.token_hex(6)}.dcmseal-part"
        if beside
        else staging / ("medium.iso" if output_format == "iso" else "medium.img")
    )
    try:
        if output_format == "iso":
            size = write_iso(
                medium_dir,
                image,
                volume_id=volume_id,
                udf=udf,
                progress=progress,
                reserved=reserved,
                fill=fill,
            ).size
        else:
            if reserved:
                raise ValueError("reserved files go into an ISO image only")
            size = write_fat_image(medium_dir, image, volume_label=volume_id, progress=progress)
        check_output(out, output_format=output_format, overwrite=overwrite)  # again: time has passed
        if before_commit is not None:
            before_commit()
        os.chmod(
            image, SHARED_FILE_MODE
        )  # a medium is made to be handed out: readable by all, whatever the umask
        os.replace(image, out)
    except BaseException:
        if beside:
            image.unlink(missing_ok=True)
        raise
    fsync_dir(parent)
    if beside:
        sync_filesystem(parent)  # a stick: everything on the device before it may be pulled
    return size
