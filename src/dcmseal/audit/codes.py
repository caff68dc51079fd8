"""The coded values and code sets of PS3.15 A.5 audit messages (DCID 400-405, RFC 3881 ID types)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    "EVENT_ID_INSTANCES_ACCESSED",
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
    "AuditEventKind",
    "AuditSourceType",
    "CodedValue",
    "EventActionCode",
    "EventOutcome",
    "MediaType",
    "NetworkAccessPointType",
    "ParticipantObjectDataLifeCycle",
    "ParticipantObjectRole",
    "ParticipantObjectType",
]


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


#: CID 400 "Audit Event ID": the events dcmseal reports (PS3.15 A.5.3.2, A.5.3.4, A.5.3.5, A.5.3.11).
EVENT_ID_INSTANCES_ACCESSED = _dcm("110103", "DICOM Instances Accessed")
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

    INSTANCES_ACCESSED = "instances-accessed"
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
