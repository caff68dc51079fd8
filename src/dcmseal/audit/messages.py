"""The PS3.15 A.5 audit event model, encoded as the A.5.1 XML audit message."""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "ALERT_DESCRIPTION",
    "ALERT_TYPE_MEDIUM_REJECTED",
    "ALERT_TYPE_NODE_AUTHENTICATION",
    "ALERT_TYPE_OBJECT_SECURITY_ATTRIBUTES_CHANGED",
    "ALERT_TYPE_SECURITY_CONFIGURATION",
    "ALERT_TYPE_USE_OF_RESTRICTED_FUNCTION",
    "EVENT_ID_EXPORT",
    "EVENT_ID_IMPORT",
    "EVENT_ID_SECURITY_ALERT",
    "ID_TYPE_CERTIFICATE_FINGERPRINT",
    "ID_TYPE_MEDIUM_ID",
    "ID_TYPE_PATIENT_NUMBER",
    "ID_TYPE_STUDY_INSTANCE_UID",
    "ID_TYPE_URI",
    "ROLE_APPLICATION",
    "ROLE_DESTINATION",
    "ROLE_DESTINATION_MEDIA",
    "ROLE_SOURCE",
    "ROLE_SOURCE_MEDIA",
    "ActiveParticipant",
    "AuditEvent",
    "AuditEventKind",
    "AuditSource",
    "AuditSourceType",
    "AuditUser",
    "CodedValue",
    "EventActionCode",
    "EventOutcome",
    "MediaType",
    "NetworkAccessPointType",
    "ParticipantObject",
    "ParticipantObjectDataLifeCycle",
    "ParticipantObjectDescription",
    "ParticipantObjectDetail",
    "ParticipantObjectRole",
    "ParticipantObjectType",
    "PatientRef",
    "SOPClass",
    "StudyRef",
    "export_event",
    "import_event",
    "security_alert",
    "to_xml",
]

logger = logging.getLogger(__name__)


# --- coded values -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CodedValue:
    """A coded entry of the audit schema (PS3.15 A.5.1 ``CodedValueType``).

    Written as the attributes ``csd-code``, ``codeSystemName``, ``originalText`` (the DICOM Code
    Meaning) and, when given, ``displayName``.
    """

    csd_code: str
    code_system_name: str
    original_text: str
    display_name: str | None = None

    def __post_init__(self) -> None:
        if not (self.csd_code and self.code_system_name and self.original_text):
            raise ValueError("a coded value needs csd-code, codeSystemName and originalText (PS3.15 A.5.1)")


def _dcm(code: str, meaning: str) -> CodedValue:
    return CodedValue(csd_code=code, code_system_name="DCM", original_text=meaning)


#: CID 400 "Audit Event ID": the events dcmseal reports (PS3.15 A.5.3.4, A.5.3.5, A.5.3.11).
EVENT_ID_EXPORT = _dcm("110106", "Export")
EVENT_ID_IMPORT = _dcm("110107", "Import")
EVENT_ID_SECURITY_ALERT = _dcm("110113", "Security Alert")

#: CID 402 "Audit Active Participant Role ID Code".
ROLE_APPLICATION = _dcm("110150", "Application")
ROLE_DESTINATION = _dcm("110152", "Destination Role ID")
ROLE_SOURCE = _dcm("110153", "Source Role ID")
ROLE_DESTINATION_MEDIA = _dcm("110154", "Destination Media")
ROLE_SOURCE_MEDIA = _dcm("110155", "Source Media")

#: CID 403 "Security Alert Type Code" (the EventTypeCode of a Security Alert, PS3.15 A.5.3.11).
#: Escrow recovery of a medium password is a "Use of Restricted Function" ("a use of a restricted
#: function has been attempted"); "Security Configuration" (110129) means the configuration changed.
ALERT_TYPE_NODE_AUTHENTICATION = _dcm("110126", "Node Authentication")
ALERT_TYPE_SECURITY_CONFIGURATION = _dcm("110129", "Security Configuration")
ALERT_TYPE_USE_OF_RESTRICTED_FUNCTION = _dcm("110132", "Use of Restricted Function")
ALERT_TYPE_OBJECT_SECURITY_ATTRIBUTES_CHANGED = _dcm("110135", "Object Security Attributes Changed")
#: A medium refused as a whole for a security reason (an envelope that does not verify or is malformed, an
#: archive past its resource limits). CID 403 has no code for it; CID 403 is extensible, so this is a private
#: code of dcmseal (an extension the Conformance Statement describes, PS3.15 A.5).
ALERT_TYPE_MEDIUM_REJECTED = CodedValue(
    csd_code="MEDIUM-REJECTED", code_system_name="99DCMSEAL", original_text="Medium Rejected"
)

