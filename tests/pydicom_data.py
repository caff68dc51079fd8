"""pydicom's bundled test files, by name, as paths."""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_testdata_file

__all__ = ["pydicom_file"]


def pydicom_file(name: str) -> Path:
    """The path of pydicom's test file ``name`` ("CT_small.dcm", "DICOMDIR").

    ``get_testdata_file`` is typed ``str | Dataset | None`` (a Dataset only with ``read=True``, None when no
    store has the file): a missing file is an error here, never a ``Path("None")``.
    """
    found = get_testdata_file(name)
    if not isinstance(found, str):
        raise FileNotFoundError(f"pydicom has no test file named {name!r}")
    return Path(found)
