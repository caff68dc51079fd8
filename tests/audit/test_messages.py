"""Tests of the audit event model and its PS3.15 A.5.1 XML encoding."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcmseal.audit import (
    ALERT_TYPE_SECURITY_CONFIGURATION,
    AccessedInstance,
    AuditEvent,
    AuditUser,
    EventActionCode,
    MediaType,
    PatientRef,
    StudyRef,
    export_event,
    instances_accessed_events,
    to_xml,
    validate_message,
)
from tests.audit.events import (
    BUILDERS,
    CT_IMAGE_STORAGE,
    FIXED_TIME,
    FIXED_TIME_XS,
    MEDIUM_ID,
    MEDIUM_LABEL,
    PATIENT_ID,
    PATIENT_NAME,
    SECONDARY_CAPTURE,
    SOURCE,
    STUDY_UID,
    fixed_now,
    make_accessed,
    make_alert,
    make_export,
    make_import,
    parse_xml,
)

KINDS = sorted(BUILDERS)


def _parse(event: AuditEvent) -> ET.Element:
    return parse_xml(to_xml(event))


def _participant_with_role(root: ET.Element, code: str) -> ET.Element:
    (match,) = [p for p in root.findall("ActiveParticipant") if code in _role_codes(p)]
    return match


def _role_codes(participant: ET.Element) -> list[str]:
    return [role.get("csd-code", "") for role in participant.findall("RoleIDCode")]


def _object_with_id_type(root: ET.Element, code: str) -> ET.Element:
    matches = []
    for candidate in root.findall("ParticipantObjectIdentification"):
        id_type = candidate.find("ParticipantObjectIDTypeCode")
        assert id_type is not None, "every ParticipantObjectIdentification has a ParticipantObjectIDTypeCode"
        if id_type.get("csd-code") == code:
            matches.append(candidate)
    (match,) = matches
    return match


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_event_validates(kind: str) -> None:
    assert validate_message(to_xml(BUILDERS[kind]())) == []


@pytest.mark.parametrize(
    ("kind", "code", "meaning", "action"),
    [
        ("instances-accessed", "110103", "DICOM Instances Accessed", "C"),  # PS3.15 Table A.5.3.2-1
        ("export", "110106", "Export", "R"),  # PS3.15 Table A.5.3.4-1
        ("import", "110107", "Import", "C"),  # PS3.15 Table A.5.3.5-1
        ("security-alert", "110113", "Security Alert", "E"),  # PS3.15 Table A.5.3.11-1
    ],
)
def test_event_id_and_action_code_follow_the_standard(
    kind: str, code: str, meaning: str, action: str
) -> None:
    identification = _parse(BUILDERS[kind]()).find("EventIdentification")
    assert identification is not None
    assert identification.get("EventActionCode") == action
    event_id = identification.find("EventID")
    assert event_id is not None
    assert event_id.attrib == {"csd-code": code, "codeSystemName": "DCM", "originalText": meaning}


@pytest.mark.parametrize("kind", KINDS)
def test_xml_is_one_utf8_line_without_declaration(kind: str) -> None:
    xml = to_xml(BUILDERS[kind](description="first line\nsecond line\r\nthird"))
    assert b"\n" not in xml
    assert b"\r" not in xml
    assert xml.startswith(b"<AuditMessage>")
    assert xml.endswith(b"</AuditMessage>")
    xml.decode("utf-8")
    assert parse_xml(xml).tag == "AuditMessage"


def test_event_date_time_carries_a_time_zone() -> None:
    identification = _parse(make_export()).find("EventIdentification")
    assert identification is not None
    written = identification.get("EventDateTime")
    assert written == FIXED_TIME_XS
    parsed = datetime.fromisoformat(written)
    assert parsed.tzinfo is not None
    assert parsed == FIXED_TIME


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        make_export(now=lambda: datetime(2024, 5, 6, 7, 8, 9))


def test_line_breaks_in_text_round_trip() -> None:
    text = "quarantined:\n  CT1\r\n  CT2"
    description = _parse(make_import(description=text)).find("EventIdentification/EventOutcomeDescription")
    assert description is not None
    assert description.text == text


def test_characters_xml_cannot_carry_become_replacement_characters() -> None:
    # ISO 2022 escape sequences survive in badly decoded Person Names; a surrogate comes from a
    # surrogateescape-decoded file name.
    name = "Yamada^Tarou=\x1b$B;3ED\x1b(B^\udcff"
    xml = to_xml(make_export(patients=[PatientRef(patient_id=PATIENT_ID, name=name)]))
    assert validate_message(xml) == []
    written = _object_with_id_type(parse_xml(xml), "2").findtext("ParticipantObjectName")
    assert written == "Yamada^Tarou=\ufffd$B;3ED\ufffd(B^\ufffd"


@given(
    name=st.text(max_size=40),
    description=st.text(max_size=80),
    user_id=st.text(min_size=1, max_size=20),
)
def test_any_text_gives_one_valid_line(name: str, description: str, user_id: str) -> None:
    event = make_export(
        user=AuditUser(user_id=user_id),
        patients=[PatientRef(patient_id=PATIENT_ID, name=name)],
        description=description,
    )
    xml = to_xml(event)
    assert b"\n" not in xml
    assert validate_message(xml) == []


def test_export_participants_and_objects() -> None:
    root = _parse(make_export())
    participants = root.findall("ActiveParticipant")
    user = participants[0]
    assert _role_codes(user) == ["110153"]
    assert [p.get("UserIsRequestor") for p in participants] == ["true", "false", "false"]
    assert user.get("UserID") == "alice@hospital.example"
    assert user.get("UserName") == "Alice Adams"
    process = participants[1]
    assert _role_codes(process) == ["110153", "110150"]
    assert process.get("UserName") == "dcmseal"
    medium = _participant_with_role(root, "110154")
    assert _role_codes(medium) == ["110152", "110154"]
    assert medium.get("UserID") == MEDIUM_ID
    assert medium.get("AlternativeUserID") == MEDIUM_LABEL
    media_type = medium.find("MediaIdentifier/MediaType")
    assert media_type is not None
    assert media_type.attrib == {"csd-code": "110033", "codeSystemName": "DCM", "originalText": "DVD"}
    source = root.find("AuditSourceIdentification")
    assert source is not None
    assert source.get("AuditSourceID") == SOURCE.audit_source_id

    patient = _object_with_id_type(root, "2")
    assert patient.get("ParticipantObjectID") == PATIENT_ID
    assert (patient.get("ParticipantObjectTypeCode"), patient.get("ParticipantObjectTypeCodeRole")) == (
        "1",
        "1",
    )
    assert patient.findtext("ParticipantObjectName") == PATIENT_NAME
    study = _object_with_id_type(root, "110180")
    assert study.get("ParticipantObjectID") == STUDY_UID
    assert (study.get("ParticipantObjectTypeCode"), study.get("ParticipantObjectTypeCodeRole")) == ("2", "3")
    counts = {s.get("UID"): s.get("NumberOfInstances") for s in study.iter("SOPClass")}
    assert counts == {CT_IMAGE_STORAGE: "120", SECONDARY_CAPTURE: "2"}
    assert study.findtext("ParticipantObjectDescription/Encrypted") == "true"


def test_import_participants() -> None:
    root = _parse(make_import())
    user, process = root.findall("ActiveParticipant")[:2]
    assert (_role_codes(user), user.get("UserIsRequestor")) == (["110152"], "true")
    assert (_role_codes(process), process.get("UserIsRequestor")) == (["110152", "110150"], "false")
    medium = _participant_with_role(root, "110155")
    assert _role_codes(medium) == ["110153", "110155"]
    assert medium.get("UserIsRequestor") == "false"
    media_type = medium.find("MediaIdentifier/MediaType")
    assert media_type is not None
    assert media_type.get("csd-code") == "110030"
    identification = root.find("EventIdentification")
    assert identification is not None
    assert identification.get("EventOutcomeIndicator") == "4"
    assert identification.findtext("EventOutcomeDescription") == "2 instances quarantined"


def test_security_alert_names_the_medium_and_the_reason() -> None:
    root = _parse(make_alert())
    type_code = root.find("EventIdentification/EventTypeCode")
    assert type_code is not None
    assert type_code.attrib == {
        "csd-code": "110132",
        "codeSystemName": "DCM",
        "originalText": "Use of Restricted Function",
    }
    medium = _object_with_id_type(root, "MEDIUM")
    assert medium.get("ParticipantObjectID") == MEDIUM_ID
    assert (medium.get("ParticipantObjectTypeCode"), medium.get("ParticipantObjectTypeCodeRole")) == (
        "2",
        "13",
    )
    details = {
        d.get("type"): base64.b64decode(d.get("value", "")) for d in medium.findall("ParticipantObjectDetail")
    }
    assert details == {
        "Alert Description": b"escrow key used to recover the medium password",
        "Recovery Reason": b"recipient lost the password; emergency department",
    }
    assert root.find("EventIdentification/EventOutcomeDescription") is None


def test_security_alert_without_medium_describes_the_outcome() -> None:
    event = make_alert(
        medium_id=None, details=None, patients=(), alert_type=ALERT_TYPE_SECURITY_CONFIGURATION
    )
    root = _parse(event)
    assert root.findtext("EventIdentification/EventOutcomeDescription") == (
        "escrow key used to recover the medium password"
    )
    assert root.find("ParticipantObjectIdentification") is None
    assert validate_message(to_xml(event)) == []


def test_details_need_a_medium() -> None:
    with pytest.raises(ValueError, match="medium_id"):
        make_alert(medium_id=None)


def test_an_unknown_patient_name_is_an_empty_name() -> None:
    # The schema requires ParticipantObjectName or ParticipantObjectQuery: an empty name invents nothing.
    root = _parse(make_export(patients=[PatientRef(patient_id=PATIENT_ID)]))
    name = _object_with_id_type(root, "2").find("ParticipantObjectName")
    assert name is not None
    assert not name.text


def test_an_unidentified_patient_has_an_empty_id_not_an_invented_one() -> None:
    event = make_export(patients=[PatientRef.unidentified()])
    root = _parse(event)
    patient = _object_with_id_type(root, "2")
    assert patient.get("ParticipantObjectID") == ""
    assert patient.get("ParticipantObjectTypeCodeRole") == "1"
    assert validate_message(to_xml(event)) == []


def test_an_object_needs_a_name_or_a_query() -> None:
    from dcmseal.audit import ID_TYPE_URI, ParticipantObject

    with pytest.raises(ValueError, match="either a ParticipantObjectName or a ParticipantObjectQuery"):
        ParticipantObject(object_id="x", id_type_code=ID_TYPE_URI)
    with pytest.raises(ValueError, match="not both"):
        ParticipantObject(object_id="x", id_type_code=ID_TYPE_URI, name="n", query=b"q")
    with pytest.raises(ValueError, match="needs a ParticipantObjectID"):
        ParticipantObject(object_id="", id_type_code=ID_TYPE_URI, name="n")


def test_export_needs_a_patient() -> None:
    with pytest.raises(ValueError, match="at least one patient"):
        make_export(patients=[])


def test_application_none_leaves_the_process_out() -> None:
    root = _parse(make_export(application=None))
    assert len(root.findall("ActiveParticipant")) == 2
    assert validate_message(to_xml(make_export(application=None))) == []


def test_recipients_are_destinations_and_not_requestors() -> None:
    root = _parse(make_export(recipients=[AuditUser(user_id="dr.who@clinic.example")]))
    recipient = next(
        p for p in root.findall("ActiveParticipant") if p.get("UserID") == "dr.who@clinic.example"
    )
    assert _role_codes(recipient) == ["110152"]
    assert recipient.get("UserIsRequestor") == "false"


@pytest.mark.parametrize(
    ("media_type", "code", "meaning"),
    [
        (MediaType.USB_DISK_EMULATION, "110030", "USB Disk Emulation"),
        (MediaType.CD, "110032", "CD"),
        (MediaType.DVD, "110033", "DVD"),
        (MediaType.EMAIL, "110031", "Email"),
        (MediaType.URI, "110037", "URI"),
    ],
)
def test_media_types_are_cid_405_codes(media_type: MediaType, code: str, meaning: str) -> None:
    assert (media_type.code.csd_code, media_type.code.code_system_name, media_type.code.original_text) == (
        code,
        "DCM",
        meaning,
    )


def test_study_from_counts_sorts_sop_classes() -> None:
    study = StudyRef.from_counts(STUDY_UID, {SECONDARY_CAPTURE: 1, CT_IMAGE_STORAGE: 3})
    assert [(s.uid, s.number_of_instances) for s in study.sop_classes] == [
        (CT_IMAGE_STORAGE, 3),
        (SECONDARY_CAPTURE, 1),
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda: repr(PatientRef(patient_id=PATIENT_ID, name=PATIENT_NAME)),
        lambda: repr(make_export()),
        lambda: repr(make_alert()),
    ],
)
def test_reprs_hide_patient_identifiers(make: Callable[[], str]) -> None:
    text = make()
    assert PATIENT_NAME not in text
    assert PATIENT_ID not in text


def test_event_builders_take_keywords_only() -> None:
    with pytest.raises(TypeError):
        export_event(AuditUser(user_id="x"))  # type: ignore[call-arg]  # positional on purpose: the refusal


@pytest.mark.parametrize("action", [EventActionCode.CREATE, EventActionCode.READ, EventActionCode.UPDATE])
def test_instances_accessed_says_its_action(action: EventActionCode) -> None:
    identification = _parse(make_accessed(action=action)).find("EventIdentification")
    assert identification is not None
    assert identification.get("EventActionCode") == action.value


def test_instances_accessed_refuses_execute_and_the_fixed_kinds_refuse_another_action() -> None:
    with pytest.raises(ValueError, match=r"C, R, U or D"):
        make_accessed(action=EventActionCode.EXECUTE)
    with pytest.raises(ValueError, match="EventActionCode of export"):
        replace(make_export(), action=EventActionCode.CREATE)


def test_instances_accessed_events_are_one_per_patient() -> None:
    ct, pdf = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.104.1"
    instances = [
        AccessedInstance(patient_id="P1", study_instance_uid="1.2.3", sop_class_uid=ct),
        AccessedInstance(patient_id="P2", study_instance_uid="1.2.4", sop_class_uid=ct),
        AccessedInstance(patient_id="P1", study_instance_uid="1.2.3", sop_class_uid=ct),
        AccessedInstance(patient_id="P1", study_instance_uid="1.2.5", sop_class_uid=pdf),
        AccessedInstance(patient_id="", study_instance_uid="", sop_class_uid=ct),
    ]
    events = instances_accessed_events(
        instances, user=AuditUser(user_id="u"), action=EventActionCode.UPDATE, now=fixed_now
    )
    assert [[o.object_id for o in e.participant_objects] for e in events] == [
        ["1.2.3", "1.2.5", "P1"],
        ["1.2.4", "P2"],
        [""],
    ]
    first_study = events[0].participant_objects[0].descriptions[0].sop_classes
    assert [(c.uid, c.number_of_instances) for c in first_study] == [(ct, 2)]
    for event in events:
        assert validate_message(to_xml(event)) == []
