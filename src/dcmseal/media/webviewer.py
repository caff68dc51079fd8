"""The offline web viewer every medium carries: ``INDEX.HTM`` in the root, its assets in ``VIEWER/``.

The bundle is built from ``viewer/`` (TypeScript) by ``make viewer`` into this package's ``viewer/`` folder.
Its names are ISO 9660 Level 1 names (8.3, upper case), so :mod:`dcmseal.media.iso` writes them as they are;
the files lie outside the File-set, which ``dcmseal open`` leaves out like README.TXT.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from dcmseal.errors import DcmsealError, InputError

__all__ = ["BUNDLE_DIR", "INDEX_NAME", "VIEWER_DIR_NAME", "add_viewer", "viewer_files"]

BUNDLE_DIR = Path(__file__).resolve().parent / "viewer"
INDEX_NAME = "INDEX.HTM"
VIEWER_DIR_NAME = "VIEWER"
#: ECMA-119 §7.5 / §10.1 (Level 1): d-characters, 8.3 file names, 8-character directory names.
_LEVEL1_FILE = re.compile(r"^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{1,3})?$")
_LEVEL1_DIR = re.compile(r"^[A-Z0-9_]{1,8}$")
_MISSING = "viewer bundle not built: run `make viewer`, or burn with --no-viewer"


def viewer_files() -> tuple[tuple[Path, str], ...]:
    """The bundle's files as (source, POSIX name on the medium), INDEX.HTM first.

    Raises
    ------
    DcmsealError
        The bundle is not built (or is incomplete), or holds a name ISO 9660 Level 1 cannot carry.
    """
    index = BUNDLE_DIR / INDEX_NAME
    assets = BUNDLE_DIR / VIEWER_DIR_NAME
    if not index.is_file() or not (assets / "VIEWER.JS").is_file():
        raise DcmsealError(_MISSING, path=BUNDLE_DIR)
    files = [(index, INDEX_NAME)]
    for path in sorted(assets.iterdir()):
        if not path.is_file() or not _LEVEL1_FILE.match(path.name):
            raise DcmsealError(
                f"{path.name!r} is not an ISO 9660 Level 1 file name; rebuild with `make viewer`", path=path
            )
        files.append((path, f"{VIEWER_DIR_NAME}/{path.name}"))
    return tuple(files)


def add_viewer(medium_dir: Path) -> tuple[str, ...]:
    """Copy the viewer into the staged medium ``medium_dir``; return the names written.

    Raises
    ------
    DcmsealError
        The bundle is missing (see :func:`viewer_files`), or the medium already holds one of its names.
    InputError
        A file cannot be written (full disk, file-size limit).
    """
    files = viewer_files()
    assert _LEVEL1_DIR.match(VIEWER_DIR_NAME)
    for _source, name in files:
        if (medium_dir / name).exists() or (medium_dir / name.split("/")[0]).is_file():
            raise DcmsealError(
                f"the medium already holds {name}; the viewer cannot be added", path=medium_dir
            )
    for source, name in files:
        target = medium_dir / name
        try:
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target)
        except OSError as exc:
            # As iso.write_iso does: a full disk or a file-size limit is the user's to fix, not a bug.
            raise InputError(f"cannot write the viewer: {exc.strerror or exc}", path=target) from exc
    return tuple(name for _source, name in files)
