"""The escrow recovery workflow audits itself: a program calling dcmseal.recover gets the CLI's Security Alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import dcmseal
from dcmseal.audit import FileSink, validate_message
from dcmseal.errors import DecryptionError, InputError, UsageError
from dcmseal.keys.escrow import RecoverRequest, recover, seal_password_for_escrow
from dcmseal.keys.registry import MediumRecord, RecipientRecord, Registry, StudyRecord
from tests.keys.conftest import ESCROW_PASSPHRASE, Escrow

PASSWORD = "velvet-orbit-Kestrel-amber-lantern-7"
REASON = "the patient lost the cover letter"


@pytest.fixture
def registry(sqlite_url: str) -> Iterator[Registry]:
    with Registry.open(sqlite_url) as reg:
        yield reg


def _medium(registry: Registry, escrow: Escrow) -> str:
    medium_id = registry.new_medium_id()
    registry.record_medium(
        MediumRecord(
            medium_id=medium_id,
            file_set_uid="1.2.826.0.1.3680043.8.498.77",
            created_at=datetime(2026, 5, 20, 9, 30, tzinfo=UTC),
            operator="alice",
            station="burn-01",
            profile="STD-GEN-SEC-CD",
            format="iso",
            label="CT",
            file_count=1,
            total_bytes=1024,
            recipients=(RecipientRecord.for_password(), RecipientRecord.for_certificate(escrow.certificate)),
            studies=(
                StudyRecord(
                    study_instance_uid="1.2.826.0.1.3680043.8.498.78",
                    patient_id="PAT-1",
                    study_date=date(2026, 5, 19),
                    modalities=("CT",),
                    instance_count=1,
                ),
            ),
            escrowed_password=seal_password_for_escrow(PASSWORD.encode(), escrow.certificate),
            escrow_fingerprint=escrow.identity.fingerprint,
        )
    )
    return medium_id


def _request(escrow: Escrow, medium_id: str, passphrase: bytes = ESCROW_PASSPHRASE) -> RecoverRequest:
    return RecoverRequest(
        medium_id=medium_id,
        escrow_key=escrow.identity.key_path,
        passphrase=passphrase,
        reason=REASON,
        operator="helpdesk-7",
    )


def test_a_recovery_is_recorded_and_audited_by_the_library(
    tmp_path: Path, registry: Registry, escrow: Escrow
) -> None:
    medium_id = _medium(registry, escrow)
    log = tmp_path / "audit.log"
    # Typed in lower case, as a person may: the record and the audit trail name it as registered.
    result = dcmseal.recover(_request(escrow, medium_id.lower()), registry=registry, audit=FileSink(log))
    assert (result.medium_id, result.password) == (medium_id, PASSWORD)
    assert PASSWORD not in repr(result)
    [recovery] = registry.recoveries(medium_id)
    assert (recovery.operator, recovery.reason) == ("helpdesk-7", REASON)
    (alert,) = log.read_bytes().splitlines()
    assert validate_message(alert) == []
    assert b'csd-code="110113"' in alert  # Security Alert
    assert b'EventOutcomeIndicator="0"' in alert
    assert f'ParticipantObjectID="{medium_id}"'.encode() in alert
    assert PASSWORD.encode() not in alert


def test_a_failed_recovery_is_audited_too_and_reveals_nothing(
    tmp_path: Path, registry: Registry, escrow: Escrow
) -> None:
    medium_id = _medium(registry, escrow)
    log = tmp_path / "audit.log"
    with pytest.raises(DecryptionError, match="wrong passphrase for the escrow key"):
        recover(_request(escrow, medium_id, b"Not-the-escrow-pass"), registry=registry, audit=FileSink(log))
    with pytest.raises(InputError, match="no medium"):
        recover(_request(escrow, "MDXXXXXXXXXXXX"), registry=registry, audit=FileSink(log))
    assert registry.recoveries(medium_id) == []
    lines = log.read_bytes().splitlines()
    assert len(lines) == 2
    for alert in lines:
        assert validate_message(alert) == []
        assert b'EventOutcomeIndicator="8"' in alert
        assert PASSWORD.encode() not in alert


def test_a_recovery_needs_a_reason(escrow: Escrow) -> None:
    with pytest.raises(UsageError, match="must say why"):
        RecoverRequest(
            medium_id="X", escrow_key=escrow.identity.key_path, passphrase=b"x", reason=" ", operator="a"
        )


def test_a_str_passphrase_recovers_as_its_utf8_bytes(
    tmp_path: Path, registry: Registry, escrow: Escrow
) -> None:
    medium_id = _medium(registry, escrow)
    request = RecoverRequest(
        medium_id=medium_id,
        escrow_key=escrow.identity.key_path,
        passphrase=ESCROW_PASSPHRASE.decode("utf-8"),
        reason=REASON,
        operator="helpdesk-7",
    )
    assert request.passphrase == ESCROW_PASSPHRASE  # converted once, where the request is made
    assert ESCROW_PASSPHRASE.decode() not in repr(request)
    result = recover(request, registry=registry, audit=FileSink(tmp_path / "audit.log"))
    assert result.password == PASSWORD
