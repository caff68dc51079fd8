"""Fixtures of the document tests: generated documents in a temporary folder, demographics, a study file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from dcmseal.documents import PatientInfo
from tests.documents import samples


@pytest.fixture
def docs(tmp_path: Path) -> dict[str, Path]:
    """Every generated document, by name: pdf, pdf_odd, cda, stl, stl_ascii, obj, mtl."""
    folder = tmp_path / "in"
    folder.mkdir()
    contents = {
        "pdf": ("report.pdf", samples.minimal_pdf()),
        "pdf_odd": ("odd.pdf", samples.minimal_pdf(odd=True)),
        "cda": ("summary.xml", samples.cda_document()),
        "stl": ("cube.stl", samples.binary_stl_cube()),
        "stl_ascii": ("cube_ascii.stl", samples.ascii_stl_cube()),
        "obj": ("cube.obj", samples.obj_cube()),
        "obj_odd": ("cube_odd.obj", samples.obj_cube(odd=True)),
        "mtl": ("cube.mtl", samples.mtl_material()),
    }
    paths: dict[str, Path] = {}
    for key, (name, data) in contents.items():
        paths[key] = folder / name
        paths[key].write_bytes(data)
    return paths


@pytest.fixture
def patient() -> PatientInfo:
    return PatientInfo(
        patient_id=samples.CDA_PATIENT_ID,
        patient_name=samples.CDA_PATIENT_NAME,
        birth_date="19700101",
        sex="F",
    )


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    """pydicom's CT_small, copied: a study to join."""
    source = get_testdata_file("CT_small.dcm")
    assert source is not None
    target = tmp_path / "study" / "IM0001"
    target.parent.mkdir()
    shutil.copyfile(str(source), target)
    return target
