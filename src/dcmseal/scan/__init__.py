"""Threat scanning of DICOM files and media: preamble and body classifiers, medium checks, sanitizer, quarantine."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dcmseal.reader.containers import is_quarantine_dir
from dcmseal.scan.medium import scan_medium_layout
from dcmseal.scan.quarantine import QuarantineRecord, quarantine_file
from dcmseal.scan.report import FileReport, Finding, ScanReport, Verdict, worst
from dcmseal.scan.sanitize import SanitizeResult, sanitize_file
from dcmseal.scan.scanner import scan_bytes, scan_file
from dcmseal.scan.tree import scan_paths
from dcmseal.scan.workflow import (
    SanitizeReport,
    SanitizeRequest,
    ScanRequest,
    ScanResult,
    sanitize,
    scan,
)

if TYPE_CHECKING:
    from dcmseal.audit import AuditSink
    from dcmseal.events import HandlerSpec

__all__ = [
    "FileReport",
    "Finding",
    "QuarantineRecord",
    "SanitizeReport",
    "SanitizeRequest",
    "SanitizeResult",
    "ScanReport",
    "ScanRequest",
    "ScanResult",
    "Verdict",
    "is_quarantine_dir",
    "quarantine_file",
    "sanitize",
    "sanitize_file",
    "scan",
    "scan_bytes",
    "scan_file",
    "scan_medium_layout",
    "scan_paths",
    "worst",
]


class _ScanPackage(types.ModuleType):
    """This package, callable as the scan workflow: ``dcmseal.scan(request, audit=sink)``.

    ``dcmseal`` exports the workflow :func:`scan` under the name this package has, and Python binds an
    imported subpackage as an attribute of its parent: once anything imported ``dcmseal.scan.*``,
    ``dcmseal.scan`` is this module, not the function. Calling the module runs the function, so the name
    works whichever of the two a caller gets.
    """

    def __call__(
        self, request: ScanRequest, *, audit: AuditSink, handlers: Sequence[HandlerSpec] = ()
    ) -> ScanResult:
        return scan(request, audit=audit, handlers=handlers)


sys.modules[__name__].__class__ = _ScanPackage