#: ParticipantObjectIDTypeCode values (PS3.15 A.5.1.2.4 and the A.5.3 tables).
ID_TYPE_PATIENT_NUMBER = CodedValue(csd_code="2", code_system_name="RFC-3881", original_text="Patient Number")
ID_TYPE_URI = CodedValue(csd_code="12", code_system_name="RFC-3881", original_text="URI")
ID_TYPE_STUDY_INSTANCE_UID = _dcm("110180", "Study Instance UID")
#: The Alert Subject of a Security Alert takes Defined Terms (PS3.15 A.5.3.11), and A.5.1.2.4 allows
#: implementation-defined codes; a medium ID from the key registry is neither a URI nor a Node ID, so it
#: gets a private code ("99" prefix: a private Coding Scheme Designator, PS3.16 Section 8).
ID_TYPE_MEDIUM_ID = CodedValue(csd_code="MEDIUM", code_system_name="99DCMSEAL", original_text="Medium ID")
#: A key pair or certificate, named by the SHA-256 of its certificate (lowercase hex); private as above.
ID_TYPE_CERTIFICATE_FINGERPRINT = CodedValue(
    csd_code="CERT-SHA256", code_system_name="99DCMSEAL", original_text="Certificate SHA-256 Fingerprint"
)

#: The ParticipantObjectDetail ``type`` PS3.15 A.5.3.11 requires on every Alert Subject.
ALERT_DESCRIPTION = "Alert Description"


class AuditEventKind(StrEnum):
    """The events dcmseal reports, each with its EventID and EventActionCode (PS3.15 A.5.3)."""

    EXPORT = "export"
    IMPORT = "import"
    SECURITY_ALERT = "security-alert"


