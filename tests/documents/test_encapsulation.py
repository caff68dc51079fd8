"""Encapsulate and extract: round trips, the modules written, study joining, CDA demographics, limits, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom import dcmread
from typer.testing import CliRunner

from dcmseal.cli.main import app
from dcmseal.documents import DocumentKind, PatientInfo, encapsulate, extract
from dcmseal.errors import InputError, NotPart10Error, ResourceLimitError
from tests.documents import samples
from tests.documents.samples import AUDIT, OPERATOR

#: Type 1 and 2 attributes of the mandatory modules of each IOD (PS3.3 A.45.1, A.45.2, A.85.1-3).
COMMON_REQUIRED = frozenset(
    {
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex",  # Patient
        "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
        "Modality", "SeriesInstanceUID", "SeriesNumber",  # Encapsulated Document Series
        "Manufacturer",  # General Equipment
        "InstanceNumber", "ContentDate", "ContentTime", "AcquisitionDateTime", "BurnedInAnnotation",
        "DocumentTitle", "ConceptNameCodeSequence", "MIMETypeOfEncapsulatedDocument", "EncapsulatedDocument",
        "SOPClassUID", "SOPInstanceUID",  # SOP Common
    }
)  # fmt: skip
MODEL_REQUIRED = COMMON_REQUIRED | {
    "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions",  # Enhanced General Equipment
    "MeasurementUnitsCodeSequence",  # Manufacturing 3D Model
}  # fmt: skip
FRAME_OF_REFERENCE = frozenset({"FrameOfReferenceUID", "PositionReferenceIndicator"})
REQUIRED: dict[DocumentKind, frozenset[str]] = {
    DocumentKind.PDF: COMMON_REQUIRED | {"ConversionType"},
    DocumentKind.CDA: COMMON_REQUIRED | {"ConversionType", "HL7InstanceIdentifier"},
    DocumentKind.STL: MODEL_REQUIRED | FRAME_OF_REFERENCE,
    DocumentKind.OBJ: MODEL_REQUIRED | FRAME_OF_REFERENCE,
    DocumentKind.MTL: MODEL_REQUIRED,
}


@pytest.mark.parametrize("name", ["pdf", "pdf_odd", "cda", "stl", "obj", "obj_odd", "mtl"])
def test_round_trip_is_byte_identical(
    docs: dict[str, Path], patient: PatientInfo, tmp_path: Path, name: str
) -> None:
    original = docs[name].read_bytes()
    out = tmp_path / f"{name}.dcm"
    result = encapsulate(docs[name], out, patient=patient, audit=AUDIT, operator=OPERATOR)
    ds = dcmread(out)
    assert ds.EncapsulatedDocumentLength == len(original)
    assert len(ds.EncapsulatedDocument) % 2 == 0
    assert out.read_bytes()[:132] == bytes(128) + b"DICM"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert REQUIRED[result.primary.kind] <= set(ds.dir())
    extracted = extract(out, tmp_path / "back", audit=AUDIT, operator=OPERATOR)
    assert extracted.path.suffix == result.primary.kind.extension
    assert extracted.path.read_bytes() == original
    assert extracted.removed_pad_byte == (len(original) % 2 == 1)


def test_modules_and_values(docs: dict[str, Path], patient: PatientInfo, tmp_path: Path) -> None:
    encapsulate(
        docs["pdf"],
        tmp_path / "pdf.dcm",
        patient=patient,
        title="Report",
        series_description="Docs",
        audit=AUDIT,
        operator=OPERATOR,
    )
    pdf = dcmread(tmp_path / "pdf.dcm")
    assert (pdf.SOPClassUID, pdf.Modality, pdf.ConversionType) == (
        "1.2.840.10008.5.1.4.1.1.104.1",
        "DOC",
        "WSD",
    )
    assert (pdf.MIMETypeOfEncapsulatedDocument, pdf.BurnedInAnnotation) == ("application/pdf", "YES")
    assert (pdf.DocumentTitle, pdf.SeriesDescription, pdf.PatientID) == ("Report", "Docs", "P001")
    assert pdf.ConceptNameCodeSequence == []
    encapsulate(
        docs["stl"],
        tmp_path / "stl.dcm",
        patient=patient,
        burned_in_annotation=False,
        audit=AUDIT,
        operator=OPERATOR,
    )
    stl = dcmread(tmp_path / "stl.dcm")
    assert (stl.Modality, stl.MIMETypeOfEncapsulatedDocument, stl.BurnedInAnnotation) == (
        "M3D",
        "model/stl",
        "NO",
    )
    unit = stl.MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("mm", "UCUM")
    assert "ConversionType" not in stl
    encapsulate(
        docs["cda"], tmp_path / "cda.dcm", audit=AUDIT, operator=OPERATOR
    )  # demographics from the CDA header
    cda = dcmread(tmp_path / "cda.dcm")
    assert cda.HL7InstanceIdentifier == "2.16.840.1.113883.19.5^DOC-42"
    assert (cda.MIMETypeOfEncapsulatedDocument, cda.PatientID, cda.PatientName) == (
        "text/XML",
        "P001",
        "Doe^Jane",
    )
    assert cda.DocumentTitle == "Discharge summary"
    # The header's birth date, sex, document code and time (not the conversion's) are carried over.
    assert (cda.PatientBirthDate, cda.PatientSex) == ("19700101", "F")
    (concept,) = cda.ConceptNameCodeSequence
    assert (concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning) == (
        "18842-5",
        "LN",
        "Discharge summary",
    )
    assert (cda.ContentDate, cda.ContentTime, cda.AcquisitionDateTime) == (
        "20260101",
        "120000",
        "20260101120000",
    )
    assert "ListOfMIMETypes" not in cda  # nothing but XML in this one
    assert cda.InstanceCreationDate != "20260101"  # the conversion's own time stays the instance's creation


def test_cda_with_inline_media_lists_its_mime_types(tmp_path: Path) -> None:
    media = (
        b'<component><section><entry><observationMedia classCode="OBS" moodCode="EVN">'
        b'<value mediaType="image/png" representation="B64">iVBORw0KGgo=</value>'
        b"</observationMedia></entry></section></component>"
    )
    document = samples.cda_document().replace(
        b"<component><section><title>Course</title>", media + b"<component><section><title>Course</title>"
    )
    assert b"observationMedia" in document
    source = tmp_path / "with-media.xml"
    source.write_bytes(document)
    encapsulate(source, tmp_path / "cda.dcm", audit=AUDIT, operator=OPERATOR)
    assert dcmread(tmp_path / "cda.dcm").ListOfMIMETypes == "image/png"


def test_model_units_and_device_serial_come_from_the_options(
    docs: dict[str, Path], patient: PatientInfo, tmp_path: Path
) -> None:
    from dcmseal.documents import ModelOptions

    model = ModelOptions(units="in", device_serial_number="PRINTER-0042")
    encapsulate(
        docs["stl"], tmp_path / "stl.dcm", patient=patient, model=model, audit=AUDIT, operator=OPERATOR
    )
    stl = dcmread(tmp_path / "stl.dcm")
    unit = stl.MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning) == ("[in_i]", "UCUM", "inch")
    assert stl.DeviceSerialNumber == "PRINTER-0042"
    with pytest.raises(ValueError, match="units"):
        ModelOptions(units="furlong")
    encapsulate(docs["stl"], tmp_path / "default.dcm", patient=patient, audit=AUDIT, operator=OPERATOR)
    assert dcmread(tmp_path / "default.dcm").DeviceSerialNumber not in ("", "0")


def test_ascii_stl_is_converted_and_said_so(
    docs: dict[str, Path], patient: PatientInfo, tmp_path: Path
) -> None:
    result = encapsulate(
        docs["stl_ascii"], tmp_path / "a.dcm", patient=patient, audit=AUDIT, operator=OPERATOR
    )
    assert any("ASCII STL converted to binary" in note for note in result.notes)
    assert dcmread(tmp_path / "a.dcm").EncapsulatedDocument[84:] == samples.binary_stl_cube()[84:]


def test_obj_references_its_mtl(docs: dict[str, Path], patient: PatientInfo, tmp_path: Path) -> None:
    result = encapsulate(
        docs["obj"],
        tmp_path / "model.dcm",
        patient=patient,
        mtl_for_obj=docs["mtl"],
        audit=AUDIT,
        operator=OPERATOR,
    )
    obj_i, mtl_i = result.instances
    assert (obj_i.kind, mtl_i.kind) == (DocumentKind.OBJ, DocumentKind.MTL)
    assert mtl_i.path == tmp_path / "model_mtl.dcm"
    obj, mtl = dcmread(obj_i.path), dcmread(mtl_i.path)
    assert obj.StudyInstanceUID == mtl.StudyInstanceUID
    assert obj.SeriesInstanceUID == mtl.SeriesInstanceUID
    ref = obj.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (mtl.SOPClassUID, mtl.SOPInstanceUID)
    assert obj.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == mtl.SOPInstanceUID
    assert "FrameOfReferenceUID" in obj
    assert "FrameOfReferenceUID" not in mtl
    assert (
        extract(mtl_i.path, tmp_path / "back", audit=AUDIT, operator=OPERATOR).path.read_bytes()
        == docs["mtl"].read_bytes()
    )


def test_joins_a_study_in_a_new_series(docs: dict[str, Path], study_file: Path, tmp_path: Path) -> None:
    study = dcmread(study_file, stop_before_pixels=True)
    result = encapsulate(
        docs["pdf"], tmp_path / "joined.dcm", study=study_file.parent, audit=AUDIT, operator=OPERATOR
    )
    ds = dcmread(tmp_path / "joined.dcm")
    assert result.study_instance_uid == ds.StudyInstanceUID == study.StudyInstanceUID
    assert ds.SeriesInstanceUID != study.SeriesInstanceUID
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "AccessionNumber",
    ):
        assert ds.get(keyword) == study.get(keyword), keyword


def test_study_folder_skips_other_files(docs: dict[str, Path], study_file: Path, tmp_path: Path) -> None:
    (study_file.parent / "A_README.TXT").write_text("not DICOM")
    result = encapsulate(
        docs["stl"], tmp_path / "s.dcm", study=study_file.parent, audit=AUDIT, operator=OPERATOR
    )
    assert result.study_instance_uid == dcmread(study_file).StudyInstanceUID
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(InputError, match="no DICOM file"):
        encapsulate(docs["stl"], tmp_path / "t.dcm", study=empty, audit=AUDIT, operator=OPERATOR)
    with pytest.raises(NotPart10Error):
        encapsulate(docs["stl"], tmp_path / "t.dcm", study=docs["pdf"], audit=AUDIT, operator=OPERATOR)


def test_cda_for_another_patient_is_refused_unless_overridden(docs: dict[str, Path], tmp_path: Path) -> None:
    other = PatientInfo(patient_id="X999", patient_name="Roe^Richard")
    with pytest.raises(InputError) as info:
        encapsulate(docs["cda"], tmp_path / "c.dcm", patient=other, audit=AUDIT, operator=OPERATOR)
    message = str(info.value)
    assert all(v in message for v in ("P001", "X999", "Doe^Jane", "Roe^Richard", "--override"))
    assert not (tmp_path / "c.dcm").exists()
    result = encapsulate(
        docs["cda"], tmp_path / "c.dcm", patient=other, override=True, audit=AUDIT, operator=OPERATOR
    )
    assert any("overridden" in note for note in result.notes)
    assert dcmread(tmp_path / "c.dcm").PatientID == "X999"


def test_cda_name_comparison_ignores_case(docs: dict[str, Path], tmp_path: Path) -> None:
    encapsulate(
        docs["cda"],
        tmp_path / "c.dcm",
        patient=PatientInfo(patient_id="P001", patient_name="DOE^JANE"),
        audit=AUDIT,
        operator=OPERATOR,
    )


def test_bad_inputs(docs: dict[str, Path], patient: PatientInfo, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty") as info:
        encapsulate(empty, tmp_path / "e.dcm", patient=patient, audit=AUDIT, operator=OPERATOR)
    assert info.value.path == empty
    renamed = tmp_path / "model.stl"
    renamed.write_bytes(docs["pdf"].read_bytes())
    with pytest.raises(InputError, match="given as STL but the content is PDF") as info:
        encapsulate(
            renamed,
            tmp_path / "r.dcm",
            patient=patient,
            kind=DocumentKind.STL,
            audit=AUDIT,
            operator=OPERATOR,
        )
    assert str(renamed) in str(info.value)
    with pytest.raises(ResourceLimitError, match="limit of 100 bytes"):
        encapsulate(
            docs["pdf"], tmp_path / "big.dcm", patient=patient, max_bytes=100, audit=AUDIT, operator=OPERATOR
        )
    with pytest.raises(InputError, match="an MTL goes with an OBJ"):
        encapsulate(
            docs["pdf"],
            tmp_path / "m.dcm",
            patient=patient,
            mtl_for_obj=docs["mtl"],
            audit=AUDIT,
            operator=OPERATOR,
        )
    encapsulate(docs["pdf"], tmp_path / "once.dcm", patient=patient, audit=AUDIT, operator=OPERATOR)
    with pytest.raises(InputError, match="exists"):
        encapsulate(docs["pdf"], tmp_path / "once.dcm", patient=patient, audit=AUDIT, operator=OPERATOR)
    assert list(tmp_path.glob("*.dcm")) == [tmp_path / "once.dcm"]
    assert not list(tmp_path.glob(".*part"))


def test_extract_refuses_other_files(study_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an Encapsulated Document"):
        extract(study_file, tmp_path, audit=AUDIT, operator=OPERATOR)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with pytest.raises(NotPart10Error):
        extract(junk, tmp_path, audit=AUDIT, operator=OPERATOR)


# --- command line ---------------------------------------------------------------------------------------------


def _invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_encapsulate_and_extract(docs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.dcm"
    code, stdout, _ = _invoke(
        "encapsulate", docs["pdf_odd"], "--out", out, "--patient-id", "P001", "--patient-name", "Doe^Jane",
        "--patient-sex", "f", "--title", "Report", "--kind", "pdf", "--json",
    )  # fmt: skip
    assert code == 0
    document = json.loads(stdout)
    assert document["schema"] == "dcmseal.encapsulate/1"
    assert document["instances"][0]["document_length"] == docs["pdf_odd"].stat().st_size
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"junk")
    code, stdout, _ = _invoke("extract", out, junk, "--out", tmp_path / "back", "--json")
    assert code == 1
    files = json.loads(stdout)["files"]
    assert [f["status"] for f in files] == ["ok", "failed"]
    assert "junk.dcm" in files[1]["reason"]
    assert (tmp_path / "back" / "report.pdf").read_bytes() == docs["pdf_odd"].read_bytes()


def test_cli_errors(docs: dict[str, Path], tmp_path: Path) -> None:
    renamed = tmp_path / "model.stl"
    renamed.write_bytes(docs["pdf"].read_bytes())
    code, _, stderr = _invoke("encapsulate", renamed, "--out", tmp_path / "x.dcm", "--kind", "stl")
    assert code == 1
    assert "model.stl" in stderr
    assert "content is PDF" in stderr
    code, _, stderr = _invoke("encapsulate", docs["pdf"], "--out", tmp_path / "x.dcm", "--max-size", "64")
    assert code == 1
    assert "limit of 64 bytes" in stderr
    code, _, stderr = _invoke(
        "encapsulate",
        docs["cda"],
        "--out",
        tmp_path / "x.dcm",
        "--patient-id",
        "X9",
        "--patient-name",
        "Roe^R",
    )
    assert code == 1
    assert "X9" in stderr
    assert "P001" in stderr
    code, _, _ = _invoke(
        "encapsulate", docs["cda"], "--out", tmp_path / "x.dcm", "--patient-id", "X9", "--patient-name", "Roe^R",
        "--override",
    )  # fmt: skip
    assert code == 0
    code, _, stderr = _invoke("encapsulate", docs["pdf"], "--out", tmp_path / "y.dcm", "--patient-id", "X9")
    assert code == 2
    assert "go together" in stderr


def test_cli_obj_with_mtl(docs: dict[str, Path], tmp_path: Path) -> None:
    code, stdout, _ = _invoke(
        "encapsulate", docs["obj"], "--mtl", docs["mtl"], "--out", tmp_path / "m.dcm", "--json"
    )
    assert code == 0
    assert [i["kind"] for i in json.loads(stdout)["instances"]] == ["obj", "mtl"]
