"""Audit events of every kind, built with a fixed clock, for the tests of dcmseal.audit."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from dcmseal.audit import (
    AuditEvent,
    AuditSource,
    AuditUser,
    EventActionCode,
    EventOutcome,
    MediaType,
    PatientRef,
    StudyRef,
    export_event,
    import_event,
    instances_accessed,
    security_alert,
)

#: 07:08:09.123 at UTC+2, i.e. 05:08:09.123Z.
FIXED_TIME = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=timezone(timedelta(hours=2)))
FIXED_TIME_XS = "2024-05-06T05:08:09.123Z"
PATIENT_NAME = "Smithwick^Annabel^Q"
PATIENT_ID = "PID-804711"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MEDIUM_ID = "MED-2024-000042"
MEDIUM_LABEL = "DCMSEAL_042"
SOURCE = AuditSource(audit_source_id="ws-radiology-1")


def fixed_now() -> datetime:
    return FIXED_TIME


def make_export(**overrides: Any) -> AuditEvent:
    arguments: dict[str, Any] = {
        "user": AuditUser(user_id="alice@hospital.example", user_name="Alice Adams"),
        "medium_id": MEDIUM_ID,
        "media_type": MediaType.DVD,
        "medium_label": MEDIUM_LABEL,
        "patients": [PatientRef(patient_id=PATIENT_ID, name=PATIENT_NAME)],
        "studies": [StudyRef.from_counts(STUDY_UID, {CT_IMAGE_STORAGE: 120, SECONDARY_CAPTURE: 2})],
        "encrypted": True,
        "audit_source": SOURCE,
        "now": fixed_now,
    }
    return export_event(**(arguments | overrides))


def make_import(**overrides: Any) -> AuditEvent:
    arguments: dict[str, Any] = {
        "user": AuditUser(user_id="bob@hospital.example"),
        "medium_id": MEDIUM_ID,
        "media_type": MediaType.USB_DISK_EMULATION,
        "patients": [PatientRef(patient_id=PATIENT_ID, name=PATIENT_NAME)],
        "studies": [StudyRef.from_counts(STUDY_UID, {CT_IMAGE_STORAGE: 120})],
        "outcome": EventOutcome.MINOR_FAILURE,
        "description": "2 instances quarantined",
        "audit_source": SOURCE,
        "now": fixed_now,
    }
    return import_event(**(arguments | overrides))


def make_alert(**overrides: Any) -> AuditEvent:
    arguments: dict[str, Any] = {
        "user": AuditUser(user_id="carol@hospital.example"),
        "description": "escrow key used to recover the medium password",
        "medium_id": MEDIUM_ID,
        "details": {"Recovery Reason": "recipient lost the password; emergency department"},
        "patients": [PatientRef(patient_id=PATIENT_ID, name=PATIENT_NAME)],
        "audit_source": SOURCE,
        "now": fixed_now,
    }
    return security_alert(**(arguments | overrides))


def make_accessed(**overrides: Any) -> AuditEvent:
    arguments: dict[str, Any] = {
        "user": AuditUser(user_id="dave@hospital.example"),
        "action": EventActionCode.CREATE,
        "patient": PatientRef(patient_id=PATIENT_ID, name=PATIENT_NAME),
        "studies": [StudyRef.from_counts(STUDY_UID, {"1.2.840.10008.5.1.4.1.1.104.1": 1})],
        "audit_source": SOURCE,
        "now": fixed_now,
    }
    return instances_accessed(**(arguments | overrides))


BUILDERS: dict[str, Callable[..., AuditEvent]] = {
    "instances-accessed": make_accessed,
    "export": make_export,
    "import": make_import,
    "security-alert": make_alert,
}


def parse_xml(xml: bytes) -> ET.Element:
    """Parse XML that dcmseal wrote (no DTD, no entities): the stdlib parser is enough here."""
    return ET.fromstring(xml)  # noqa: S314 - our own output, not untrusted input
