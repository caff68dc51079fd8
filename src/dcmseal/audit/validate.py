"""Conformance checks of an audit message against PS3.15 A.5.1 and the A.5.3 tables of its event."""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import datetime
from importlib import resources

from lxml import etree

__all__ = ["validate_message"]

logger = logging.getLogger(__name__)

_ACTION_CODES = frozenset({"C", "R", "U", "D", "E"})
_OUTCOMES = frozenset({"0", "4", "8", "12"})
_BOOLEANS = frozenset({"true", "false", "1", "0"})
_NAP_TYPES = frozenset({"1", "2", "3", "4", "5"})
_OBJECT_TYPES = frozenset({"1", "2", "3", "4"})
_OBJECT_ROLES = frozenset(str(n) for n in range(1, 27))
_LIFE_CYCLES = frozenset(str(n) for n in range(1, 16))

# The content model of each element: which children the A.5.1 schema allows.
_CHILDREN: Mapping[str, frozenset[str]] = {
    "AuditMessage": frozenset(
        {
            "EventIdentification",
            "ActiveParticipant",
            "AuditSourceIdentification",
            "ParticipantObjectIdentification",
        }
    ),
    "EventIdentification": frozenset({"EventID", "EventTypeCode", "EventOutcomeDescription"}),
    "ActiveParticipant": frozenset({"RoleIDCode", "MediaIdentifier"}),
    "MediaIdentifier": frozenset({"MediaType"}),
    "AuditSourceIdentification": frozenset({"AuditSourceTypeCode"}),
    "ParticipantObjectIdentification": frozenset(
        {
            "ParticipantObjectIDTypeCode",
            "ParticipantObjectName",
            "ParticipantObjectQuery",
            "ParticipantObjectDetail",
            "ParticipantObjectDescription",
        }
    ),
    "ParticipantObjectDescription": frozenset(
        {"MPPS", "Accession", "SOPClass", "ParticipantObjectContainsStudy", "Encrypted", "Anonymized"}
    ),
    "SOPClass": frozenset({"Instance"}),
    "ParticipantObjectContainsStudy": frozenset({"StudyIDs"}),
}
# AuditMessage = EventIdentification, ActiveParticipant+, AuditSourceIdentification, ParticipantObjectIdentification*
_MESSAGE_ORDER = re.compile(r"EA+SP*")
_ORDER_LETTERS: Mapping[str, str] = {
    "EventIdentification": "E",
    "ActiveParticipant": "A",
    "AuditSourceIdentification": "S",
    "ParticipantObjectIdentification": "P",
}
_XS_DATETIME = re.compile(
    r"-?(?P<date>\d{4,}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d{2}:\d{2})?"
)

_INSTANCES_ACCESSED, _EXPORT, _IMPORT, _SECURITY_ALERT = "110103", "110106", "110107", "110113"
_EVENT_MEANINGS: Mapping[str, str] = {
    _INSTANCES_ACCESSED: "DICOM Instances Accessed",
    _EXPORT: "Export",
    _IMPORT: "Import",
    _SECURITY_ALERT: "Security Alert",
}
_SOURCE_ROLE, _DESTINATION_ROLE = "110153", "110152"
_DESTINATION_MEDIA, _SOURCE_MEDIA = "110154", "110155"
_STUDY_INSTANCE_UID = "110180"
_ALERT_DESCRIPTION = "Alert Description"

_Problems = list[str]


