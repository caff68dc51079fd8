"""The scan and sanitize workflows audit and report by themselves: a program gets what ``dcmseal scan`` gets."""

from __future__ import annotations

import base64
import importlib
import sys
from pathlib import Path

import pytest

import dcmseal
from dcmseal.audit import AuditEvent, FileSink, NullSink, validate_message
from dcmseal.errors import ExitCode, InputError
from dcmseal.events import Event, FileQuarantined, Progress
from dcmseal.scan import SanitizeRequest, ScanRequest, Verdict, sanitize, scan
from tests.audit.events import parse_xml
from tests.audit.schema import schema_errors
from tests.scan.corpus import PE_HEADER, _dataset, part10


class _BrokenSink:
    """An audit sink whose disk is full."""

    def emit(self, event: AuditEvent) -> None:
        raise InputError("cannot append to the audit log: No space left on device", path=Path("audit.log"))


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    folder = tmp_path / "medium"
    folder.mkdir()
    (folder / "IM1").write_bytes(part10())
    (folder / "IM2").write_bytes(part10(preamble=PE_HEADER))
    return folder


def test_a_malicious_find_is_a_security_alert_from_the_library(tmp_path: Path, hostile: Path) -> None:
    log = tmp_path / "audit.log"
    result = scan(ScanRequest(paths=(hostile,), operator="library-user"), audit=FileSink(log))
    assert result.verdict is Verdict.MALICIOUS
    assert result.exit_code is ExitCode.FINDINGS
    assert result.alerted
    (line,) = log.read_bytes().splitlines()
    assert validate_message(line) == []  # the A.5.1 schema, RELAX NG included
    assert b'csd-code="110113"' in line  # Security Alert
    assert b'UserID="library-user"' in line
    assert b'EventOutcomeIndicator="4"' in line


def test_a_clean_scan_audits_nothing(tmp_path: Path) -> None:
    clean = tmp_path / "clean.dcm"
    clean.write_bytes(part10())
    log = tmp_path / "audit.log"
    result = scan(ScanRequest(paths=(clean,), operator="library-user"), audit=FileSink(log))
    assert result.exit_code is ExitCode.OK
    assert not result.alerted
    assert not log.exists()


def test_a_broken_sink_loses_the_record_not_the_findings(hostile: Path) -> None:
    result = scan(ScanRequest(paths=(hostile,), operator="library-user"), audit=_BrokenSink())
    assert result.verdict is Verdict.MALICIOUS
    assert not result.alerted
    assert result.audit_error is not None
    assert "No space left on device" in result.audit_error


def test_dcmseal_scan_is_the_workflow_whether_or_not_the_package_was_imported(
    tmp_path: Path, hostile: Path
) -> None:
    # Any import of the package binds it as dcmseal.scan, over the function dcmseal.__getattr__ gives.
    tree = importlib.import_module("dcmseal.scan.tree")
    events: list[Event] = []
    result = dcmseal.scan(
        dcmseal.ScanRequest(paths=(hostile,), operator="library-user"),
        audit=FileSink(tmp_path / "audit.log"),
        handlers=[(Event, events.append)],
    )
    assert result.verdict is Verdict.MALICIOUS
    assert any(isinstance(e, Progress) and e.stage == "scan" for e in events)
    package = sys.modules["dcmseal.scan"]
    assert getattr(dcmseal, "scan") is package  # noqa: B009 - the package, callable (typed as the function)
    assert package.scan_paths is tree.scan_paths


