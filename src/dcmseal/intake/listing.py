"""Every file of a medium, listed through :mod:`dcmseal.reader`: the sources to read, and those settled at once.

A folder (a mounted disc, a USB stick), a FAT image, an ISO 9660 or UDF image, or a zip (zips inside it opened,
within bounds). A file is a :class:`Source` (its bytes read in place, or out of an archive into the work folder
once) or settled at once: a symbolic link (never followed), a member that cannot be read, a zip refused whole.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dcmseal.errors import HostileMediumError, InputError, ResourceLimitError, one_line
from dcmseal.fsutil import CHUNK_SIZE_BYTES, Extent
from dcmseal.reader.containers import (
    MEMBER_READ_ERRORS,
    NESTED_SEPARATOR,
    Archive,
    ExtentsReader,
    Member,
    NestingBudget,
    NestingLimits,
    is_zip_head,
    iter_folder,
    open_archive,
    open_nested,
)
from dcmseal.reader.detect import SNIFF_BYTES, sniff
from dcmseal.reader.extraction import DEFAULT_MAX_EXTRACT_BYTES
from dcmseal.reader.fat import extract_fat_image, is_fat_image
from dcmseal.reader.iso import is_iso_image, is_udf_only_image

__all__ = ["Listing", "Source", "open_no_follow"]


@dataclass(slots=True)
class Source:
    """One file of the medium, by its path on the medium, and where its bytes can be read."""

    label: str  # its path on the medium (``portal.zip!DICOM/IM1`` inside a zip)
    path: Path  # on disk: the file itself (a folder's), a copy in the staging folder, or only a name (ISO)
    extent: Extent | None = None  # a file of an ISO image, read in place

    def stream(self) -> io.BufferedReader:
        if self.extent is not None:
            extent = self.extent
            return io.BufferedReader(ExtentsReader(extent.container, ((extent.offset, extent.length),)))
        return open_no_follow(self.path)


def open_no_follow(path: Path) -> io.BufferedReader:
    """``path`` for reading; a file of a folder medium swapped for a link after the listing is not followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    return open(fd, "rb")


