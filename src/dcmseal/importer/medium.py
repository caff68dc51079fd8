"""The medium as the import sees it: its fingerprint, its files as they are, the links of an image."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from dcmseal.errors import HostileMediumError, InputError, one_line
from dcmseal.fsutil import sha256_file
from dcmseal.importer.request import ImportRequest
from dcmseal.reader import is_iso_image, open_archive
from dcmseal.reader.medium import medium_as_folder

__all__ = ["extract_medium", "image_links", "medium_fingerprint"]

logger = logging.getLogger(__name__)


def medium_fingerprint(medium: Path) -> str:
    """``sha256:<hex>`` of the medium: of the image file, or of every file's path and content for a folder.

    The journal keys an import by it, so a rerun from another mount point or a copy of the image resumes.
    """
    medium = Path(medium)
    if medium.is_file():
        return f"sha256:{sha256_file(medium)}"
    digest = hashlib.sha256()
    for path in sorted(p for p in medium.rglob("*") if p.is_file()):
        digest.update(path.relative_to(medium).as_posix().encode("utf-8", "surrogateescape") + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return f"sha256:{digest.hexdigest()}"


def extract_medium(request: ImportRequest, work: Path, notes: list[str]) -> Path | None:
    """The medium as a folder of its files as they are (an image or a zip extracted), or None when only open
    can read it, file by file: then what open read is scanned as open copied it.

    The extraction takes an image or a zip whole, and refuses all of it for one member it cannot take (an
    encrypted zip member, an ISO name it cannot place); open reads each file on its own and reports those.
    A medium refused for its structure (a name that escapes, a file past the end) stays refused.
    """
    try:
        return medium_as_folder(request.medium, work / "medium")
    except HostileMediumError:
        raise
    except (InputError, OSError) as exc:
        if not Path(request.medium).is_file():
            raise
        logger.debug("%s: not extracted whole", request.medium, exc_info=True)
        notes.append(f"the medium was read file by file (extracting it whole failed: {one_line(exc)})")
        return None


def image_links(medium: Path) -> dict[str, str]:
    """The symbolic links (Rock Ridge) of an ISO image, which its extraction leaves out: path -> reason."""
    medium = Path(medium)
    if not medium.is_file() or not is_iso_image(medium):
        return {}
    with open_archive(medium) as archive:
        return {
            m.name: m.problem or "a symbolic link: not followed (it may point outside the medium)"
            for m in archive.members
            if m.symlink
        }
