"""How the Import and Export audit messages name a medium and its patients, and the Import of a medium not read in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from dcmseal.audit.alerts import security_alert
from dcmseal.audit.codes import ALERT_TYPE_MEDIUM_REJECTED, EventOutcome, MediaType
from dcmseal.audit.participants import AuditUser, PatientRef
from dcmseal.audit.sinks import AuditSink
from dcmseal.audit.transfer import import_event
from dcmseal.errors import (
    DcmsealError,
    HostileMediumError,
    MalformedEnvelopeError,
    ResourceLimitError,
    UnprotectedContentError,
)
from dcmseal.reader.iso import is_iso_image, iso_volume
from dcmseal.uids import is_invented_patient_id

__all__ = ["audit_medium", "audit_patients", "audit_unopened"]

logger = logging.getLogger(__name__)


def audit_patients(patient_ids: Iterable[str]) -> list[PatientRef]:
    """The patients an Export or Import audit message names, each once, in first-seen order.

    Data without a Patient ID, and a Patient ID dcmseal invented for a DICOMDIR record, are an unidentified
    patient (an empty ParticipantObjectID): an invented value is not the patient's identifier. With no
    patient at all, one unidentified patient stands for the data (the A.5.3 tables require 1..N).
    """
    patients: dict[str, PatientRef] = {}
    for patient_id in patient_ids:
        known = patient_id.strip() if not is_invented_patient_id(patient_id) else ""
        patients.setdefault(known, PatientRef(patient_id=known) if known else PatientRef.unidentified())
    return list(patients.values()) or [PatientRef.unidentified()]


def audit_medium(medium: Path, fileset_id: str = "") -> tuple[str, MediaType]:
    """The UserID and the CID 405 MediaType an Import message gives the medium at ``medium``.

    An image is named by its Volume Identifier (dcmseal's agrees with the File-set ID, PS3.12 F.1.1) and is a
    DVD when it carries a UDF bridge (the DVD profiles, PS3.12 Annex P), else a CD; a folder (a USB stick or a
    copy of a medium) is named by its File-set ID. Only a medium that has neither is named by its file name.
    """
    if is_iso_image(medium):
        volume_id, udf = iso_volume(medium)
        return volume_id or fileset_id or medium.name, MediaType.DVD if udf else MediaType.CD
    return fileset_id or medium.name or str(medium), MediaType.USB_DISK_EMULATION


# Failures that say the medium itself is not to be trusted (a wrong key and altered content are one
# DecryptionError, so they are not among them): a Security Alert too.
_REJECTING = (UnprotectedContentError, MalformedEnvelopeError, ResourceLimitError, HostileMediumError)


def audit_unopened(
    audit: AuditSink, *, medium: Path, operator: str, error: DcmsealError, now: Callable[[], datetime]
) -> None:
    """Audit a medium that could not be read in: an Import that failed (PS3.15 A.5.3.5), and a Security
    Alert (A.5.3.11) when the medium was refused for a security reason. A failing sink is logged, never
    raised over ``error``."""
    medium_id, media_type = audit_medium(medium)
    user = AuditUser(user_id=operator)
    events = [
        import_event(
            user=user,
            medium_id=medium_id,
            media_type=media_type,
            patients=audit_patients(()),
            outcome=EventOutcome.SERIOUS_FAILURE,
            description=f"the medium could not be read in: {error.message}",
            now=now,
        )
    ]
    if isinstance(error, _REJECTING):
        events.append(
            security_alert(
                user=user,
                description=f"medium rejected: {error.message}",
                alert_type=ALERT_TYPE_MEDIUM_REJECTED,
                medium_id=medium_id,
                outcome=EventOutcome.MINOR_FAILURE,  # mitigated: nothing of it was read in
                now=now,
            )
        )
    for event in events:
        try:
            audit.emit(event)
        except DcmsealError as audit_exc:
            logger.error("audit: %s", audit_exc)
