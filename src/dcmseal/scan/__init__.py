"""Threat scanning of DICOM files and media: preamble and body classifiers, medium checks, sanitizer, quarantine."""

from __future__ import annotations

from dcmseal.reader.containers import is_quarantine_dir
from dcmseal.scan.medium import scan_medium_layout
from dcmseal.scan.quarantine import QuarantineRecord, quarantine_file
from dcmseal.scan.report import FileReport, Finding, ScanReport, Verdict, worst
from dcmseal.scan.sanitize import SanitizeResult, sanitize_file
from dcmseal.scan.scanner import scan_bytes, scan_file
from dcmseal.scan.tree import scan_paths

__all__ = [
    "FileReport",
    "Finding",
    "QuarantineRecord",
    "SanitizeResult",
    "ScanReport",
    "Verdict",
    "is_quarantine_dir",
    "quarantine_file",
    "sanitize_file",
    "scan_bytes",
    "scan_file",
    "scan_medium_layout",
    "scan_paths",
    "worst",
]
