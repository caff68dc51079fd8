"""pydicom's test files that its wheel ships, by name, as paths: never one pydicom would download."""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_testdata_file
from pydicom.data.data_manager import DATA_ROOT

__all__ = ["pydicom_file", "pydicom_files"]

#: The test files installed with pydicom; pydicom downloads the others (``urls.json``) on demand.
_SHIPPED = Path(DATA_ROOT) / "test_files"


def pydicom_file(name: str) -> Path:
    """The path of pydicom's test file ``name`` ("CT_small.dcm", "DICOMDIR").

    Only files the wheel ships: ``download=False``, and tests/hermetic.py fails any test that would
    download one. ``get_testdata_file`` is typed ``str | Dataset | None`` (a Dataset only with
    ``read=True``, None when no store has the file): a missing file is an error here, never a ``Path("None")``.
    """
    found = get_testdata_file(name, download=False)
    if not isinstance(found, str):
        raise FileNotFoundError(f"pydicom's wheel ships no test file named {name!r}")
    return Path(found)


def pydicom_files() -> list[Path]:
    """Every test file at the top of pydicom's shipped ``test_files`` folder, sorted.

    What ``get_testdata_files("*")`` lists without its downloads (which it attempts for every file pydicom
    does not ship, retrying each: 15 s offline, and a list that depends on the network).
    """
    return sorted(path for path in _SHIPPED.glob("*") if path.is_file())