class EventActionCode(StrEnum):
    """EventActionCode of the A.5.1 schema."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class EventOutcome(StrEnum):
    """EventOutcomeIndicator of the A.5.1 schema (PS3.15 Table A.5.2-1)."""

    SUCCESS = "0"
    MINOR_FAILURE = "4"
    SERIOUS_FAILURE = "8"
    MAJOR_FAILURE = "12"


class NetworkAccessPointType(StrEnum):
    """NetworkAccessPointTypeCode of the A.5.1 schema."""

    MACHINE_NAME = "1"
    IP_ADDRESS = "2"
    TELEPHONE_NUMBER = "3"
    EMAIL_ADDRESS = "4"
    URI = "5"


class AuditSourceType(StrEnum):
    """AuditSourceTypeCode values (PS3.15 A.5.1.2.1)."""

    END_USER_INTERFACE = "1"
    DATA_ACQUISITION_DEVICE = "2"
    WEB_SERVER = "3"
    APPLICATION_SERVER = "4"
    DATABASE_SERVER = "5"
    SECURITY_SERVER = "6"
    NETWORK_COMPONENT = "7"
    OPERATING_SOFTWARE = "8"
    OTHER = "9"


class ParticipantObjectType(StrEnum):
    """ParticipantObjectTypeCode of the A.5.1 schema."""

    PERSON = "1"
    SYSTEM_OBJECT = "2"
    ORGANIZATION = "3"
    OTHER = "4"


class ParticipantObjectRole(StrEnum):
    """ParticipantObjectTypeCodeRole of the A.5.1 schema (PS3.15 A.5.1.2.2)."""

    PATIENT = "1"
    LOCATION = "2"
    REPORT = "3"
    RESOURCE = "4"
    MASTER_FILE = "5"
    USER = "6"
    LIST = "7"
    DOCTOR = "8"
    SUBSCRIBER = "9"
    GUARANTOR = "10"
    SECURITY_USER_ENTITY = "11"
    SECURITY_USER_GROUP = "12"
    SECURITY_RESOURCE = "13"
    SECURITY_GRANULARITY_DEFINITION = "14"
    PROVIDER = "15"
    DATA_DESTINATION = "16"
    DATA_REPOSITORY = "17"
    SCHEDULE = "18"
    CUSTOMER = "19"
    JOB = "20"
    JOB_STREAM = "21"
    TABLE = "22"
    ROUTING_CRITERIA = "23"
    QUERY = "24"


class ParticipantObjectDataLifeCycle(StrEnum):
    """ParticipantObjectDataLifeCycle of the A.5.1 schema (PS3.15 A.5.1.2.3)."""

    ORIGINATION = "1"
    IMPORT = "2"
    AMENDMENT = "3"
    VERIFICATION = "4"
    TRANSLATION = "5"
    ACCESS = "6"
    DE_IDENTIFICATION = "7"
    AGGREGATION = "8"
    REPORT = "9"
    EXPORT = "10"
    DISCLOSURE = "11"
    RECEIPT_OF_DISCLOSURE = "12"
    ARCHIVING = "13"
    LOGICAL_DELETION = "14"
    PERMANENT_ERASURE = "15"


class MediaType(StrEnum):
    """CID 405 "Media Type Code": the MediaType of a media participant; the value is the DCM code."""

    USB_DISK_EMULATION = "110030"
    EMAIL = "110031"
    CD = "110032"
    DVD = "110033"
    COMPACT_FLASH = "110034"
    MULTI_MEDIA_CARD = "110035"
    SECURE_DIGITAL_CARD = "110036"
    URI = "110037"
    FILM = "110010"
    PAPER_DOCUMENT = "110038"

    @property
    def code(self) -> CodedValue:
        """The coded value written in ``MediaIdentifier/MediaType``."""
        return _dcm(self.value, _MEDIA_TYPE_MEANINGS[self.value])


# Code Meanings of CID 405 "Media Type Code" (PS3.16): Email is (110031, DCM, "Email").
_MEDIA_TYPE_MEANINGS: Mapping[str, str] = {
    "110030": "USB Disk Emulation",
    "110031": "Email",
    "110032": "CD",
    "110033": "DVD",
    "110034": "Compact Flash",
    "110035": "Multi-media Card",
    "110036": "Secure Digital Card",
    "110037": "URI",
    "110010": "Film",
    "110038": "Paper Document",
}


# --- the message model --------------------------------------------------------------------------------------


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
    AuditEventKind.EXPORT: EVENT_ID_EXPORT,
    AuditEventKind.IMPORT: EVENT_ID_IMPORT,
    AuditEventKind.SECURITY_ALERT: EVENT_ID_SECURITY_ALERT,
}
# "Shall be" values of Tables A.5.3.4-1 (Read), A.5.3.5-1 (Create) and A.5.3.11-1 (Execute).
_ACTION_CODES: Mapping[AuditEventKind, EventActionCode] = {
    AuditEventKind.EXPORT: EventActionCode.READ,
    AuditEventKind.IMPORT: EventActionCode.CREATE,
    AuditEventKind.SECURITY_ALERT: EventActionCode.EXECUTE,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One audit event; :func:`to_xml` turns it into a PS3.15 A.5.1 ``AuditMessage``.

    The EventID and EventActionCode follow from ``kind``, as the A.5.3 tables fix them.
    """

    kind: AuditEventKind
    event_datetime: datetime
    outcome: EventOutcome
    active_participants: tuple[ActiveParticipant, ...]
    audit_source: AuditSource
    participant_objects: tuple[ParticipantObject, ...] = ()
    event_type_codes: tuple[CodedValue, ...] = ()
    outcome_description: str | None = None

    def __post_init__(self) -> None:
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
        """The EventActionCode the A.5.3 table of this kind of event requires."""
        return _ACTION_CODES[self.kind]


# --- convenience constructors -------------------------------------------------------------------------------


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


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_audit_source() -> AuditSource:
    return AuditSource(audit_source_id=socket.gethostname() or "localhost")


def _person(user: AuditUser, *, requestor: bool, roles: tuple[CodedValue, ...]) -> ActiveParticipant:
    return ActiveParticipant(
        user_id=user.user_id,
        user_is_requestor=requestor,
        alternative_user_id=user.alternative_user_id,
        user_name=user.user_name,
        role_id_codes=roles,
        network_access_point_id=user.network_access_point_id,
        network_access_point_type=user.network_access_point_type,
    )


def _process(application: str, *, roles: tuple[CodedValue, ...]) -> ActiveParticipant:
    # PS3.15 A.5.2.1: a process is named by the identifier of the local system logs (its process ID,
    # also the PROCID of our syslog header); A.5.2.3: UserName is the process name.
    return ActiveParticipant(
        user_id=str(os.getpid()),
        user_is_requestor=False,
        user_name=application,
        role_id_codes=(*roles, ROLE_APPLICATION),
    )


