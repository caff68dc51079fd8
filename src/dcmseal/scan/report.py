"""What a scan finds: verdicts, findings, and the per-file and per-scan reports (plain data with ``to_json``)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FileReport", "Finding", "ScanReport", "Verdict", "worst"]


class Verdict(enum.StrEnum):
    """How bad a finding, a file or a scan is; ordered CLEAN < SUSPICIOUS < MALICIOUS."""

    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Verdict.CLEAN: 0, Verdict.SUSPICIOUS: 1, Verdict.MALICIOUS: 2}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The worst of ``verdicts`` (CLEAN when there are none)."""
    result = Verdict.CLEAN
    for verdict in verdicts:
        if _RANK[verdict] > _RANK[result]:
            result = verdict
    return result


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the scanner noticed, with a stable machine code; severity CLEAN marks a note."""

    code: (
        str  # e.g. "preamble.pe", "body.group-length-vr", "trailing-data", "pdf.javascript", "medium.autorun"
    )
    message: str  # one human line
    severity: Verdict
    offset: int | None = None  # byte offset in the file, when meaningful

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "severity": self.severity.value,
            "offset": self.offset,
        }


@dataclass(frozen=True, slots=True)
class FileReport:
    """The verdict on one file and why."""

    path: str  # as given, or relative to the medium's root
    verdict: Verdict  # the worst severity of the findings
    findings: tuple[Finding, ...]
    kind: str  # "dicom", "secure" (CMS envelope, not opened), "not-dicom"
    sop_instance_uid: str | None = None

    @classmethod
    def of(
        cls, path: str, kind: str, findings: Iterable[Finding], sop_instance_uid: str | None = None
    ) -> FileReport:
        """A report whose verdict is computed from its findings."""
        found = tuple(findings)
        return cls(path, worst(f.severity for f in found), found, kind, sop_instance_uid)

    def codes(self) -> tuple[str, ...]:
        """The finding codes, in order (handy for tests and summaries)."""
        return tuple(f.code for f in self.findings)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "verdict": self.verdict.value,
            "kind": self.kind,
            "sop_instance_uid": self.sop_instance_uid,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class ScanReport:
    """Every file scanned and what the media as a whole showed."""

    files: tuple[FileReport, ...]
    medium_findings: tuple[Finding, ...]  # autorun.inf, executables outside the File-set, unreferenced files
    verdict: Verdict  # the worst of everything

    @classmethod
    def of(cls, files: Iterable[FileReport], medium_findings: Iterable[Finding]) -> ScanReport:
        """A report whose verdict is computed from its parts."""
        file_list, medium = tuple(files), tuple(medium_findings)
        verdict = worst([*(f.verdict for f in file_list), *(f.severity for f in medium)])
        return cls(file_list, medium, verdict)

    def count(self, verdict: Verdict) -> int:
        """How many files got ``verdict``."""
        return sum(1 for f in self.files if f.verdict is verdict)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": "dcmseal.scan/1",
            "verdict": self.verdict.value,
            "summary": {
                "files": len(self.files),
                **{v.value: self.count(v) for v in Verdict},
                "secure_not_opened": sum(1 for f in self.files if f.kind == "secure"),
                "medium_findings": len(self.medium_findings),
            },
            "files": [f.to_json() for f in self.files],
            "medium_findings": [f.to_json() for f in self.medium_findings],
        }
