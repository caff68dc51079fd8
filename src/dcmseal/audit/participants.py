"""Who and what dcmseal's audit messages name: users, the application, media, patients and studies."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dcmseal.audit.codes import (
    ID_TYPE_PATIENT_NUMBER,
    ID_TYPE_STUDY_INSTANCE_UID,
    ROLE_APPLICATION,
    CodedValue,
    MediaType,
    NetworkAccessPointType,
    ParticipantObjectRole,
    ParticipantObjectType,
)
from dcmseal.audit.messages import (
    ActiveParticipant,
    AuditSource,
    ParticipantObject,
    ParticipantObjectDescription,
    SOPClass,
)

__all__ = [
    "AuditUser",
    "PatientRef",
    "StudyRef",
    "application_participant",
    "default_audit_source",
    "medium_participant",
    "patient_objects",
    "person_participant",
    "requestor_participants",
    "study_objects",
    "utc_now",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditUser:
    """A local or remote person or process (UserID as in PS3.15 A.5.2.1, e.g. ``login@domain``)."""

    user_id: str
    user_name: str | None = None
    alternative_user_id: str | None = None
    network_access_point_id: str | None = None
    network_access_point_type: NetworkAccessPointType | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientRef:
    """A patient of the event: Patient ID and, optionally, the name (never shown in reprs).

    ``patient_id`` is the Patient ID the data carries; ``""`` when it has none. A Patient ID dcmseal
    invented for a DICOMDIR record is not the patient's and is never given here.
    """

    patient_id: str = field(repr=False)
    name: str | None = field(default=None, repr=False)

    @classmethod
    def unidentified(cls) -> PatientRef:
        """A patient whose data carries no Patient ID: the Export and Import tables require 1..N patient
        objects, so this one is written with an empty ParticipantObjectID rather than a made-up one."""
        return cls(patient_id="")


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyRef:
    """A study of the event: its Study Instance UID and the instance count of each SOP Class."""

    study_instance_uid: str
    sop_classes: tuple[SOPClass, ...] = ()
    accession_numbers: tuple[str, ...] = ()
    #: The Study Description, written as the ParticipantObjectName ("" when unknown).
    description: str = ""

    @classmethod
    def from_counts(
        cls, study_instance_uid: str, counts: Mapping[str, int], *, accession_numbers: Iterable[str] = ()
    ) -> StudyRef:
        """Return a study from ``{sop_class_uid: number_of_instances}``, SOP Classes in sorted order."""
        return cls(
            study_instance_uid=study_instance_uid,
            sop_classes=tuple(SOPClass(uid=uid, number_of_instances=n) for uid, n in sorted(counts.items())),
            accession_numbers=tuple(accession_numbers),
        )


def utc_now() -> datetime:
    """The time a message is stamped with unless the caller injects its own clock."""
    return datetime.now(UTC)


def default_audit_source() -> AuditSource:
    """This host as the audit source (PS3.15 A.5.1: AuditSourceIdentification)."""
    return AuditSource(audit_source_id=socket.gethostname() or "localhost")


def person_participant(
    user: AuditUser, *, requestor: bool, roles: tuple[CodedValue, ...]
) -> ActiveParticipant:
    """The person who asked for the event, as an active participant."""
    return ActiveParticipant(
        user_id=user.user_id,
        user_is_requestor=requestor,
        alternative_user_id=user.alternative_user_id,
        user_name=user.user_name,
        role_id_codes=roles,
        network_access_point_id=user.network_access_point_id,
        network_access_point_type=user.network_access_point_type,
    )


def application_participant(application: str, *, roles: tuple[CodedValue, ...]) -> ActiveParticipant:
    """This process, the application that did the work, as an active participant."""
    # PS3.15 A.5.2.1: a process is named by the identifier of the local system logs (its process ID,
    # also the PROCID of our syslog header); A.5.2.3: UserName is the process name.
    return ActiveParticipant(
        user_id=str(os.getpid()),
        user_is_requestor=False,
        user_name=application,
        role_id_codes=(*roles, ROLE_APPLICATION),
    )


def requestor_participants(
    user: AuditUser, application: str | None, *, roles: tuple[CodedValue, ...]
) -> list[ActiveParticipant]:
    """The requestor and, unless ``application`` is ``None``, the local process acting with it, both in ``roles``."""
    participants = [person_participant(user, requestor=True, roles=roles)]
    if application is not None:
        participants.append(application_participant(application, roles=roles))
    return participants


def medium_participant(
    medium_id: str, media_type: MediaType, label: str | None, *, roles: tuple[CodedValue, ...]
) -> ActiveParticipant:
    """A medium written or read, as an active participant."""
    # PS3.15 A.5.2.1: for media the UserID identifies the medium; A.5.2.2: AlternativeUserID carries
    # a machine-readable identification such as the volume label.
    return ActiveParticipant(
        user_id=medium_id,
        user_is_requestor=False,
        alternative_user_id=label,
        role_id_codes=roles,
        media_type=media_type.code,
    )


def patient_objects(patients: Iterable[PatientRef]) -> tuple[ParticipantObject, ...]:
    """The patients of an Export or Import, as participant objects (at least one)."""
    objects = tuple(
        ParticipantObject(
            object_id=patient.patient_id,
            id_type_code=ID_TYPE_PATIENT_NUMBER,
            type_code=ParticipantObjectType.PERSON,
            type_code_role=ParticipantObjectRole.PATIENT,
            name=patient.name or "",
        )
        for patient in patients
    )
    if not objects:
        raise ValueError("Export and Import messages describe at least one patient (PS3.15 A.5.3.4, A.5.3.5)")
    return objects


def study_objects(studies: Iterable[StudyRef], *, encrypted: bool | None) -> tuple[ParticipantObject, ...]:
    """The studies of an Export or Import, as participant objects (described when there is something to say)."""
    objects = []
    for study in studies:
        description = ParticipantObjectDescription(
            accession_numbers=study.accession_numbers, sop_classes=study.sop_classes, encrypted=encrypted
        )
        has_description = bool(study.sop_classes or study.accession_numbers or encrypted is not None)
        objects.append(
            ParticipantObject(
                object_id=study.study_instance_uid,
                id_type_code=ID_TYPE_STUDY_INSTANCE_UID,
                type_code=ParticipantObjectType.SYSTEM_OBJECT,
                type_code_role=ParticipantObjectRole.REPORT,
                name=study.description,
                descriptions=(description,) if has_description else (),
            )
        )
    return tuple(objects)
