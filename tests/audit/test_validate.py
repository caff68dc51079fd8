"""Tests of validate_message: every required part of PS3.15 A.5.1 and A.5.3, removed or broken, is caught."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from dcmseal.audit import to_xml, validate_message
from tests.audit.events import BUILDERS, make_alert, make_export, make_import, parse_xml

Mutation = Callable[[ET.Element], None]


def _mutated(xml: bytes, mutation: Mutation) -> bytes:
    root = parse_xml(xml)
    mutation(root)
    encoded: bytes = ET.tostring(root, encoding="utf-8")
    return encoded


def _first(root: ET.Element, path: str) -> ET.Element:
    found = root.find(path)
    assert found is not None, path
    return found


def _with_role(root: ET.Element, code: str) -> list[ET.Element]:
    return [p for p in root.findall("ActiveParticipant") if any(r.get("csd-code") == code for r in p)]


def _object(root: ET.Element, id_type: str) -> ET.Element:
    for obj in root.findall("ParticipantObjectIdentification"):
        if _first(obj, "ParticipantObjectIDTypeCode").get("csd-code") == id_type:
            return obj
    raise AssertionError(id_type)


def _drop_attribute(path: str, attribute: str) -> Mutation:
    def mutation(root: ET.Element) -> None:
        del _first(root, path).attrib[attribute]

    return mutation


def _set_attribute(path: str, attribute: str, value: str) -> Mutation:
    def mutation(root: ET.Element) -> None:
        _first(root, path).set(attribute, value)

    return mutation


def _drop_all(path: str) -> Mutation:
    def mutation(root: ET.Element) -> None:
        targets = {id(e) for e in root.findall(path) + root.findall(f".//{path}")}
        for parent in list(root.iter()):
            for child in list(parent):
                if id(child) in targets:
                    parent.remove(child)

    return mutation


def _drop_role(code: str) -> Mutation:
    def mutation(root: ET.Element) -> None:
        for participant in _with_role(root, code):
            for role in [r for r in participant.findall("RoleIDCode") if r.get("csd-code") == code]:
                participant.remove(role)

    return mutation


def _drop_media_identifier(code: str) -> Mutation:
    def mutation(root: ET.Element) -> None:
        (medium,) = _with_role(root, code)
        medium.remove(_first(medium, "MediaIdentifier"))

    return mutation


def _drop_object(id_type: str) -> Mutation:
    def mutation(root: ET.Element) -> None:
        root.remove(_object(root, id_type))

    return mutation


def _object_attribute(id_type: str, attribute: str, value: str | None) -> Mutation:
    def mutation(root: ET.Element) -> None:
        obj = _object(root, id_type)
        if value is None:
            del obj.attrib[attribute]
        else:
            obj.set(attribute, value)

    return mutation


def _duplicate_identification(root: ET.Element) -> None:
    root.insert(1, _first(root, "EventIdentification"))


def _source_first(root: ET.Element) -> None:
    source = _first(root, "AuditSourceIdentification")
    root.remove(source)
    root.insert(0, source)


def _unknown_child(root: ET.Element) -> None:
    ET.SubElement(_first(root, "ActiveParticipant"), "Comment")


def _name_before_id_type(root: ET.Element) -> None:
    patient = _object(root, "2")
    name = _first(patient, "ParticipantObjectName")
    patient.remove(name)
    patient.insert(0, name)


def _media_identifier_without_type(root: ET.Element) -> None:
    media_identifier = _first(root, ".//MediaIdentifier")
    media_identifier.remove(_first(media_identifier, "MediaType"))


def _requestor(code: str, value: str) -> Mutation:
    def mutation(root: ET.Element) -> None:
        for participant in _with_role(root, code):
            participant.set("UserIsRequestor", value)

    return mutation


def _second_patient(root: ET.Element) -> None:
    patient = _object(root, "2")
    twin = ET.fromstring(ET.tostring(patient))  # noqa: S314 - our own output
    twin.set("ParticipantObjectID", "another patient")
    root.append(twin)


def _study_description_without_sop_class(root: ET.Element) -> None:
    description = _first(_object(root, "110180"), "ParticipantObjectDescription")
    for sop_class in description.findall("SOPClass"):
        description.remove(sop_class)


def _drop_alert_description(root: ET.Element) -> None:
    medium = _object(root, "MEDIUM")
    for detail in medium.findall("ParticipantObjectDetail"):
        if detail.get("type") == "Alert Description":
            medium.remove(detail)


# (id, kind, mutation, a fragment of the expected problem)
CASES: list[tuple[str, str, Mutation, str]] = [
    # PS3.15 A.5.1: the message
    ("root-renamed", "export", lambda r: setattr(r, "tag", "Audit"), "root element is Audit"),
    ("no-identification", "export", _drop_all("EventIdentification"), "0 EventIdentification"),
    ("two-identifications", "export", _duplicate_identification, "2 EventIdentification"),
    ("no-action", "export", _drop_attribute("EventIdentification", "EventActionCode"), "no EventActionCode"),
    (
        "bad-action",
        "export",
        _set_attribute("EventIdentification", "EventActionCode", "X"),
        "EventActionCode 'X'",
    ),
    ("no-datetime", "export", _drop_attribute("EventIdentification", "EventDateTime"), "no EventDateTime"),
    (
        "datetime-without-zone",
        "export",
        _set_attribute("EventIdentification", "EventDateTime", "2024-05-06T05:08:09.123"),
        "no time zone",
    ),
    (
        "datetime-not-xs",
        "export",
        _set_attribute("EventIdentification", "EventDateTime", "yesterday"),
        "not an xs:dateTime",
    ),
    (
        "datetime-impossible",
        "export",
        _set_attribute("EventIdentification", "EventDateTime", "2024-13-40T05:08:09Z"),
        "not a valid date",
    ),
    (
        "no-outcome",
        "export",
        _drop_attribute("EventIdentification", "EventOutcomeIndicator"),
        "no EventOutcome",
    ),
    (
        "bad-outcome",
        "export",
        _set_attribute("EventIdentification", "EventOutcomeIndicator", "3"),
        "EventOutcomeIndicator '3'",
    ),
    ("no-event-id", "export", _drop_all("EventID"), "0 EventID"),
    ("event-id-no-code", "export", _drop_attribute("EventIdentification/EventID", "csd-code"), "no csd-code"),
    (
        "event-id-no-system",
        "export",
        _drop_attribute("EventIdentification/EventID", "codeSystemName"),
        "no codeSystemName",
    ),
    (
        "event-id-no-text",
        "export",
        _drop_attribute("EventIdentification/EventID", "originalText"),
        "no originalText",
    ),
    (
        "event-id-wrong-meaning",
        "export",
        _set_attribute("EventIdentification/EventID", "originalText", "Import"),
        "not the Code Meaning 'Export'",
    ),
    ("no-participant", "export", _drop_all("ActiveParticipant"), "no ActiveParticipant"),
    ("no-user-id", "export", _drop_attribute("ActiveParticipant", "UserID"), "has no UserID"),
    (
        "no-requestor-flag",
        "export",
        _drop_attribute("ActiveParticipant", "UserIsRequestor"),
        "no UserIsRequestor",
    ),
    (
        "requestor-not-boolean",
        "export",
        _set_attribute("ActiveParticipant", "UserIsRequestor", "yes"),
        "not an xs:boolean",
    ),
    (
        "role-no-text",
        "export",
        _drop_attribute("ActiveParticipant/RoleIDCode", "originalText"),
        "RoleIDCode has no originalText",
    ),
    ("media-type-missing", "export", _media_identifier_without_type, "0 MediaType"),
    (
        "access-point-type-without-id",
        "export",
        _set_attribute("ActiveParticipant", "NetworkAccessPointTypeCode", "1"),
        "no NetworkAccessPointID",
    ),
    (
        "bad-access-point-type",
        "export",
        _set_attribute("ActiveParticipant", "NetworkAccessPointTypeCode", "9"),
        "NetworkAccessPointTypeCode '9'",
    ),
    ("no-audit-source", "export", _drop_all("AuditSourceIdentification"), "0 AuditSourceIdentification"),
    (
        "no-audit-source-id",
        "export",
        _drop_attribute("AuditSourceIdentification", "AuditSourceID"),
        "no AuditSourceID",
    ),
    ("no-object-id", "export", _object_attribute("2", "ParticipantObjectID", None), "no ParticipantObjectID"),
    (
        "no-object-type",
        "export",
        _object_attribute("110180", "ParticipantObjectTypeCode", None),
        "no ParticipantObjectTypeCode",
    ),
    (
        "bad-object-type",
        "export",
        _object_attribute("110180", "ParticipantObjectTypeCode", "7"),
        "TypeCode '7'",
    ),
    (
        "no-object-id-type",
        "export",
        _drop_all("ParticipantObjectIdentification/ParticipantObjectIDTypeCode"),
        "0 ParticipantObjectIDTypeCode",
    ),
    (
        "object-id-type-no-system",
        "export",
        _drop_attribute("ParticipantObjectIdentification/ParticipantObjectIDTypeCode", "codeSystemName"),
        "ParticipantObjectIDTypeCode has no codeSystemName",
    ),
    ("unknown-element", "export", _unknown_child, "ActiveParticipant may not contain Comment"),
    ("message-out-of-order", "export", _source_first, "out of order"),
    ("object-out-of-order", "export", _name_before_id_type, "children out of order"),
    (
        "instances-not-integer",
        "export",
        _set_attribute(".//SOPClass", "NumberOfInstances", "many"),
        "not an xs:integer",
    ),
    ("study-without-sop-class", "export", _study_description_without_sop_class, "needs SOPClass"),
    (
        "detail-not-base64",
        "security-alert",
        _set_attribute(".//ParticipantObjectDetail", "value", "not base64!"),
        "not xs:base64Binary",
    ),
    # PS3.15 Table A.5.3.4-1: Export
    (
        "export-action",
        "export",
        _set_attribute("EventIdentification", "EventActionCode", "C"),
        "requires 'R'",
    ),
    ("export-no-source-role", "export", _drop_role("110153"), "Source Role ID"),
    ("export-no-destination-media", "export", _drop_role("110154"), "Destination Media"),
    (
        "export-no-media-identifier",
        "export",
        _drop_media_identifier("110154"),
        "no MediaIdentifier/MediaType",
    ),
    ("export-media-requestor", "export", _requestor("110154", "true"), "requires false"),
    (
        "export-no-requestor",
        "export",
        _requestor("110153", "false"),
        "0 ActiveParticipants have UserIsRequestor",
    ),
    ("export-no-patient", "export", _drop_object("2"), "no patient"),
    (
        "export-patient-type",
        "export",
        _object_attribute("2", "ParticipantObjectTypeCode", "2"),
        "other than 1",
    ),
    (
        "export-patient-role",
        "export",
        _object_attribute("2", "ParticipantObjectTypeCodeRole", "6"),
        "no patient",
    ),
    (
        "export-study-role",
        "export",
        _object_attribute("110180", "ParticipantObjectTypeCodeRole", "4"),
        "other than 3",
    ),
    # PS3.15 Table A.5.3.2-1: DICOM Instances Accessed
    (
        "accessed-action",
        "instances-accessed",
        _set_attribute("EventIdentification", "EventActionCode", "E"),
        "requires 'C', 'R', 'U' or 'D'",
    ),
    ("accessed-no-patient", "instances-accessed", _drop_object("2"), "no patient"),
    ("accessed-two-patients", "instances-accessed", _second_patient, "a single patient"),
    (
        "accessed-no-requestor",
        "instances-accessed",
        _set_attribute("ActiveParticipant", "UserIsRequestor", "false"),
        "0 ActiveParticipants have UserIsRequestor",
    ),
    # PS3.15 Table A.5.3.5-1: Import
    (
        "import-action",
        "import",
        _set_attribute("EventIdentification", "EventActionCode", "R"),
        "requires 'C'",
    ),
    ("import-no-destination-role", "import", _drop_role("110152"), "Destination Role ID"),
    ("import-no-source-media", "import", _drop_role("110155"), "Source Media"),
    (
        "import-no-media-identifier",
        "import",
        _drop_media_identifier("110155"),
        "no MediaIdentifier/MediaType",
    ),
    (
        "import-two-requestors",
        "import",
        _requestor("110155", "true"),
        "2 ActiveParticipants have UserIsRequestor",
    ),
    ("import-no-patient", "import", _drop_object("2"), "no patient"),
    # PS3.15 Table A.5.3.11-1: Security Alert
    (
        "alert-action",
        "security-alert",
        _set_attribute("EventIdentification", "EventActionCode", "R"),
        "requires 'E'",
    ),
    ("alert-no-type", "security-alert", _drop_all("EventIdentification/EventTypeCode"), "no EventTypeCode"),
    ("alert-no-description", "security-alert", _drop_alert_description, "Alert Description"),
]


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_unmutated_messages_have_no_problem(kind: str) -> None:
    assert validate_message(to_xml(BUILDERS[kind]())) == []


@pytest.mark.parametrize(("kind", "mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_broken_requirement_is_reported(kind: str, mutation: Mutation, expected: str) -> None:
    problems = validate_message(_mutated(to_xml(BUILDERS[kind]()), mutation))
    assert any(expected in problem for problem in problems), problems


def test_malformed_xml_is_a_problem_not_an_exception() -> None:
    (problem,) = validate_message(b"<AuditMessage><EventIdentification>")
    assert "not well-formed" in problem


def test_document_type_declarations_are_refused() -> None:
    xml = b'<!DOCTYPE AuditMessage [<!ENTITY a "aaaa">]>' + to_xml(make_export())
    (problem,) = validate_message(xml)
    assert "document type declaration" in problem


def test_other_events_get_the_general_checks_only() -> None:
    # (110100, DCM, "Application Activity") has its own table (A.5.3.1) that we do not check.
    xml = _mutated(
        to_xml(make_alert()), _set_attribute("EventIdentification/EventID", "csd-code", "110100")
    ).replace(b'originalText="Security Alert"', b'originalText="Application Activity"')
    assert validate_message(xml) == []
    assert validate_message(_mutated(xml, _drop_attribute("AuditSourceIdentification", "AuditSourceID")))


def test_problems_name_the_clause() -> None:
    problems = validate_message(_mutated(to_xml(make_import()), _drop_role("110155")))
    assert problems
    assert all("PS3.15" in p or "CID" in p for p in problems)


def test_several_problems_are_all_reported() -> None:
    def break_twice(root: ET.Element) -> None:
        del _first(root, "EventIdentification").attrib["EventDateTime"]
        del _first(root, "AuditSourceIdentification").attrib["AuditSourceID"]

    problems = validate_message(_mutated(to_xml(make_export()), break_twice))
    assert len(problems) == 2