def _medium(
    medium_id: str, media_type: MediaType, label: str | None, *, roles: tuple[CodedValue, ...]
) -> ActiveParticipant:
    # PS3.15 A.5.2.1: for media the UserID identifies the medium; A.5.2.2: AlternativeUserID carries
    # a machine-readable identification such as the volume label.
    return ActiveParticipant(
        user_id=medium_id,
        user_is_requestor=False,
        alternative_user_id=label,
        role_id_codes=roles,
        media_type=media_type.code,
    )


def _patient_objects(patients: Iterable[PatientRef]) -> tuple[ParticipantObject, ...]:
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


def _study_objects(studies: Iterable[StudyRef], *, encrypted: bool | None) -> tuple[ParticipantObject, ...]:
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
    now: Callable[[], datetime] = _utc_now,
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
    participants = [_person(user, requestor=True, roles=(ROLE_SOURCE,))]
    if application is not None:
        participants.append(_process(application, roles=(ROLE_SOURCE,)))
    participants.extend(_person(r, requestor=False, roles=(ROLE_DESTINATION,)) for r in recipients)
    # The Destination Role ID next to Destination Media follows the example of PS3.17 WW.3.
    participants.append(
        _medium(medium_id, media_type, medium_label, roles=(ROLE_DESTINATION, ROLE_DESTINATION_MEDIA))
    )
    return AuditEvent(
        kind=AuditEventKind.EXPORT,
        event_datetime=now(),
        outcome=outcome,
        outcome_description=description,
        active_participants=tuple(participants),
        audit_source=audit_source or _default_audit_source(),
        participant_objects=_study_objects(studies, encrypted=encrypted) + _patient_objects(patients),
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
    now: Callable[[], datetime] = _utc_now,
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
    participants = [_person(user, requestor=True, roles=(ROLE_DESTINATION,))]
    if application is not None:
        participants.append(_process(application, roles=(ROLE_DESTINATION,)))
    # The Source Role ID next to Source Media follows the example of PS3.17 WW.6.
    participants.append(_medium(medium_id, media_type, medium_label, roles=(ROLE_SOURCE, ROLE_SOURCE_MEDIA)))
    participants.extend(_person(s, requestor=False, roles=(ROLE_SOURCE,)) for s in senders)
    return AuditEvent(
        kind=AuditEventKind.IMPORT,
        event_datetime=now(),
        outcome=outcome,
        outcome_description=description,
        active_participants=tuple(participants),
        audit_source=audit_source or _default_audit_source(),
        participant_objects=_study_objects(studies, encrypted=encrypted) + _patient_objects(patients),
    )


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
    now: Callable[[], datetime] = _utc_now,
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
    participants = [_person(user, requestor=True, roles=())]
    if application is not None:
        participants.append(_process(application, roles=()))
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
        objects.extend(_patient_objects(patient_list))
    return AuditEvent(
        kind=AuditEventKind.SECURITY_ALERT,
        event_datetime=now(),
        outcome=outcome,
        outcome_description=None if medium_id is not None else description,
        event_type_codes=(alert_type,),
        active_participants=tuple(participants),
        audit_source=audit_source or _default_audit_source(),
        participant_objects=tuple(objects),
    )


# --- XML ----------------------------------------------------------------------------------------------------

# Characters XML 1.0 (Section 2.2, production Char) does not allow, even as references; lone surrogates
# (from surrogateescape-decoded file names) cannot be encoded as UTF-8 either.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    """Replace what XML cannot carry by U+FFFD, so hostile DICOM values still give a well-formed message."""
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _xs_datetime(moment: datetime) -> str:
    # PS3.15 A.5.2.5: the time zone is required; UTC with "Z" is unambiguous (RFC 3881's convention).
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _xs_boolean(value: bool) -> str:
    return "true" if value else "false"


def _element(parent: ET.Element, tag: str, attributes: Mapping[str, str | None] | None = None) -> ET.Element:
    present = {k: _clean(v) for k, v in (attributes or {}).items() if v is not None}
    return ET.SubElement(parent, tag, present)


def _coded(parent: ET.Element, tag: str, code: CodedValue) -> ET.Element:
    return _element(
        parent,
        tag,
        {
            "csd-code": code.csd_code,
            "codeSystemName": code.code_system_name,
            "displayName": code.display_name,
            "originalText": code.original_text,
        },
    )


def _write_participant(root: ET.Element, participant: ActiveParticipant) -> None:
    nap_type = participant.network_access_point_type
    element = _element(
        root,
        "ActiveParticipant",
        {
            "UserID": participant.user_id,
            "AlternativeUserID": participant.alternative_user_id,
            "UserName": participant.user_name,
            "UserIsRequestor": _xs_boolean(participant.user_is_requestor),
            "NetworkAccessPointID": participant.network_access_point_id,
            "NetworkAccessPointTypeCode": nap_type.value if nap_type is not None else None,
        },
    )
    for role in participant.role_id_codes:
        _coded(element, "RoleIDCode", role)
    if participant.media_type is not None:
        _coded(_element(element, "MediaIdentifier"), "MediaType", participant.media_type)


def _write_description(parent: ET.Element, description: ParticipantObjectDescription) -> None:
    # Children in the order of DICOMObjectDescriptionContents (A.5.1).
    element = _element(parent, "ParticipantObjectDescription")
    for uid in description.mpps_uids:
        _element(element, "MPPS", {"UID": uid})
    for number in description.accession_numbers:
        _element(element, "Accession", {"Number": number})
    for sop_class in description.sop_classes:
        sop = _element(
            element,
            "SOPClass",
            {"UID": sop_class.uid, "NumberOfInstances": str(sop_class.number_of_instances)},
        )
        for uid in sop_class.instance_uids:
            _element(sop, "Instance", {"UID": uid})
    if description.contains_study_uids:
        contains = _element(element, "ParticipantObjectContainsStudy")
        for uid in description.contains_study_uids:
            _element(contains, "StudyIDs", {"UID": uid})
    if description.encrypted is not None:
        _element(element, "Encrypted").text = _xs_boolean(description.encrypted)
    if description.anonymized is not None:
        _element(element, "Anonymized").text = _xs_boolean(description.anonymized)


def _write_object(root: ET.Element, obj: ParticipantObject) -> None:
    element = _element(
        root,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": obj.object_id,
            "ParticipantObjectTypeCode": obj.type_code.value if obj.type_code is not None else None,
            "ParticipantObjectTypeCodeRole": obj.type_code_role.value
            if obj.type_code_role is not None
            else None,
            "ParticipantObjectDataLifeCycle": obj.data_life_cycle.value
            if obj.data_life_cycle is not None
            else None,
            "ParticipantObjectSensitivity": obj.sensitivity,
        },
    )
    _coded(element, "ParticipantObjectIDTypeCode", obj.id_type_code)
    if obj.name is not None:
        _element(element, "ParticipantObjectName").text = _clean(obj.name)
    elif obj.query is not None:
        _element(element, "ParticipantObjectQuery").text = base64.b64encode(obj.query).decode("ascii")
    for detail in obj.details:
        _element(
            element,
            "ParticipantObjectDetail",
            {"type": detail.type, "value": base64.b64encode(detail.value).decode("ascii")},
        )
    for description in obj.descriptions:
        _write_description(element, description)