def validate_message(xml: bytes) -> list[str]:
    """Return what keeps ``xml`` from being a conformant DICOM audit message; empty when it is one.

    Checks the structure of the A.5.1 schema with readable sentences (elements, their order and
    cardinality, the enumerated attribute values, coded values with ``csd-code``, ``codeSystemName`` and
    ``originalText``); a message these find nothing wrong with is validated against the RELAX NG schema of
    A.5.1 itself (``audit/schema/audit-message.rng``, derived from the standard's text). Then, for
    DICOM Instances Accessed, Export, Import and Security Alert, the event-specific constraints of Tables
    A.5.3.2-1, A.5.3.4-1, A.5.3.5-1 and A.5.3.11-1. Messages of other events get the general checks only.

    Parameters
    ----------
    xml
        The message, UTF-8, as sent (a single ``AuditMessage`` element).

    Returns
    -------
    list of str
        One sentence per problem, naming the element and the clause of PS3.15.
    """
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        return ["the message has a document type declaration; audit messages have none (PS3.15 A.5.1)"]
    try:
        root = ET.fromstring(xml)  # noqa: S314 - no DTD (refused above), so no entity expansion
    except ET.ParseError as exc:
        return [f"not well-formed XML: {exc} (PS3.15 A.5.1)"]
    if root.tag != "AuditMessage":
        return [f"the root element is {root.tag}, not AuditMessage (PS3.15 A.5.1)"]
    problems: _Problems = []
    _check_content_model(root, problems)
    _check_message(root, problems)
    if not problems:
        # The schema is the authority; its messages are terse, so they are given only for what the readable
        # checks above did not already name.
        problems.extend(_schema_problems(xml))
    identification = root.find("EventIdentification")
    event_code = None
    if identification is not None:
        event_id = identification.find("EventID")
        if event_id is not None and event_id.get("codeSystemName") == "DCM":
            event_code = event_id.get("csd-code")
    specific = _SPECIFIC_CHECKS.get(event_code or "")
    if specific is not None:
        specific(root, problems)
    logger.debug("audit message checked: %d problem(s)", len(problems))
    return problems


# --- A.5.1: the schema --------------------------------------------------------------------------------------


@functools.cache
def _schema() -> etree.RelaxNG:
    text = resources.files("dcmseal.audit").joinpath("schema", "audit-message.rng").read_bytes()
    return etree.RelaxNG(etree.fromstring(text, _PARSER))


# Messages are untrusted input when read back from a log: no DTD, no entities, no network.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _schema_problems(xml: bytes) -> _Problems:
    """What the RELAX NG schema of A.5.1 says of ``xml`` (already known to be well-formed, without DTD)."""
    schema = _schema()
    if schema.validate(etree.fromstring(xml, _PARSER)):
        return []
    return [f"{error.message} (line {error.line}; PS3.15 A.5.1 schema)" for error in schema.error_log]


def _check_content_model(element: ET.Element, problems: _Problems) -> None:
    allowed = _CHILDREN.get(element.tag)
    for child in element:
        if allowed is None or child.tag not in allowed:
            problems.append(f"{element.tag} may not contain {child.tag} (PS3.15 A.5.1)")
            continue
        _check_content_model(child, problems)  # leaves have no entry in _CHILDREN: no child allowed


def _check_coded(element: ET.Element, where: str, problems: _Problems) -> None:
    for attribute in ("csd-code", "codeSystemName", "originalText"):
        if not element.get(attribute):
            problems.append(f"{where}: {element.tag} has no {attribute} (PS3.15 A.5.1 CodedValueType)")


def _check_enumerated(
    element: ET.Element, attribute: str, allowed: frozenset[str], where: str, problems: _Problems
) -> None:
    value = element.get(attribute)
    if value is not None and value not in allowed:
        problems.append(f"{where}: {attribute} {value!r} is not one of {sorted(allowed, key=_numeric)}")


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (0, value)


