"""Fixtures for the media tests: a staged File-set tree, ISO tools, and a real Orthanc as the PACS peer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.part10.dicomfiles import write_part10
from tests.peers.orthanc import OrthancPeer, running_orthanc
from tests.peers.tools import require_tool


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    """One Orthanc with DICOMweb for the session (127.0.0.1, free ports, temp storage); stopped by PID after.

    Tests that store into it should call ``orthanc.clear()`` first, or use UIDs of their own.
    """
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as peer:
        yield peer


@pytest.fixture(scope="session")
def xorriso_bin() -> str:
    return require_tool("xorriso", "xorriso")


@pytest.fixture(scope="session")
def isoinfo_bin() -> str:
    return require_tool("isoinfo", "genisoimage")


@pytest.fixture
def staged_fileset(tmp_path: Path) -> Path:
    """A staging tree as the burn workflow leaves it: DICOMDIR, README.TXT, INDEX.HTM and nested File IDs.

    The contents are whatever bytes (real Part 10 files, random bytes): the ISO writer copies, never reads.
    """
    root = tmp_path / "stage"
    series = root / "DICOM" / "PAT00001" / "STU00001" / "SER00001"
    write_part10(root / "DICOMDIR")
    for index in range(1, 4):
        write_part10(series / f"IM{index:06d}", pixel_bytes=64 * index)
    (root / "DICOM" / "PAT00001" / "STU00001" / "SER00002").mkdir(parents=True)
    (root / "DICOM" / "PAT00001" / "STU00001" / "SER00002" / "IM000001").write_bytes(os.urandom(70_000))
    (root / "README.TXT").write_bytes(b"This disc holds Secure DICOM Files.\r\n")
    (root / "INDEX.HTM").write_bytes(b"<html></html>\r\n")
    return root
