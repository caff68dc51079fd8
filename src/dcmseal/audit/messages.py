"""The PS3.15 A.5 audit event model: an event, its active participants, its source and its participant objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dcmseal.audit.codes import (
    EVENT_ID_EXPORT,
    EVENT_ID_IMPORT,
    EVENT_ID_INSTANCES_ACCESSED,
    EVENT_ID_SECURITY_ALERT,
    AuditEventKind,
    AuditSourceType,
    CodedValue,
    EventActionCode,
    EventOutcome,
    NetworkAccessPointType,
    ParticipantObjectDataLifeCycle,
    ParticipantObjectRole,
    ParticipantObjectType,
)

__all__ = [
    "ActiveParticipant",
    "AuditEvent",
    "AuditSource",
    "ParticipantObject",
    "ParticipantObjectDescription",
    "ParticipantObjectDetail",
    "SOPClass",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveParticipant:
    """One ``ActiveParticipant``: a person, process or medium taking part in the event (PS3.15 A.5.2)."""

    user_id: str
    user_is_requestor: bool
    alternative_user_id: str | None = None
    user_name: str | None = None
    role_id_codes: tuple[CodedValue, ...] = ()
    network_access_point_id: str | None = None
    network_access_point_type: NetworkAccessPointType | None = None
    #: ``MediaIdentifier/MediaType``, for media participants (CID 405).
    media_type: CodedValue | None = None

    def __post_init__(self) -> None:
        if not self.user_id:
            raise ValueError("an ActiveParticipant needs a UserID (PS3.15 A.5.2.1)")
        if self.network_access_point_type is not None and not self.network_access_point_id:
            raise ValueError(
                "NetworkAccessPointID is required with NetworkAccessPointTypeCode (PS3.15 A.5.3.5)"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditSource:
    """The ``AuditSourceIdentification``: who reports the event."""

    audit_source_id: str
    enterprise_site_id: str | None = None
    type_codes: tuple[AuditSourceType, ...] = ()

    def __post_init__(self) -> None:
        if not self.audit_source_id:
            raise ValueError("AuditSourceIdentification needs an AuditSourceID (PS3.15 A.5.1)")


@dataclass(frozen=True, slots=True, kw_only=True)
class SOPClass:
    """A ``SOPClass`` of a ``ParticipantObjectDescription``: one SOP Class of a study and its instance count."""

    uid: str
    number_of_instances: int
    instance_uids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.number_of_instances < 0:
            raise ValueError(f"NumberOfInstances cannot be negative, not {self.number_of_instances}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantObjectDescription:
    """The DICOM extension of a participant object (PS3.15 A.5.1 ``DICOMObjectDescriptionContents``)."""

    mpps_uids: tuple[str, ...] = ()
    accession_numbers: tuple[str, ...] = ()
    sop_classes: tuple[SOPClass, ...] = ()
    contains_study_uids: tuple[str, ...] = ()
    encrypted: bool | None = None
    anonymized: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantObjectDetail:
    """A ``ParticipantObjectDetail`` type-value pair; the value is sent base64-encoded (PS3.15 A.5.2)."""

    type: str
    value: bytes = field(repr=False)

    @classmethod
    def from_text(cls, detail_type: str, text: str) -> ParticipantObjectDetail:
        """Return a detail whose value is ``text`` in UTF-8 (unencodable code points become ``?``)."""
        return cls(type=detail_type, value=text.encode("utf-8", "replace"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantObject:
    """One ``ParticipantObjectIdentification``: a patient, study, medium or other object of the event.

    ``object_id`` and ``name`` may be a patient ID and a patient name, so reprs never show them.

    The A.5.1 schema requires exactly one of ``ParticipantObjectName`` and ``ParticipantObjectQuery``: give
    ``name`` (``""`` when no name is known: an empty token is a valid name and invents nothing) or ``query``.
    The ``object_id`` of a patient may be ``""``: the source holds no Patient ID (see :class:`PatientRef`).
    """

    object_id: str = field(repr=False)
    id_type_code: CodedValue
    type_code: ParticipantObjectType | None = None
    type_code_role: ParticipantObjectRole | None = None
    data_life_cycle: ParticipantObjectDataLifeCycle | None = None
    sensitivity: str | None = None
    name: str | None = field(default=None, repr=False)
    query: bytes | None = field(default=None, repr=False)
    details: tuple[ParticipantObjectDetail, ...] = ()
    descriptions: tuple[ParticipantObjectDescription, ...] = ()

    def __post_init__(self) -> None:
        if not self.object_id and self.type_code_role is not ParticipantObjectRole.PATIENT:
            raise ValueError("a ParticipantObjectIdentification needs a ParticipantObjectID (PS3.15 A.5.1)")
        if (self.name is None) == (self.query is None):
            raise ValueError(
                "a ParticipantObjectIdentification has either a ParticipantObjectName or a "
                "ParticipantObjectQuery, not both or neither (PS3.15 A.5.1 schema)"
            )


_EVENT_IDS: Mapping[AuditEventKind, CodedValue] = {
    AuditEventKind.INSTANCES_ACCESSED: EVENT_ID_INSTANCES_ACCESSED,
    AuditEventKind.EXPORT: EVENT_ID_EXPORT,
    AuditEventKind.IMPORT: EVENT_ID_IMPORT,
    AuditEventKind.SECURITY_ALERT: EVENT_ID_SECURITY_ALERT,
}
# "Shall be" values of Tables A.5.3.4-1 (Read), A.5.3.5-1 (Create) and A.5.3.11-1 (Execute). Table A.5.3.2-1
# (DICOM Instances Accessed) lets the event say which: create, read, update or delete.
_ACTION_CODES: Mapping[AuditEventKind, EventActionCode] = {
    AuditEventKind.EXPORT: EventActionCode.READ,
    AuditEventKind.IMPORT: EventActionCode.CREATE,
    AuditEventKind.SECURITY_ALERT: EventActionCode.EXECUTE,
}
_ACCESS_ACTIONS = frozenset(
    {EventActionCode.CREATE, EventActionCode.READ, EventActionCode.UPDATE, EventActionCode.DELETE}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One audit event; :func:`to_xml` turns it into a PS3.15 A.5.1 ``AuditMessage``.

    The EventID and EventActionCode follow from ``kind``, as the A.5.3 tables fix them; a DICOM Instances
    Accessed event says its ``action`` (C, R, U or D: Table A.5.3.2-1), which the other kinds leave ``None``.
    """

    kind: AuditEventKind
    event_datetime: datetime
    outcome: EventOutcome
    active_participants: tuple[ActiveParticipant, ...]
    audit_source: AuditSource
    participant_objects: tuple[ParticipantObject, ...] = ()
    event_type_codes: tuple[CodedValue, ...] = ()
    outcome_description: str | None = None
    action: EventActionCode | None = None

    def __post_init__(self) -> None:
        if self.kind is AuditEventKind.INSTANCES_ACCESSED:
            if self.action not in _ACCESS_ACTIONS:
                raise ValueError(
                    "DICOM Instances Accessed takes the EventActionCode C, R, U or D (PS3.15 Table A.5.3.2-1), "
                    f"not {self.action}"
                )
        elif self.action not in (None, _ACTION_CODES[self.kind]):
            raise ValueError(
                f"the EventActionCode of {self.kind} is {_ACTION_CODES[self.kind]} (PS3.15 A.5.3)"
            )
        if self.event_datetime.utcoffset() is None:
            raise ValueError("EventDateTime needs a time zone (PS3.15 A.5.2.5); pass an aware datetime")
        if not self.active_participants:
            raise ValueError("an audit message needs at least one ActiveParticipant (PS3.15 A.5.1)")

    @property
    def event_id(self) -> CodedValue:
        """The EventID (CID 400) of this kind of event."""
        return _EVENT_IDS[self.kind]

    @property
    def action_code(self) -> EventActionCode:
        """The EventActionCode the A.5.3 table of this kind of event requires, or the one it was given."""
        return self.action or _ACTION_CODES[self.kind]
