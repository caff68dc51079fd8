"""The A.5.1 XML form of an audit message."""

from __future__ import annotations

import base64
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime

from dcmseal.audit.codes import CodedValue
from dcmseal.audit.messages import (
    ActiveParticipant,
    AuditEvent,
    ParticipantObject,
    ParticipantObjectDescription,
)

__all__ = [
    "to_xml",
]

logger = logging.getLogger(__name__)


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
