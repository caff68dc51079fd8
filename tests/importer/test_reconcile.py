"""Reconciliation: mapping files (CSV, JSON, their errors) and the coercion of one data set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dcmseal.errors import InputError
from dcmseal.importer import add_original_attributes, coerce_dataset, load_reconciliation

CSV = """foreign_patient_id,foreign_issuer,patient_id,patient_name,birth_date,sex,foreign_accession,accession
EXT-1,OTHER-HOSP,LOC-1,Local^One,19800101,F,,
EXT-1,,LOC-9,Local^Nine,,,,
EXT-2,,LOC-2,Local^Two,,M,A77,ACC-2
,,,,,,A88,ACC-88
"""


def _foreign(patient_id: str = "EXT-1", issuer: str | None = "OTHER-HOSP") -> Dataset:
    ds = Dataset()
    ds.PatientID = patient_id
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    ds.PatientName = "Foreign^Name"
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "F"
    ds.AccessionNumber = "A77"
    return ds


def test_a_csv_map_matches_the_exact_issuer_first(tmp_path: Path) -> None:
    mapping = load_reconciliation(_write(tmp_path / "m.csv", CSV))
    exact = mapping.patient_for("EXT-1", "OTHER-HOSP")
    loose = mapping.patient_for("EXT-1", "THIRD")
    assert exact is not None
    assert exact.patient_id == "LOC-1"
    assert loose is not None
    assert loose.patient_id == "LOC-9"
    assert mapping.patient_for("EXT-3", None) is None
    assert mapping.accession_for("A77", "EXT-2") == "ACC-2"
    assert mapping.accession_for("A77", "EXT-1") is None  # scoped to EXT-2
    assert mapping.accession_for("A88", "anyone") == "ACC-88"


def test_a_json_map_is_the_same_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.json",
        '[\n {"foreign_patient_id": "EXT-2", "patient_id": "LOC-2", "patient_name": "Local^Two"},\n'
        ' {"foreign_accession": "A88", "accession": "ACC-88"}\n]\n',
    )
    mapping = load_reconciliation(path)
    assert mapping.patient_for("EXT-2", None) is not None
    assert mapping.accession_for("A88", "x") == "ACC-88"


@pytest.mark.parametrize(
    ("name", "text", "line", "problem"),
    [
        (
            "bad-date.csv",
            "foreign_patient_id,patient_id,patient_name,birth_date\nE1,L1,A^B,19801301\n",
            2,
            "not a date",
        ),
        ("bad-sex.csv", "foreign_patient_id,patient_id,patient_name,sex\n\nE1,L1,A^B,X\n", 3, "M, F or O"),
        ("no-name.csv", "foreign_patient_id,patient_id\nE1,L1\n", 2, "patient_name is required"),
        (
            "column.csv",
            "foreign_patient_id,patient_id,patient_name,nickname\nE1,L1,A^B,Bo\n",
            1,
            "unknown column",
        ),
        (
            "conflict.csv",
            "foreign_patient_id,patient_id,patient_name\nE1,L1,A^B\nE1,L2,A^B\n",
            3,
            "mapped differently on line 2",
        ),
        ("empty-row.csv", "foreign_patient_id,patient_id,patient_name\n,,\n", 2, "a row needs patient_id"),
        ("broken.json", '[\n {"foreign_patient_id": "E1",\n  "patient_id": }\n]', 3, "not valid JSON"),
        (
            "second.json",
            '[\n {"foreign_patient_id": "E1", "patient_id": "L1", "patient_name": "A^B"},\n {"foreign_patient_id": "E2", "patient_id": "L2"}\n]',
            3,
            "patient_name is required",
        ),
    ],
)
def test_a_malformed_map_is_one_line_naming_file_and_line(
    tmp_path: Path, name: str, text: str, line: int, problem: str
) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(InputError) as caught:
        load_reconciliation(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line {line}: "), message
    assert problem in message
    assert "\n" not in message


def test_coercion_keeps_every_old_value_and_the_foreign_id(tmp_path: Path) -> None:
    mapping = load_reconciliation(_write(tmp_path / "m.csv", CSV))
    ds = _foreign()
    patient = mapping.patient_for("EXT-1", "OTHER-HOSP")
    assert patient is not None
    originals = coerce_dataset(ds, patient, "ACC-NEW")
    assert add_original_attributes(
        ds, originals, when="20261122050000.000000+0000", modifying_system="DCMSEAL", source="Other Hospital"
    )
    assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == ("LOC-1", "Local^One", "ACC-NEW")
    assert "IssuerOfPatientID" not in ds  # the foreign issuer does not name the local ID's assigner
    item = ds.OriginalAttributesSequence[0]
    assert item.ReasonForTheAttributeModification == "COERCE"
    assert (item.ModifyingSystem, item.SourceOfPreviousValues) == ("DCMSEAL", "Other Hospital")
    assert item.AttributeModificationDateTime == "20261122050000.000000+0000"
    old = item.ModifiedAttributesSequence[0]
    assert (old.PatientID, old.IssuerOfPatientID, str(old.PatientName), old.AccessionNumber) == (
        "EXT-1",
        "OTHER-HOSP",
        "Foreign^Name",
        "A77",
    )
    assert "PatientBirthDate" not in old  # unchanged values are not "modified"
    other = ds.OtherPatientIDsSequence[0]
    assert (other.PatientID, other.IssuerOfPatientID, other.TypeOfPatientID) == (
        "EXT-1",
        "OTHER-HOSP",
        "TEXT",
    )


def test_a_second_coercion_appends_a_second_item(tmp_path: Path) -> None:
    mapping = load_reconciliation(_write(tmp_path / "m.csv", CSV))
    ds = _foreign("EXT-2", None)
    for _ in range(2):
        patient = mapping.patient_for(str(ds.PatientID), None) or mapping.patient_for("EXT-2", None)
        assert patient is not None
        add_original_attributes(
            ds, coerce_dataset(ds, patient, None), when="20260101000000+0000", modifying_system="X", source=""
        )
    assert len(ds.OriginalAttributesSequence) == 1  # the second pass changed nothing: no empty item
    assert len(ds.OtherPatientIDsSequence) == 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