def _check_message(root: ET.Element, problems: _Problems) -> None:
    identifications = root.findall("EventIdentification")
    if len(identifications) != 1:
        problems.append(
            f"AuditMessage has {len(identifications)} EventIdentification elements, not 1 (PS3.15 A.5.1)"
        )
    for identification in identifications:
        _check_identification(identification, problems)
    participants = root.findall("ActiveParticipant")
    if not participants:
        problems.append("AuditMessage has no ActiveParticipant; at least one is required (PS3.15 A.5.1)")
    for index, participant in enumerate(participants, start=1):
        _check_participant(participant, f"ActiveParticipant {index}", problems)
    sources = root.findall("AuditSourceIdentification")
    if len(sources) != 1:
        problems.append(
            f"AuditMessage has {len(sources)} AuditSourceIdentification elements, not 1 (PS3.15 A.5.1)"
        )
    for source in sources:
        if not source.get("AuditSourceID"):
            problems.append("AuditSourceIdentification has no AuditSourceID (PS3.15 A.5.1)")
        for type_code in source.findall("AuditSourceTypeCode"):
            if not type_code.get("csd-code"):
                problems.append(
                    "AuditSourceIdentification: AuditSourceTypeCode has no csd-code (PS3.15 A.5.1)"
                )
    for index, obj in enumerate(root.findall("ParticipantObjectIdentification"), start=1):
        _check_object(obj, f"ParticipantObjectIdentification {index}", problems)
    order = "".join(_ORDER_LETTERS.get(child.tag, "?") for child in root)
    if not _MESSAGE_ORDER.fullmatch(order) and "?" not in order:
        problems.append(
            "AuditMessage children are out of order: EventIdentification, ActiveParticipant+, "
            "AuditSourceIdentification, ParticipantObjectIdentification* (PS3.15 A.5.1)"
        )


def _check_identification(identification: ET.Element, problems: _Problems) -> None:
    where = "EventIdentification"
    action = identification.get("EventActionCode")
    if action is None:
        problems.append(f"{where} has no EventActionCode (PS3.15 A.5.3)")
    else:
        _check_enumerated(identification, "EventActionCode", _ACTION_CODES, where, problems)
    moment = identification.get("EventDateTime")
    if moment is None:
        problems.append(f"{where} has no EventDateTime (PS3.15 A.5.1)")
    else:
        problem = _datetime_problem(moment)
        if problem:
            problems.append(f"{where}: EventDateTime {moment!r} {problem}")
    if identification.get("EventOutcomeIndicator") is None:
        problems.append(f"{where} has no EventOutcomeIndicator (PS3.15 A.5.1)")
    else:
        _check_enumerated(identification, "EventOutcomeIndicator", _OUTCOMES, where, problems)
    event_ids = identification.findall("EventID")
    if len(event_ids) != 1:
        problems.append(f"{where} has {len(event_ids)} EventID elements, not 1 (PS3.15 A.5.1)")
    for coded in (*event_ids, *identification.findall("EventTypeCode")):
        _check_coded(coded, where, problems)
    for event_id in event_ids:
        meaning = _EVENT_MEANINGS.get(event_id.get("csd-code") or "")
        text = event_id.get("originalText")
        if meaning is not None and event_id.get("codeSystemName") == "DCM" and text and text != meaning:
            problems.append(
                f"{where}: EventID originalText {text!r} is not the Code Meaning {meaning!r} (CID 400)"
            )


def _datetime_problem(value: str) -> str | None:
    match = _XS_DATETIME.fullmatch(value)
    if match is None:
        return "is not an xs:dateTime (PS3.15 A.5.1)"
    if match["zone"] is None:
        return "has no time zone (PS3.15 A.5.2.5)"
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    try:
        datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{zone}")
    except ValueError:
        return "is not a valid date and time (PS3.15 A.5.1)"
    return None


