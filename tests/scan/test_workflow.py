"""The scan and sanitize workflows audit and report by themselves: a program gets what ``dcmseal scan`` gets."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import dcmseal
from dcmseal.audit import AuditEvent, FileSink, validate_message
from dcmseal.errors import ExitCode, InputError
from dcmseal.events import Event, FileQuarantined, Progress
from dcmseal.scan import SanitizeRequest, ScanRequest, Verdict, sanitize, scan
from tests.scan.corpus import PE_HEADER, part10


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
        SanitizeRequest(paths=(hostile,), out=tmp_path / "safe", quarantine=tmp_path / "quarantine"),
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
        SanitizeRequest(paths=(tmp_path,), out=tmp_path / "safe", quarantine=tmp_path / "safe")
