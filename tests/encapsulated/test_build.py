"""The domain builder: Encapsulated Document instances as Datasets (nothing written), then written together."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.encapsulated import (
    DocumentKind,
    PatientInfo,
    build_instances,
    companion_path,
    write_instances,
)
from dcmseal.errors import InputError
from tests.documents import samples

PATIENT = PatientInfo(patient_id="P001", patient_name="Doe^Jane")


def _write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def test_build_writes_nothing_and_gives_part10_datasets(tmp_path: Path) -> None:
    doc = _write(tmp_path / "in", "report.pdf", samples.minimal_pdf(odd=True))
    before = sorted(tmp_path.rglob("*"))

    built = build_instances(doc, patient=PATIENT)

    assert sorted(tmp_path.rglob("*")) == before
    [item] = built.instances
    assert item.kind is DocumentKind.PDF
    assert item.source == doc
    assert item.document_length == doc.stat().st_size
    ds = item.dataset
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == item.sop_instance_uid
    assert ds.preamble == bytes(128)
    assert ds.StudyInstanceUID == built.study_instance_uid
    assert ds.SeriesInstanceUID == built.series_instance_uid
    assert len(ds.EncapsulatedDocument) == item.document_length + 1  # the odd document's pad byte


def test_an_obj_and_its_mtl_are_written_together(tmp_path: Path) -> None:
    obj = _write(tmp_path / "in", "cube.obj", samples.obj_cube())
    mtl = _write(tmp_path / "in", "cube.mtl", samples.mtl_material())
    built = build_instances(obj, patient=PATIENT, mtl_for_obj=mtl)
    out = tmp_path / "out" / "cube.dcm"
    out.parent.mkdir()

    written = write_instances(built, out)

    assert written == (out, companion_path(out))
    assert [dcmread(p).SOPInstanceUID for p in written] == [i.sop_instance_uid for i in built.instances]


def test_a_document_that_cannot_be_written_takes_its_companion_away(tmp_path: Path) -> None:
    obj = _write(tmp_path / "in", "cube.obj", samples.obj_cube())
    mtl = _write(tmp_path / "in", "cube.mtl", samples.mtl_material())
    built = build_instances(obj, patient=PATIENT, mtl_for_obj=mtl)
    out = _write(tmp_path / "out", "cube.dcm", b"not ours")

    with pytest.raises(InputError, match="the output exists"):
        write_instances(built, out)

    assert out.read_bytes() == b"not ours"
    assert not companion_path(out).exists()