def to_xml(event: AuditEvent) -> bytes:
    """Encode ``event`` as a PS3.15 A.5.1 ``AuditMessage``.

    Elements and attributes carry the schema's names in the schema's order. The result is UTF-8 without
    an XML declaration and on a single line: newlines inside values are written as character
    references, so one message is one line of a log file. Characters XML cannot carry (C0 controls,
    lone surrogates) become U+FFFD.

    Parameters
    ----------
    event
        The event to encode.

    Returns
    -------
    bytes
        The ``AuditMessage`` element, UTF-8.
    """
    root = ET.Element("AuditMessage")
    identification = _element(
        root,
        "EventIdentification",
        {
            "EventActionCode": event.action_code.value,
            "EventDateTime": _xs_datetime(event.event_datetime),
            "EventOutcomeIndicator": event.outcome.value,
        },
    )
    _coded(identification, "EventID", event.event_id)
    for type_code in event.event_type_codes:
        _coded(identification, "EventTypeCode", type_code)
    if event.outcome_description is not None:
        _element(identification, "EventOutcomeDescription").text = _clean(event.outcome_description)
    for participant in event.active_participants:
        _write_participant(root, participant)
    source = _element(
        root,
        "AuditSourceIdentification",
        {
            "AuditEnterpriseSiteID": event.audit_source.enterprise_site_id,
            "AuditSourceID": event.audit_source.audit_source_id,
        },
    )
    for source_type in event.audit_source.type_codes:
        _element(source, "AuditSourceTypeCode", {"csd-code": source_type.value})
    for obj in event.participant_objects:
        _write_object(root, obj)
    encoded: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    # ElementTree escapes line breaks in attributes but not in text; a character reference is the same
    # character to an XML reader and keeps the message on one line.
    encoded = encoded.replace(b"\r", b"&#13;").replace(b"\n", b"&#10;")
    logger.debug("encoded %s audit message: %d octets", event.kind, len(encoded))
    return encoded