def _check_participant(participant: ET.Element, where: str, problems: _Problems) -> None:
    if not participant.get("UserID"):
        problems.append(f"{where} has no UserID (PS3.15 A.5.2.1)")
    requestor = participant.get("UserIsRequestor")
    if requestor is None:
        problems.append(f"{where} has no UserIsRequestor (PS3.15 A.5.1)")
    elif requestor not in _BOOLEANS:
        problems.append(f"{where}: UserIsRequestor {requestor!r} is not an xs:boolean")
    _check_enumerated(participant, "NetworkAccessPointTypeCode", _NAP_TYPES, where, problems)
    if participant.get("NetworkAccessPointTypeCode") is not None and not participant.get(
        "NetworkAccessPointID"
    ):
        problems.append(
            f"{where} has a NetworkAccessPointTypeCode but no NetworkAccessPointID (PS3.15 A.5.3)"
        )
    for role in participant.findall("RoleIDCode"):
        _check_coded(role, where, problems)
    media = participant.findall("MediaIdentifier")
    if len(media) > 1:
        problems.append(f"{where} has {len(media)} MediaIdentifier elements, at most 1 (PS3.15 A.5.1)")
    for identifier in media:
        media_types = identifier.findall("MediaType")
        if len(media_types) != 1:
            problems.append(
                f"{where}: MediaIdentifier has {len(media_types)} MediaType elements, not 1 (PS3.15 A.5.1)"
            )
        for media_type in media_types:
            _check_coded(media_type, where, problems)


def _check_object(obj: ET.Element, where: str, problems: _Problems) -> None:
    object_id = obj.get("ParticipantObjectID")
    # An empty ID is allowed for a patient only: the data carries no Patient ID (dcmseal invents none).
    if object_id is None or (not object_id and obj.get("ParticipantObjectTypeCodeRole") != "1"):
        problems.append(f"{where} has no ParticipantObjectID (PS3.15 A.5.1)")
    if obj.get("ParticipantObjectTypeCode") is None:
        problems.append(f"{where} has no ParticipantObjectTypeCode (PS3.15 A.5.3)")
    _check_enumerated(obj, "ParticipantObjectTypeCode", _OBJECT_TYPES, where, problems)
    _check_enumerated(obj, "ParticipantObjectTypeCodeRole", _OBJECT_ROLES, where, problems)
    _check_enumerated(obj, "ParticipantObjectDataLifeCycle", _LIFE_CYCLES, where, problems)
    id_types = obj.findall("ParticipantObjectIDTypeCode")
    if len(id_types) != 1:
        problems.append(
            f"{where} has {len(id_types)} ParticipantObjectIDTypeCode elements, not 1 (PS3.15 A.5.1)"
        )
    for id_type in id_types:
        _check_coded(id_type, where, problems)
    names = obj.findall("ParticipantObjectName") + obj.findall("ParticipantObjectQuery")
    if len(names) != 1:
        problems.append(
            f"{where} has {len(names)} ParticipantObjectName/ParticipantObjectQuery elements; the schema "
            "requires exactly one of them (PS3.15 A.5.1)"
        )
    for detail in obj.findall("ParticipantObjectDetail"):
        _check_detail(detail, where, problems)
    for description in obj.findall("ParticipantObjectDescription"):
        _check_description(obj, description, where, problems)
    tags = [child.tag for child in obj]
    expected = sorted(tags, key=_OBJECT_ORDER.index) if set(tags) <= set(_OBJECT_ORDER) else tags
    if tags != expected:
        problems.append(
            f"{where}: children out of order; ParticipantObjectIDTypeCode, Name or Query, Detail*, "
            "Description* (PS3.15 A.5.1)"
        )


_OBJECT_ORDER = (
    "ParticipantObjectIDTypeCode",
    "ParticipantObjectName",
    "ParticipantObjectQuery",
    "ParticipantObjectDetail",
    "ParticipantObjectDescription",
)


def _check_detail(detail: ET.Element, where: str, problems: _Problems) -> None:
    if not detail.get("type"):
        problems.append(f"{where}: ParticipantObjectDetail has no type (PS3.15 A.5.1)")
    value = detail.get("value")
    if value is None:
        problems.append(f"{where}: ParticipantObjectDetail has no value (PS3.15 A.5.1)")
        return
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        problems.append(f"{where}: ParticipantObjectDetail value is not xs:base64Binary (PS3.15 A.5.1)")


