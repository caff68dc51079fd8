"""Safe extraction of a medium under a folder: the limits, paths kept inside it, bounded copies, rollback."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from dcmseal.errors import HostileMediumError
from dcmseal.fsutil import CHUNK_SIZE_BYTES

__all__ = [
    "DEFAULT_MAX_EXPANSION",
    "DEFAULT_MAX_EXTRACT_BYTES",
    "DEFAULT_MAX_MEMBERS",
    "EXPANSION_GRACE_BYTES",
    "CreatedFiles",
    "contained_target",
    "copy_limited",
]


#: An archive that announces more than this much content is refused before anything is extracted
#: (a DVD holds 8.5 GB, a Blu-ray 100 GB; a study on a USB stick rarely more than a few tens of GB).
DEFAULT_MAX_EXTRACT_BYTES = 64 * 1024**3
#: A zip whose content is more than this many times the archive is treated as a bomb (DICOM
#: images compress 2-10x losslessly; 100x is the usual zip-bomb threshold).
DEFAULT_MAX_EXPANSION = 100
#: Below this much content the expansion ratio is not checked: a few small files cannot hurt.
EXPANSION_GRACE_BYTES = 1024 * 1024
#: More entries than this in one archive or image is refused (a 2,000-image study is a few thousand).
DEFAULT_MAX_MEMBERS = 200_000


class CreatedFiles:
    """Files and directories an extraction created, removed again if it fails (no partial output)."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.dirs: list[Path] = []

    def mkdir(self, path: Path) -> None:
        if path.is_dir():
            return
        path.mkdir()
        self.dirs.append(path)

    def rollback(self) -> None:
        for file in reversed(self.files):
            file.unlink(missing_ok=True)
        for directory in reversed(self.dirs):
            shutil.rmtree(directory, ignore_errors=True)


def contained_target(dest: Path, relative: PurePosixPath, source: Path) -> Path:
    resolved_root = dest.resolve()
    candidate = dest.joinpath(*relative.parts)
    resolved = candidate.resolve()
    if resolved == resolved_root or resolved_root not in resolved.parents:
        raise HostileMediumError(f"refusing {relative}: it would escape {dest}", path=source)
    return candidate


def copy_limited(read: Callable[[int], bytes], out: Any, expected: int) -> int:
    written = 0
    while written < expected:
        chunk = read(min(CHUNK_SIZE_BYTES, expected - written))
        if not chunk:
            break
        out.write(chunk)
        written += len(chunk)
    return written
