"""File IDs and File-set IDs (PS3.10 §8.2, §8.5): which are conformant, and where they live under a root."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from dcmseal.media.profiles import MAX_COMPONENT_CHARS, MAX_FILE_ID_COMPONENTS

__all__ = [
    "DICOMDIR_NAME",
    "MAX_FILESET_ID_CHARS",
    "file_id_to_path",
    "fileset_id_from_label",
    "fileset_id_of",
    "is_conformant_file_id",
    "path_to_file_id",
]


#: PS3.10 §8.6: the one reserved File ID, in the root of the File-set.
DICOMDIR_NAME = "DICOMDIR"
#: PS3.10 §8.5: a File-set ID has 0 to 16 characters from the File ID character set.
MAX_FILESET_ID_CHARS = 16

_COMPONENT = re.compile(rf"[A-Z0-9_]{{1,{MAX_COMPONENT_CHARS}}}")
_NOT_FILE_ID_CHAR = re.compile(r"[^A-Z0-9_]")
_ISO_VERSION = re.compile(r"\.?;\d+$")


def _components(file_id: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(file_id, str):
        return tuple(re.split(r"[\\/]", file_id))
    return tuple(str(part) for part in file_id)


def _why_not_conformant(parts: tuple[str, ...]) -> str | None:
    if not parts:
        return "it has no component"
    if len(parts) > MAX_FILE_ID_COMPONENTS:
        return f"it has {len(parts)} components, at most {MAX_FILE_ID_COMPONENTS} are allowed"
    for part in parts:
        if not _COMPONENT.fullmatch(part):
            return (
                f"component {part!r} is not 1 to {MAX_COMPONENT_CHARS} characters from A-Z, 0-9 and _ "
                "(no lower case, no extension)"
            )
    return None


def is_conformant_file_id(file_id: str | Sequence[str]) -> bool:
    """Whether ``file_id`` is a conformant File ID (PS3.10 §8.2, §8.5; PS3.3 F.3.2.2).

    1 to 8 components, each of 1 to 8 characters from ``A-Z``, ``0-9`` and ``_``. A string is split at ``/`` and
    ``\\`` (the value separator of (0004,1500) Referenced File ID).
    """
    return _why_not_conformant(_components(file_id)) is None


def file_id_to_path(root: Path, file_id: str | Sequence[str]) -> Path:
    """Return where File ID ``file_id`` lives under the File-set root ``root``.

    Raises
    ------
    ValueError
        ``file_id`` is not conformant; a conformant File ID cannot leave ``root`` (no ``..``, no separators).
    """
    parts = _components(file_id)
    why = _why_not_conformant(parts)
    if why is not None:
        raise ValueError(f"non-conformant File ID {'/'.join(parts)!r}: {why}")
    return Path(root).joinpath(*parts)


def path_to_file_id(root: Path, path: Path, *, lenient: bool = False) -> tuple[str, ...]:
    """Return the File ID of ``path``, a file under the File-set root ``root``.

    With ``lenient``, names as an ISO 9660 or FAT reader may present them are accepted: lower case is folded to
    upper case and an ISO 9660 version suffix (``";1"``, ``".;1"``) is removed before the check.

    Raises
    ------
    ValueError
        ``path`` is not under ``root``, or a component is not conformant (PS3.10 §8.2).
    """
    try:
        relative = Path(path).relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is not inside the File-set root {root}") from None
    parts = relative.parts
    if lenient:
        parts = tuple(_ISO_VERSION.sub("", part).upper() for part in parts)
    why = _why_not_conformant(parts)
    if why is not None:
        raise ValueError(f"{path}: not a conformant File ID: {why}")
    return parts


def fileset_id_from_label(label: str) -> str:
    """Turn a free-text label into a File-set ID (PS3.10 §8.5): upper case, ``[A-Z0-9_]``, at most 16 characters.

    Every other character becomes ``_``; runs of ``_`` are collapsed and trimmed from both ends.
    """
    cleaned = _NOT_FILE_ID_CHAR.sub("_", label.upper())
    cleaned = re.sub(r"_+", "_", cleaned).strip("_")
    return cleaned[:MAX_FILESET_ID_CHARS].rstrip("_")


def fileset_id_of(medium_id: str) -> str:
    """The File-set ID (and Volume Identifier) of a medium burned without a label: its medium ID in File ID
    characters, ``DCMS-0123456789AB`` -> ``DCMS0123456789AB`` (16 characters, the most PS3.10 §8.5 allows)."""
    return fileset_id_from_label(medium_id.replace("-", ""))
