"""dcmseal's UID root (PS3.5 §B.2) and the UIDs made under it: none under another implementation's root."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import PYDICOM_ROOT_UID

from dcmseal.audit import FileSink
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, burn
from dcmseal.uids import IMPLEMENTATION_CLASS_UID, UID_ROOT, derived_uid, new_uid
from tests.pydicom_data import pydicom_file

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")  # PS3.5 §9.1


def test_the_root_is_derived_from_a_uuid() -> None:
    prefix, _, number = UID_ROOT.rpartition(".")
    assert prefix == "2.25"
    assert uuid.UUID(int=int(number)).version == 4
    assert IMPLEMENTATION_CLASS_UID == UID_ROOT + ".1"


def test_new_uids_are_uuid_derived_and_distinct() -> None:
    made = {new_uid() for _ in range(1000)}
    assert len(made) == 1000
    for uid in made:
        assert uid.startswith("2.25.")
        assert len(uid) <= 64
        assert _UID.fullmatch(uid)


@pytest.mark.parametrize("sources", [("a",), ("dcmseal-series", "1.2.3", "CT"), ("",), ("x" * 500,)])
def test_derived_uids_are_stable_valid_and_under_the_root(sources: tuple[str, ...]) -> None:
    uid = derived_uid(*sources)
    assert uid == derived_uid(*sources)
    assert uid.startswith(UID_ROOT + ".2.")
    assert len(uid) <= 64
    assert _UID.fullmatch(uid)
    assert derived_uid(*sources, "more") != uid


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield reg
    reg.close()


def test_a_burned_medium_names_dcmseal_and_no_pydicom_uid(tmp_path: Path, registry: Registry) -> None:
    # A document gets new Study, Series, Frame of Reference and SOP Instance UIDs; the File-set gets its UID.
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    request = BurnRequest(
        sources=(str(pydicom_file("CT_small.dcm")), str(pdf)),
        out=tmp_path / "m",
        operator="uid-tester",
        output_format="dir",
        encrypt=False,
        viewer=False,
    )
    result = burn(request, registry=registry, audit=FileSink(tmp_path / "audit.log"))
    assert result.fileset_uid.startswith("2.25.")
    dicomdir = dcmread(tmp_path / "m" / "DICOMDIR")
    assert dicomdir.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    documents = [f for f in result.files if f.conversion is None and "report.pdf" in f.origin]
    assert len(documents) == 1
    document = dcmread(tmp_path / "m" / documents[0].file_id)
    assert document.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    for uid in (document.SOPInstanceUID, document.SeriesInstanceUID):
        assert uid.startswith("2.25.")
        assert not uid.startswith(PYDICOM_ROOT_UID)
