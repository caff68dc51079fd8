"""The Export and Import audit messages (PS3.15 A.5.3.6, A.5.3.7): a medium written, a medium read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from dcmseal.audit.codes import (
    ROLE_DESTINATION,
    ROLE_DESTINATION_MEDIA,
    ROLE_SOURCE,
    ROLE_SOURCE_MEDIA,
    AuditEventKind,
    EventOutcome,
    MediaType,
)
from dcmseal.audit.messages import AuditEvent, AuditSource
from dcmseal.audit.participants import (
    AuditUser,
    PatientRef,
    StudyRef,
    default_audit_source,
    medium_participant,
    patient_objects,
    person_participant,
    requestor_participants,
    study_objects,
    utc_now,
)

__all__ = [
    "export_event",
    "import_event",
]


def export_event(
    *,
    user: AuditUser,
    medium_id: str,
    media_type: MediaType,
    patients: Iterable[PatientRef],
    studies: Iterable[StudyRef] = (),
    outcome: EventOutcome = EventOutcome.SUCCESS,
    description: str | None = None,
    medium_label: str | None = None,
    recipients: Iterable[AuditUser] = (),
    encrypted: bool | None = None,
    application: str | None = "dcmseal",
    audit_source: AuditSource | None = None,
    now: Callable[[], datetime] = utc_now,
) -> AuditEvent:
    """Build the Export event of writing a medium (PS3.15 A.5.3.4, Table A.5.3.4-1).

    Parameters
    ----------
    user
        The local person exporting the data; the one requestor (A.5.3.4.1), Source Role ID.
    medium_id, media_type, medium_label
        The Destination Media participant: UserID, ``MediaIdentifier/MediaType`` (CID 405) and
        AlternativeUserID (e.g. the volume label, A.5.2.2).
    patients
        The patients on the medium (1..N); names are optional.
    studies
        The studies on the medium, with instance counts per SOP Class.
    outcome, description
        EventOutcomeIndicator and EventOutcomeDescription.
    recipients
        Known remote people or processes receiving the medium (Destination Role ID).
    encrypted
        Written as ``Encrypted`` in each study's ParticipantObjectDescription when not ``None``.
    application
        The local process, added as a second exporting participant (A.5.3.4: "if both are known");
        ``None`` leaves it out.
    audit_source
        The AuditSourceIdentification; defaults to this host's name.
    now
        The clock of EventDateTime; must return an aware datetime.

    Returns
    -------
    AuditEvent

    Raises
    ------
    ValueError
        No patient, or ``now`` returned a naive datetime.
    """
    participants = requestor_participants(user, application, roles=(ROLE_SOURCE,))
    participants.extend(person_participant(r, requestor=False, roles=(ROLE_DESTINATION,)) for r in recipients)
    # The Destination Role ID next to Destination Media follows the example of PS3.17 WW.3.
    participants.append(
        medium_participant(
            medium_id, media_type, medium_label, roles=(ROLE_DESTINATION, ROLE_DESTINATION_MEDIA)
        )
    )
    return AuditEvent(
        kind=AuditEventKind.EXPORT,
        event_datetime=now(),
        outcome=outcome,
        outcome_description=description,
        active_participants=tuple(participants),
        audit_source=audit_source or default_audit_source(),
        participant_objects=study_objects(studies, encrypted=encrypted) + patient_objects(patients),
    )


def import_event(
    *,
    user: AuditUser,
    medium_id: str,
    media_type: MediaType,
    patients: Iterable[PatientRef],
    studies: Iterable[StudyRef] = (),
    outcome: EventOutcome = EventOutcome.SUCCESS,
    description: str | None = None,
    medium_label: str | None = None,
    senders: Iterable[AuditUser] = (),
    encrypted: bool | None = None,
    application: str | None = "dcmseal",
    audit_source: AuditSource | None = None,
    now: Callable[[], datetime] = utc_now,
) -> AuditEvent:
    """Build the Import event of reading a medium into the organization (PS3.15 A.5.3.5, Table A.5.3.5-1).

    Parameters
    ----------
    user
        The local person importing the data; the one requestor (A.5.3.5), Destination Role ID.
    medium_id, media_type, medium_label
        The Source Media participant: UserID, ``MediaIdentifier/MediaType`` (CID 405) and
        AlternativeUserID.
    patients
        The patients imported (1..N); names are optional.
    studies
        The studies imported, with instance counts per SOP Class.
    outcome, description
        EventOutcomeIndicator and EventOutcomeDescription.
    senders
        Known people or processes that sent the medium (Source Role ID).
    encrypted
        Written as ``Encrypted`` in each study's ParticipantObjectDescription when not ``None``.
    application
        The local process, added as a second importing participant; ``None`` leaves it out.
    audit_source
        The AuditSourceIdentification; defaults to this host's name.
    now
        The clock of EventDateTime; must return an aware datetime.

    Returns
    -------
    AuditEvent

    Raises
    ------
    ValueError
        No patient, or ``now`` returned a naive datetime.
    """
    participants = requestor_participants(user, application, roles=(ROLE_DESTINATION,))
    # The Source Role ID next to Source Media follows the example of PS3.17 WW.6.
    participants.append(
        medium_participant(medium_id, media_type, medium_label, roles=(ROLE_SOURCE, ROLE_SOURCE_MEDIA))
    )
    participants.extend(person_participant(s, requestor=False, roles=(ROLE_SOURCE,)) for s in senders)
    return AuditEvent(
        kind=AuditEventKind.IMPORT,
        event_datetime=now(),
        outcome=outcome,
        outcome_description=description,
        active_participants=tuple(participants),
        audit_source=audit_source or default_audit_source(),
        participant_objects=study_objects(studies, encrypted=encrypted) + patient_objects(patients),
    )
