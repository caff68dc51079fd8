"""The suite is hermetic: a pydicom download or a read of ../shared fails the test that tries (issue 17 §5)."""

from __future__ import annotations

import os

import pydicom.data
import pytest

from tests.hermetic import SHARED, HermeticError
from tests.pydicom_data import pydicom_file, pydicom_files

#: A file pydicom's wheel does not ship: pydicom would download it from GitHub (its urls.json).
_DOWNLOAD_ONLY = "liver.dcm"


def test_a_file_pydicom_would_download_fails_loudly() -> None:
    assert _DOWNLOAD_ONLY in pydicom.data.download.get_url_map()
    with pytest.raises(HermeticError, match="download"):
        pydicom.data.get_testdata_file(_DOWNLOAD_ONLY)
    with pytest.raises(HermeticError, match="download"):
        pydicom.data.get_testdata_files("*")  # lists the downloadable files too, each fetched


def test_the_shipped_files_need_no_download() -> None:
    files = pydicom_files()
    assert len(files) >= 80
    assert all(path.is_file() for path in files)
    assert _DOWNLOAD_ONLY not in {path.name for path in files}
    assert pydicom_file("CT_small.dcm") in files
    with pytest.raises(FileNotFoundError):
        pydicom_file(_DOWNLOAD_ONLY)


def test_reading_shared_fails_loudly() -> None:
    for attempt in (
        lambda: open(SHARED / "docs" / "style.md", "rb"),  # noqa: SIM115 - the open itself is what fails
        lambda: os.listdir(SHARED),
        lambda: list(os.scandir(SHARED / "corpus")),
        lambda: (SHARED / "vectors" / "SHA256SUMS").read_bytes(),
    ):
        with pytest.raises(HermeticError, match="copy what it needs"):
            attempt()