def _check_description(obj: ET.Element, description: ET.Element, where: str, problems: _Problems) -> None:
    sop_classes = description.findall("SOPClass")
    for sop_class in sop_classes:
        count = sop_class.get("NumberOfInstances")
        if count is None or not count.lstrip("+-").isdigit():
            problems.append(
                f"{where}: SOPClass NumberOfInstances {count!r} is not an xs:integer (PS3.15 A.5.1)"
            )
    for tag in ("Encrypted", "Anonymized"):
        for flag in description.findall(tag):
            if (flag.text or "").strip() not in _BOOLEANS:
                problems.append(f"{where}: {tag} {flag.text!r} is not an xs:boolean (PS3.15 A.5.1)")
    id_type = obj.find("ParticipantObjectIDTypeCode")
    is_study = id_type is not None and id_type.get("csd-code") == _STUDY_INSTANCE_UID
    optional = ("MPPS", "Accession", "Instance", "Encrypted", "Anonymized")
    if is_study and not sop_classes and any(description.find(f".//{tag}") is not None for tag in optional):
        problems.append(
            f"{where}: a study description with optional fields needs SOPClass (PS3.15 Table A.5.2-1)"
        )


# --- A.5.3: the events --------------------------------------------------------------------------------------


def _roles(participant: ET.Element) -> set[str]:
    return {
        role.get("csd-code") or ""
        for role in participant.findall("RoleIDCode")
        if role.get("codeSystemName") == "DCM"
    }


def _is_true(participant: ET.Element) -> bool:
    return participant.get("UserIsRequestor") in {"true", "1"}


def _check_action(root: ET.Element, expected: str, clause: str, problems: _Problems) -> None:
    identification = root.find("EventIdentification")
    action = identification.get("EventActionCode") if identification is not None else None
    if action is not None and action != expected:
        problems.append(f"EventActionCode is {action!r}; {clause} requires {expected!r}")


def _check_one_requestor(root: ET.Element, clause: str, problems: _Problems) -> None:
    count = sum(_is_true(p) for p in root.findall("ActiveParticipant"))
    if count != 1:
        problems.append(
            f"{count} ActiveParticipants have UserIsRequestor true; {clause} requires exactly one"
        )


def _check_media(root: ET.Element, role: str, meaning: str, clause: str, problems: _Problems) -> None:
    media = [p for p in root.findall("ActiveParticipant") if role in _roles(p)]
    if len(media) != 1:
        problems.append(
            f"{len(media)} ActiveParticipants have RoleIDCode ({role}, DCM, {meaning!r}); {clause} requires one"
        )
    for participant in media:
        if _is_true(participant):
            problems.append(f"the {meaning} participant has UserIsRequestor true; {clause} requires false")
        if participant.find("MediaIdentifier/MediaType") is None:
            problems.append(f"the {meaning} participant has no MediaIdentifier/MediaType (CID 405); {clause}")


def _check_role_present(
    root: ET.Element, role: str, meaning: str, who: str, clause: str, problems: _Problems
) -> None:
    if not any(role in _roles(p) for p in root.findall("ActiveParticipant")):
        problems.append(
            f"no ActiveParticipant with RoleIDCode ({role}, DCM, {meaning!r}) for {who}; {clause}"
        )


def _check_patients_and_studies(root: ET.Element, clause: str, problems: _Problems) -> None:
    objects = root.findall("ParticipantObjectIdentification")
    patients = [o for o in objects if o.get("ParticipantObjectTypeCodeRole") == "1"]
    if not patients:
        problems.append(
            f"no patient ParticipantObjectIdentification (type code role 1); {clause} requires 1..N"
        )
    for patient in patients:
        if patient.get("ParticipantObjectTypeCode") not in {None, "1"}:
            problems.append(f"a patient object has ParticipantObjectTypeCode other than 1 (person); {clause}")
        id_type = patient.find("ParticipantObjectIDTypeCode")
        if id_type is not None and (id_type.get("csd-code"), id_type.get("codeSystemName")) != (
            "2",
            "RFC-3881",
        ):
            problems.append(f"a patient object's ID type is not (2, RFC-3881, 'Patient Number'); {clause}")
    for study in objects:
        id_type = study.find("ParticipantObjectIDTypeCode")
        if id_type is None or id_type.get("csd-code") != _STUDY_INSTANCE_UID:
            continue
        if study.get("ParticipantObjectTypeCode") not in {None, "2"}:
            problems.append(
                f"a study object has ParticipantObjectTypeCode other than 2 (system object); {clause}"
            )
        if study.get("ParticipantObjectTypeCodeRole") != "3":
            problems.append(
                f"a study object has ParticipantObjectTypeCodeRole other than 3 (report); {clause}"
            )


