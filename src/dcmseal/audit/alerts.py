"""The Security Alert audit message (PS3.15 A.5.3.11)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from dcmseal.audit.codes import (
    ALERT_DESCRIPTION,
    ALERT_TYPE_USE_OF_RESTRICTED_FUNCTION,
    ID_TYPE_MEDIUM_ID,
    AuditEventKind,
    CodedValue,
    EventOutcome,
    ParticipantObjectRole,
    ParticipantObjectType,
)
from dcmseal.audit.messages import AuditEvent, AuditSource, ParticipantObject, ParticipantObjectDetail
from dcmseal.audit.participants import (
    AuditUser,
    PatientRef,
    default_audit_source,
    patient_objects,
    requestor_participants,
    utc_now,
)

__all__ = [
    "security_alert",
]


def security_alert(
    *,
    user: AuditUser,
    description: str,
    alert_type: CodedValue = ALERT_TYPE_USE_OF_RESTRICTED_FUNCTION,
    medium_id: str | None = None,
    medium_label: str | None = None,
    subject_id_type: CodedValue = ID_TYPE_MEDIUM_ID,
    details: Mapping[str, str] | None = None,
    patients: Iterable[PatientRef] = (),
    outcome: EventOutcome = EventOutcome.SUCCESS,
    application: str | None = "dcmseal",
    audit_source: AuditSource | None = None,
    now: Callable[[], datetime] = utc_now,
) -> AuditEvent:
    """Build a Security Alert, e.g. an escrow key used to recover a medium password (PS3.15 A.5.3.11).

    Parameters
    ----------
    user
        The person who caused the alert (the requestor), reported with the local process.
    description
        Free text on the nature of the alert: the ``Alert Description`` detail of the medium when there
        is one (required there by Table A.5.3.11-1), else the EventOutcomeDescription.
    alert_type
        The EventTypeCode (CID 403); the default, (110132, DCM, "Use of Restricted Function"), fits
        escrow recovery.
    medium_id, medium_label
        The Alert Subject: the medium, a security resource identified by :data:`ID_TYPE_MEDIUM_ID`.
    subject_id_type
        The ParticipantObjectIDTypeCode of the Alert Subject when it is not a medium, e.g.
        :data:`ID_TYPE_CERTIFICATE_FINGERPRINT` for a key pair.
    details
        More ParticipantObjectDetail text pairs of the medium, e.g. ``{"Recovery Reason": "..."}``.
    patients
        Patients concerned, if known.
    outcome
        0 for an informative alert; 4 and 8 say mitigation worked; 12 that security may be compromised.
    application, audit_source, now
        As for :func:`export_event`.

    Returns
    -------
    AuditEvent

    Raises
    ------
    ValueError
        ``details`` without a medium, or ``now`` returned a naive datetime.
    """
    if details and medium_id is None:
        raise ValueError("details describe the medium (the Alert Subject); give medium_id")
    participants = requestor_participants(user, application, roles=())
    objects: list[ParticipantObject] = []
    if medium_id is not None:
        pairs = [ParticipantObjectDetail.from_text(ALERT_DESCRIPTION, description)]
        pairs.extend(ParticipantObjectDetail.from_text(k, v) for k, v in (details or {}).items())
        objects.append(
            ParticipantObject(
                object_id=medium_id,
                id_type_code=subject_id_type,
                type_code=ParticipantObjectType.SYSTEM_OBJECT,
                type_code_role=ParticipantObjectRole.SECURITY_RESOURCE,
                name=medium_label or medium_id,
                details=tuple(pairs),
            )
        )
    patient_list = tuple(patients)
    if patient_list:
        objects.extend(patient_objects(patient_list))
    return AuditEvent(
        kind=AuditEventKind.SECURITY_ALERT,
        event_datetime=now(),
        outcome=outcome,
        outcome_description=None if medium_id is not None else description,
        event_type_codes=(alert_type,),
        active_participants=tuple(participants),
        audit_source=audit_source or default_audit_source(),
        participant_objects=tuple(objects),
    )
