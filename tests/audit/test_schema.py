"""The A.5.1 schema kept in the repository, and every kind of message dcmseal builds validated against it."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dcmseal.audit import (
    ALERT_TYPE_SECURITY_CONFIGURATION,
    EventOutcome,
    MediaType,
    PatientRef,
    StudyRef,
    to_xml,
    validate_message,
)
from tests.audit.events import BUILDERS, make_alert, make_export, make_import
from tests.audit.schema import SCHEMA_DIR, schema_errors

REPO = SCHEMA_DIR.parents[3]


def test_the_compact_schema_is_the_published_text() -> None:
    # The SHA-256 the README records for the A.5.1.1 text (the same from 2017c to 2023b).
    digest = hashlib.sha256((SCHEMA_DIR / "audit-message.rnc").read_bytes()).hexdigest()
    assert digest in (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    assert digest == "6f3576837485e64dac1cd0296b768ba7d6e0b89250df67720c1862fea3b8b633"


def test_the_xml_schema_is_the_conversion_of_the_compact_one() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "audit_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_every_kind_of_message_validates(kind: str) -> None:
    xml = to_xml(BUILDERS[kind]())
    assert schema_errors(xml) == []
    assert validate_message(xml) == []


@pytest.mark.parametrize(
    "event",
    [
        make_export(patients=[PatientRef.unidentified()], studies=[], medium_label=None),
        make_export(outcome=EventOutcome.SERIOUS_FAILURE, description="the burn failed", encrypted=None),
        make_import(media_type=MediaType.DVD, senders=[]),
        make_import(studies=[StudyRef.from_counts("1.2.3", {"1.2.840.10008.5.1.4.1.1.2": 1})]),
        make_alert(medium_id=None, details=None, patients=[]),
        make_alert(alert_type=ALERT_TYPE_SECURITY_CONFIGURATION, details=None, outcome=EventOutcome.SUCCESS),
        make_alert(outcome=EventOutcome.SERIOUS_FAILURE, medium_label="DCMS0123456789AB"),
    ],
    ids=[
        "unidentified",
        "failed-export",
        "dvd-import",
        "study-import",
        "bare-alert",
        "config-alert",
        "failed",
    ],
)
def test_variants_validate(event: object) -> None:
    from dcmseal.audit import AuditEvent

    assert isinstance(event, AuditEvent)
    xml = to_xml(event)
    assert schema_errors(xml) == []
    assert validate_message(xml) == []


def test_the_schema_refuses_an_object_without_name_or_query() -> None:
    # What every message failed before: the choice of ParticipantObjectName and ParticipantObjectQuery is
    # required by the schema, so the check can fail.
    xml = re.sub(
        rb"<ParticipantObjectName ?/>|<ParticipantObjectName>[^<]*</ParticipantObjectName>",
        b"",
        to_xml(make_export()),
    )
    assert b"ParticipantObjectName" not in xml
    assert schema_errors(xml)
    problems = validate_message(xml)
    assert any("exactly one of them" in p for p in problems)


def test_validate_message_reports_what_only_the_schema_sees() -> None:
    # An AuditSourceTypeCode with other attributes but no originalText passes the readable checks; the schema
    # (other-csd-attributes requires originalText with codeSystemName) does not let it through.
    xml = to_xml(make_export()).replace(
        b'<AuditSourceIdentification AuditSourceID="ws-radiology-1" />',
        b'<AuditSourceIdentification AuditSourceID="ws-radiology-1">'
        b'<AuditSourceTypeCode csd-code="4" codeSystemName="DCM" /></AuditSourceIdentification>',
    )
    assert b"AuditSourceTypeCode" in xml
    problems = validate_message(xml)
    assert problems
    assert all("PS3.15 A.5.1 schema" in p for p in problems)


def test_the_schema_file_is_shipped_with_the_package() -> None:
    from importlib import resources

    assert resources.files("dcmseal.audit").joinpath("schema", "audit-message.rng").is_file()
    assert Path(str(resources.files("dcmseal.audit"))).name == "audit"