def _check_instances_accessed(root: ET.Element, problems: _Problems) -> None:
    clause = "PS3.15 Table A.5.3.2-1"
    identification = root.find("EventIdentification")
    action = identification.get("EventActionCode") if identification is not None else None
    if action is not None and action not in {"C", "R", "U", "D"}:
        problems.append(f"EventActionCode is {action!r}; {clause} requires 'C', 'R', 'U' or 'D'")
    _check_one_requestor(root, clause, problems)
    _check_patients_and_studies(root, clause, problems)
    patients = [
        o
        for o in root.findall("ParticipantObjectIdentification")
        if o.get("ParticipantObjectTypeCodeRole") == "1"
    ]
    if len(patients) > 1:
        problems.append(
            f"{len(patients)} patient objects; a DICOM Instances Accessed message names a single patient "
            "(PS3.15 A.5.3.2)"
        )


def _check_export(root: ET.Element, problems: _Problems) -> None:
    clause = "PS3.15 Table A.5.3.4-1"
    _check_action(root, "R", clause, problems)
    _check_role_present(
        root, _SOURCE_ROLE, "Source Role ID", "the user or process exporting", clause, problems
    )
    _check_media(root, _DESTINATION_MEDIA, "Destination Media", clause, problems)
    _check_one_requestor(root, "PS3.15 A.5.3.4.1", problems)
    _check_patients_and_studies(root, clause, problems)


def _check_import(root: ET.Element, problems: _Problems) -> None:
    clause = "PS3.15 Table A.5.3.5-1"
    _check_action(root, "C", clause, problems)
    _check_role_present(
        root, _DESTINATION_ROLE, "Destination Role ID", "the user or process importing", clause, problems
    )
    _check_media(root, _SOURCE_MEDIA, "Source Media", clause, problems)
    _check_one_requestor(root, "PS3.15 A.5.3.5", problems)
    _check_patients_and_studies(root, clause, problems)


def _check_security_alert(root: ET.Element, problems: _Problems) -> None:
    clause = "PS3.15 Table A.5.3.11-1"
    _check_action(root, "E", clause, problems)
    identification = root.find("EventIdentification")
    if identification is not None and identification.find("EventTypeCode") is None:
        problems.append(f"a Security Alert has no EventTypeCode (CID 403); {clause} requires one")
    for obj in root.findall("ParticipantObjectIdentification"):
        id_type = obj.find("ParticipantObjectIDTypeCode")
        is_study = id_type is not None and id_type.get("csd-code") == _STUDY_INSTANCE_UID
        if obj.get("ParticipantObjectTypeCode") != "2" or is_study:
            continue  # patients and studies may accompany an alert; the rest are Alert Subjects
        types = {detail.get("type") for detail in obj.findall("ParticipantObjectDetail")}
        if _ALERT_DESCRIPTION not in types:
            problems.append(
                f"an Alert Subject has no ParticipantObjectDetail of type {_ALERT_DESCRIPTION!r}; {clause}"
            )


_SPECIFIC_CHECKS: Mapping[str, Callable[[ET.Element, _Problems], None]] = {
    _INSTANCES_ACCESSED: _check_instances_accessed,
    _EXPORT: _check_export,
    _IMPORT: _check_import,
    _SECURITY_ALERT: _check_security_alert,
}
