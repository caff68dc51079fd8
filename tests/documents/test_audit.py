"""encapsulate and extract audit themselves (PS3.15 A.5.3.2, DICOM Instances Accessed), called as library
functions or through the command line, and a failing sink loses the record, never the document."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from typer.testing import CliRunner

from dcmseal.audit import AuditEvent, FileSink, validate_message
from dcmseal.cli.main import app
from dcmseal.documents import PatientInfo, encapsulate, extract
from dcmseal.errors import InputError
from tests.audit.events import parse_xml
from tests.audit.schema import schema_errors

OPERATOR = "library-user@hospital.example"


class _BrokenSink:
    """An audit sink whose disk is full."""

    def emit(self, event: AuditEvent) -> None:
        raise InputError("cannot append to the audit log: No space left on device", path=Path("audit.log"))


def _summary(line: bytes) -> dict[str, object]:
    """What an Instances Accessed message says, without its clock, host and process."""
    assert schema_errors(line) == []  # the A.5.1 RELAX NG schema
    assert validate_message(line) == []  # and Table A.5.3.2-1
    root = parse_xml(line)
    identification = root.find("EventIdentification")
    assert identification is not None
    event_id = identification.find("EventID")
    assert event_id is not None
    requestors = [
        p.get("UserID") for p in root.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true"
    ]
    sop_classes = sorted((c.get("UID"), c.get("NumberOfInstances")) for c in root.iter("SOPClass"))
    return {
        "event": event_id.get("csd-code"),
        "action": identification.get("EventActionCode"),
        "outcome": identification.get("EventOutcomeIndicator"),
        "requestors": requestors,
        "objects": [o.get("ParticipantObjectID") for o in root.findall("ParticipantObjectIdentification")],
        "sop_classes": sop_classes,
    }


def _expected(
    action: str, study: str, sop_classes: list[tuple[str, str]], operator: str
) -> dict[str, object]:
    return {
        "event": "110103",
        "action": action,
        "outcome": "0",
        "requestors": [operator],
        "objects": [study, "P001"],
        "sop_classes": sop_classes,
    }


def test_encapsulate_and_extract_audit_to_the_sink_they_are_given(
    docs: dict[str, Path], patient: PatientInfo, tmp_path: Path
) -> None:
    log = tmp_path / "audit.log"
    made = encapsulate(
        docs["obj"], tmp_path / "model.dcm", patient=patient, mtl_for_obj=docs["mtl"],
        audit=FileSink(log), operator=OPERATOR,
    )  # fmt: skip
    assert made.audit_error is None
    obj, mtl = made.instances
    # One message: both instances are the one patient's (A.5.3.2), created (C), counted per SOP Class.
    (created,) = log.read_bytes().splitlines()
    pairs = sorted([(obj.sop_class_uid, "1"), (mtl.sop_class_uid, "1")])
    assert _summary(created) == _expected("C", made.study_instance_uid, pairs, OPERATOR)
    back = extract(obj.path, tmp_path / "back", audit=FileSink(log), operator=OPERATOR)
    assert back.audit_error is None
    read = log.read_bytes().splitlines()[1]
    assert _summary(read) == _expected("R", made.study_instance_uid, [(obj.sop_class_uid, "1")], OPERATOR)


def test_a_broken_sink_loses_the_record_not_the_document(
    docs: dict[str, Path], patient: PatientInfo, tmp_path: Path
) -> None:
    made = encapsulate(
        docs["pdf"], tmp_path / "pdf.dcm", patient=patient, audit=_BrokenSink(), operator=OPERATOR
    )
    assert made.audit_error is not None
    assert "No space left on device" in made.audit_error
    assert dcmread(made.primary.path).PatientID == "P001"
    back = extract(made.primary.path, tmp_path / "back", audit=_BrokenSink(), operator=OPERATOR)
    assert back.audit_error is not None
    assert back.path.read_bytes() == docs["pdf"].read_bytes()


def test_a_refused_document_is_not_audited(
    docs: dict[str, Path], patient: PatientInfo, tmp_path: Path
) -> None:
    log = tmp_path / "audit.log"
    with pytest.raises(InputError):
        encapsulate(
            docs["pdf"], tmp_path / "x.dcm", patient=patient, max_bytes=1, audit=FileSink(log), operator="u"
        )
    assert not log.exists()


def test_the_commands_write_what_the_library_writes(
    docs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setenv("DCMSEAL_OPERATOR", "cli-user")
    out = tmp_path / "out" / "report.dcm"
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "encapsulate",
            str(docs["pdf"]),
            "--out",
            str(out),
            "--patient-id",
            "P001",
            "--patient-name",
            "Doe^Jane",
        ],
        catch_exceptions=False,
    )
    assert done.exit_code == 0, done.stderr
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"junk")
    done = runner.invoke(
        app, ["extract", str(out), str(junk), "--out", str(tmp_path / "back")], catch_exceptions=False
    )
    assert done.exit_code == 1  # the junk file; the instance's document was extracted and audited
    created, read = (data_home / "dcmseal" / "audit.log").read_bytes().splitlines()
    ds = dcmread(out)
    pdf = [(str(ds.SOPClassUID), "1")]
    assert _summary(created) == _expected("C", str(ds.StudyInstanceUID), pdf, "cli-user")
    assert _summary(read) == _expected("R", str(ds.StudyInstanceUID), pdf, "cli-user")
    # The library, called with the same request, says the same.
    log = tmp_path / "library.log"
    again = extract(out, tmp_path / "again", audit=FileSink(log), operator="cli-user")
    assert _summary(log.read_bytes()) == _summary(read)
    assert again.path.read_bytes() == docs["pdf"].read_bytes()
