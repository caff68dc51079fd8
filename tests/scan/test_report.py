"""Verdict order, report construction and the JSON shape the CLI and the importer rely on."""

from __future__ import annotations

from dcmseal.scan import FileReport, Finding, ScanReport, Verdict, worst


def test_worst() -> None:
    assert worst([]) is Verdict.CLEAN
    assert worst([Verdict.SUSPICIOUS, Verdict.CLEAN]) is Verdict.SUSPICIOUS
    assert worst([Verdict.SUSPICIOUS, Verdict.MALICIOUS, Verdict.CLEAN]) is Verdict.MALICIOUS


def test_reports_compute_their_verdicts() -> None:
    note = Finding("preamble.tiff", "TIFF", Verdict.CLEAN, 0)
    bad = Finding(code="preamble.pe", message="PE", severity=Verdict.MALICIOUS, offset=0)
    clean = FileReport.of("a", "dicom", [note], "1.2.3")
    evil = FileReport.of("b", "dicom", [bad])
    assert clean.verdict is Verdict.CLEAN
    assert evil.verdict is Verdict.MALICIOUS
    medium = Finding("medium.autorun", "autorun.inf", Verdict.SUSPICIOUS)
    report = ScanReport.of([clean, evil], [medium])
    assert report.verdict is Verdict.MALICIOUS
    document = report.to_json()
    assert document["schema"] == "dcmseal.scan/1"
    assert document["summary"] == {
        "files": 2, "clean": 1, "suspicious": 0, "malicious": 1, "secure_not_opened": 0, "medium_findings": 1,
    }  # fmt: skip
    assert document["files"] == [clean.to_json(), evil.to_json()]
    assert clean.to_json() == {
        "path": "a",
        "verdict": "clean",
        "kind": "dicom",
        "sop_instance_uid": "1.2.3",
        "findings": [{"code": "preamble.tiff", "message": "TIFF", "severity": "clean", "offset": 0}],
    }