class Listing:
    """Every file of a medium: the sources to read, and those already settled (links, unreadable, refused)."""

    def __init__(self, medium: Path, staging: Path) -> None:
        self.medium = medium
        self.raw = staging / "raw"
        self.raw.mkdir()
        self.names = staging / "medium"  # names only: nothing is written there
        self.sources: list[Source] = []
        self.settled: dict[str, tuple[str, str]] = {}  # label -> (status, reason)
        self.budget = NestingBudget(NestingLimits())
        self._count = 0
        self.copied = 0  # bytes read out of archives into the staging folder
        self.max_copied = DEFAULT_MAX_EXTRACT_BYTES

    def settle(self, label: str, status: str, reason: str) -> None:
        self.settled[label] = (status, reason)

    def scratch(self) -> Path:
        self._count += 1
        return self.raw / f"F{self._count:07d}"

    def read(self) -> None:
        medium = self.medium
        if medium.is_dir():
            self._folder(medium)
            return
        if not medium.exists():
            raise InputError("no such file or folder", path=medium)
        if not medium.is_file():
            raise InputError("not a medium: neither a file nor a folder", path=medium)
        if is_fat_image(medium):  # a USB medium as an image (--format usb-image): copied out with mtools
            self._folder(extract_fat_image(medium, self.raw.parent / "fat"))
            return
        if is_udf_only_image(medium) or is_iso_image(medium) or zipfile.is_zipfile(medium):
            with open_archive(medium) as archive:
                self._archive(archive, "", depth=0)
            return
        raise InputError("not a medium: expected an ISO 9660 image, a folder or a zip archive", path=medium)

    def _folder(self, root: Path) -> None:
        for member in iter_folder(root):
            if member.symlink:
                self.settle(
                    member.name, "skipped", "a symbolic link: not followed (it may point outside the medium)"
                )
                continue
            path = Path(member.path or "")
            try:
                with open_no_follow(path) as fp:
                    head = fp.read(SNIFF_BYTES)
            except OSError as exc:
                self.settle(member.name, "failed", f"cannot read: {exc.strerror or exc}")
                continue
            if is_zip_head(head) and not sniff(head).is_dicom:
                self._zip_in_folder(path, member.name)
                continue
            self.sources.append(Source(member.name, path))

    def _zip_in_folder(self, path: Path, label: str) -> None:
        try:
            with open_archive(path) as archive:
                self._archive(archive, f"{label}{NESTED_SEPARATOR}", depth=1)
        except (ResourceLimitError, InputError) as exc:
            # a zip on the medium is one of its files: refused whole (nothing of it read), the rest goes on
            self.settle(label, "failed", f"a zip archive refused: {exc.message}")

    def _archive(self, archive: Archive, prefix: str, *, depth: int) -> None:
        refused = next((m for m in archive.members if m.structural), None)
        if refused is not None:
            # A name that escapes the root or a file past the end of the image: the medium is malformed or
            # hostile, and ``scan`` reports the same (container.structure). Nothing of it is opened.
            raise HostileMediumError(refused.problem or "malformed", path=self.medium)
        for member in archive.members:
            label = f"{prefix}{member.name}"
            if member.symlink:
                self.settle(label, "skipped", f"{member.problem or 'a symbolic link'}")
                continue
            if member.problem is not None:
                self.settle(label, "failed", member.problem)
                continue
            try:
                self._member(archive, member, label, depth)
            except MEMBER_READ_ERRORS as exc:
                self.settle(label, "failed", f"cannot read it from the archive: {one_line(exc)}")

    def _member(self, archive: Archive, member: Member, label: str, depth: int) -> None:
        # One stream per member, its head sniffed and then, if it is copied out, rewound: a UDF-only image's
        # file is one 7z run, which a second open would repeat.
        with archive.open(member) as fp:
            head = fp.read(SNIFF_BYTES)
            if not (is_zip_head(head) and not sniff(head).is_dicom):
                self._plain_member(archive, member, label, fp)
                return
        try:
            inner = open_nested(archive, member, label=label, depth=depth + 1, budget=self.budget)
        except (ResourceLimitError, InputError) as exc:
            self.settle(label, "failed", f"a zip archive that cannot be opened: {exc.message}")
            return
        try:
            self._archive(inner, f"{label}{NESTED_SEPARATOR}", depth=depth + 1)
        except InputError as exc:
            # a zip on the medium is one of its files: refused whole (nothing of it read), the rest goes on
            self.settle(label, "failed", f"a zip archive refused: {exc.message}")
        finally:
            inner.close()

    def _plain_member(self, archive: Archive, member: Member, label: str, fp: BinaryIO) -> None:
        extents = member.key if archive.kind == "iso" else None
        if extents is not None and len(extents) <= 1:
            start = extents[0][0] if extents else 0
            name = self.names.joinpath(*label.split("/"))
            self.sources.append(Source(label, name, Extent(archive.path, start, member.size)))
            return
        if self.copied + member.size > self.max_copied:
            self.settle(
                label,
                "failed",
                f"not read: the medium's archives hold more than {self.max_copied} bytes to read out",
            )
            return
        copy = self.scratch()  # a zip member (or a file of an image in several extents): read it out once
        fp.seek(0)
        with open(copy, "xb") as out:
            written = _copy_at_most(fp, out, member.size)
        self.copied += written
        if written != member.size:
            held = "more" if written > member.size else str(written)
            self.settle(label, "failed", f"its archive says {member.size} bytes, it holds {held}")
            return
        self.sources.append(Source(label, copy))


def _copy_at_most(source: BinaryIO, out: BinaryIO, size: int) -> int:
    """Copy ``size`` bytes, and one more if there is one (a member longer than its archive says)."""
    written = 0
    while written <= size:
        chunk = source.read(min(CHUNK_SIZE_BYTES, size + 1 - written))
        if not chunk:
            break
        out.write(chunk)
        written += len(chunk)
    return written
