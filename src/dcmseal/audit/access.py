"""The DICOM Instances Accessed audit message (PS3.15 A.5.3.2): instances created, read or updated locally.

A document encapsulated into a new instance, a document extracted out of one, a safe copy of an instance: the
data stays on this system (no medium, no network), so neither Export nor Import fits; A.5.3.2 is the event of
"DICOM SOP Instances being viewed, utilized, updated, or deleted", and its message names one patient only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from dcmseal.audit.codes import AuditEventKind, EventActionCode, EventOutcome
from dcmseal.audit.medium import audit_patients
from dcmseal.audit.messages import AuditEvent, AuditSource
from dcmseal.audit.participants import (
    AuditUser,
    PatientRef,
    StudyRef,
    default_audit_source,
    patient_objects,
    requestor_participants,
    study_objects,
    utc_now,
)

__all__ = ["AccessedInstance", "instances_accessed", "instances_accessed_events"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessedInstance:
    """What an Instances Accessed message says of one instance: its patient, study and SOP Class.

    ``patient_id`` is the Patient ID the instance carries (``""`` when none; a Patient ID dcmseal invented
    for a DICOMDIR record counts as none). An instance without a Study Instance UID is counted under its
    patient only: the message names no study it cannot identify.
    """

    patient_id: str = field(repr=False)
    study_instance_uid: str
    sop_class_uid: str


def instances_accessed(
    *,
    user: AuditUser,
    action: EventActionCode,
    patient: PatientRef,
    studies: Iterable[StudyRef],
    outcome: EventOutcome = EventOutcome.SUCCESS,
    description: str | None = None,
    application: str | None = "dcmseal",
    audit_source: AuditSource | None = None,
    now: Callable[[], datetime] = utc_now,
) -> AuditEvent:
    """Build the DICOM Instances Accessed event of one patient's instances (PS3.15 A.5.3.2, Table A.5.3.2-1).

    Parameters
    ----------
    user
        The person manipulating the data, the requestor.
    action
        C (instances created), R (read), U (updated) or D (deleted).
    patient
        The one patient the message is about (A.5.3.2: "shall only include information about a single
        patient").
    studies
        The patient's studies, with instance counts per SOP Class.
    outcome, description
        EventOutcomeIndicator and EventOutcomeDescription.
    application
        The local process, a second participant manipulating the data (Table A.5.3.2-1 allows 1..2);
        ``None`` leaves it out.
    audit_source, now
        As for :func:`~dcmseal.audit.export_event`.

    Returns
    -------
    AuditEvent

    Raises
    ------
    ValueError
        ``action`` is E, or ``now`` returned a naive datetime.
    """
    participants = requestor_participants(user, application, roles=())
    return AuditEvent(
        kind=AuditEventKind.INSTANCES_ACCESSED,
        action=action,
        event_datetime=now(),
        outcome=outcome,
        outcome_description=description,
        active_participants=tuple(participants),
        audit_source=audit_source or default_audit_source(),
        participant_objects=study_objects(studies, encrypted=None) + patient_objects((patient,)),
    )


def instances_accessed_events(
    instances: Iterable[AccessedInstance],
    *,
    user: AuditUser,
    action: EventActionCode,
    outcome: EventOutcome = EventOutcome.SUCCESS,
    description: str | None = None,
    now: Callable[[], datetime] = utc_now,
) -> list[AuditEvent]:
    """One DICOM Instances Accessed event per patient of ``instances``, in first-seen order (none for none).

    Each names its patient (unidentified when the instances carry no Patient ID) and its studies with their
    instance counts per SOP Class, as A.5.3.2 asks of a message: one patient each.
    """
    by_patient: dict[PatientRef, dict[str, dict[str, int]]] = {}
    for instance in instances:
        (patient,) = audit_patients((instance.patient_id,))
        studies = by_patient.setdefault(patient, {})
        if instance.study_instance_uid:
            counts = studies.setdefault(instance.study_instance_uid, {})
            counts[instance.sop_class_uid] = counts.get(instance.sop_class_uid, 0) + 1
    return [
        instances_accessed(
            user=user,
            action=action,
            patient=patient,
            studies=[StudyRef.from_counts(uid, counts) for uid, counts in studies.items()],
            outcome=outcome,
            description=description,
            now=now,
        )
        for patient, studies in by_patient.items()
    ]
