"""Guards that keep the suite hermetic: no pydicom data download, no read of ``../shared`` (issue 17 §5).

pydicom fetches the test files its wheel does not ship (``pydicom/data/urls.json``) from GitHub on demand,
retries, and on failure only warns: offline, ``get_testdata_files("*")`` alone cost 15 s and silently
returned fewer samples. The design documents and the real samples live in ``../shared`` beside the
checkout, which a user's or CI's checkout does not have. Both guards raise :class:`HermeticError`, which
derives from ``BaseException`` because pydicom wraps each download in ``except Exception`` and would turn
an ordinary error back into a warning.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom.data.data_manager
import pydicom.data.download

__all__ = ["REPOSITORY", "SHARED", "HermeticError", "forbid_pydicom_downloads", "forbid_shared_reads"]

REPOSITORY = Path(__file__).resolve().parents[1]
#: The design documents and real samples beside the main checkout: never read by a test.
SHARED = REPOSITORY.parent / "shared"

#: pydicom's one function that returns a downloadable file, fetching it when not cached.
_DOWNLOADER = "data_path_with_download"
#: The audit events (PEP 578) of a file opened or a directory listed by path.
_PATH_EVENTS = frozenset({"open", "os.listdir", "os.scandir"})


class HermeticError(BaseException):
    """A test reached outside the repository: a pydicom download, or a read of ``../shared``."""


def _refuse_download(filename: str, *_args: Any, **_kwargs: Any) -> Path:
    raise HermeticError(
        f"a test asked pydicom to download {filename!r}: tests use the files pydicom's wheel ships "
        "(tests/pydicom_data.py) or copies in tests/data/ (see its README)"
    )


def forbid_pydicom_downloads() -> Callable[[], None]:
    """Make every pydicom download fail the test that asked for it; returns the function that undoes it.

    ``data_path_with_download`` is where pydicom's every path to the network goes (``get_testdata_file``,
    ``get_testdata_files``, ``get_charset_files``, ``fetch_data_files``); it is also what returns a file
    already in ``~/.pydicom/data``, so a test that passes thanks to a developer's cache fails here too.
    """
    # data_manager imported the name from download: both bindings are replaced.
    modules = (pydicom.data.download, pydicom.data.data_manager)
    saved = [(module, getattr(module, _DOWNLOADER)) for module in modules]
    for module in modules:
        setattr(module, _DOWNLOADER, _refuse_download)

    def undo() -> None:
        for module, original in saved:
            setattr(module, _DOWNLOADER, original)

    return undo


def forbid_shared_reads(shared: Path = SHARED) -> None:
    """Make opening or listing anything under ``shared`` raise :class:`HermeticError`, in this process.

    An audit hook (PEP 578) sees every ``open()`` and directory listing by path, whichever library does
    it. Hooks cannot be removed; this one is cheap (a set lookup per audit event, a path check per open).
    """
    root = os.path.abspath(shared)
    prefix = root + os.sep

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in _PATH_EVENTS or not args or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        if path == root or path.startswith(prefix):
            raise HermeticError(f"a test read {path}: copy what it needs into the repository (tests/data/)")

    sys.addaudithook(hook)