def test_sanitize_copies_what_it_can_and_quarantines_the_rest(tmp_path: Path, hostile: Path) -> None:
    (hostile / "AUTORUN.INF").write_bytes(
        b"[autorun]\r\nopen=setup.exe\r\n"
    )  # not DICOM: cannot be made safe
    events: list[Event] = []
    report = sanitize(
        SanitizeRequest(
            paths=(hostile,),
            out=tmp_path / "safe",
            operator="library-user",
            quarantine=tmp_path / "quarantine",
        ),
        audit=NullSink(),
        handlers=[(Event, events.append)],
    )
    statuses = {Path(r.source).name: r.status for r in report.files}
    assert statuses == {"AUTORUN.INF": "refused", "IM1": "copied", "IM2": "sanitized"}
    assert report.exit_code is ExitCode.FINDINGS
    (record,) = report.quarantined
    assert record.source == "AUTORUN.INF"
    assert [e.path.name for e in events if isinstance(e, FileQuarantined)] == ["AUTORUN.INF"]
    assert [e.done for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert report.to_json()["summary"] == {
        "files": 3,
        "sanitized": 1,
        "copied": 1,
        "refused": 1,
        "quarantined": 1,
    }


def test_the_quarantine_is_never_the_output(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--quarantine must not be the --out folder"):
        SanitizeRequest(
            paths=(tmp_path,), out=tmp_path / "safe", operator="library-user", quarantine=tmp_path / "safe"
        )


def _identification(line: bytes) -> tuple[str, str, str]:
    """EventID code, EventActionCode and EventOutcomeIndicator of one audit line."""
    root = parse_xml(line)
    identification = root.find("EventIdentification")
    assert identification is not None
    event_id = identification.find("EventID")
    assert event_id is not None
    return (
        event_id.get("csd-code", ""),
        identification.get("EventActionCode", ""),
        identification.get("EventOutcomeIndicator", ""),
    )


def _object_ids(line: bytes) -> list[str]:
    return [
        o.get("ParticipantObjectID", "") for o in parse_xml(line).findall("ParticipantObjectIdentification")
    ]


def test_sanitize_audits_its_copies_per_patient_and_alerts_on_malicious_input(tmp_path: Path) -> None:
    folder = tmp_path / "medium"
    folder.mkdir()
    study = "1.2.826.0.1.3680043.8.498.77"
    (folder / "IM1").write_bytes(part10(dataset=_dataset(StudyInstanceUID=study)))
    (folder / "IM2").write_bytes(part10(dataset=_dataset(StudyInstanceUID=study), preamble=PE_HEADER))
    (folder / "AUTORUN.INF").write_bytes(b"[autorun]\r\nopen=setup.exe\r\n")
    log = tmp_path / "audit.log"
    report = sanitize(
        SanitizeRequest(paths=(folder,), out=tmp_path / "safe", operator="library-user"), audit=FileSink(log)
    )
    assert {Path(r.source).name: r.status for r in report.files} == {
        "AUTORUN.INF": "refused",
        "IM1": "copied",
        "IM2": "sanitized",
    }
    assert report.audit_error is None
    lines = log.read_bytes().splitlines()
    for line in lines:
        assert schema_errors(line) == []  # the A.5.1 RELAX NG schema
        assert validate_message(line) == []  # and the A.5.3 tables
        assert b'UserID="library-user"' in line
    # DICOM Instances Accessed (A.5.3.2): the changed copy an Update, the unchanged one a Read; then the alert.
    assert [_identification(line) for line in lines] == [
        ("110103", "U", "0"),
        ("110103", "R", "0"),
        ("110113", "E", "4"),
    ]
    assert _object_ids(lines[0]) == [study, "SCAN-0001"]
    assert _object_ids(lines[1]) == [study, "SCAN-0001"]
    (subject,) = parse_xml(lines[2]).findall("ParticipantObjectIdentification")
    details = {d.get("type"): base64.b64decode(d.get("value", "")) for d in subject}
    assert b"dcmseal sanitize: malicious content in 1 item(s)" in details["Alert Description"]
    assert b"IM2" in details["Alert Description"]  # the malicious input, named


def test_a_clean_sanitize_audits_only_its_reads_and_a_broken_sink_keeps_the_copies(tmp_path: Path) -> None:
    clean = tmp_path / "clean.dcm"
    clean.write_bytes(part10())  # no Study Instance UID: the patient is named, no study is invented
    log = tmp_path / "audit.log"
    request = SanitizeRequest(paths=(clean,), out=tmp_path / "safe", operator="library-user")
    sanitize(request, audit=FileSink(log))
    (line,) = log.read_bytes().splitlines()
    assert _identification(line) == ("110103", "R", "0")
    assert _object_ids(line) == ["SCAN-0001"]
    assert schema_errors(line) == []
    report = sanitize(
        SanitizeRequest(paths=(clean,), out=tmp_path / "again", operator="library-user"), audit=_BrokenSink()
    )
    assert report.audit_error is not None
    assert "No space left on device" in report.audit_error
    assert (tmp_path / "again" / "clean.dcm").is_file()
