"""The directory records of one instance (PS3.3 F.5), built as pydicom's record creators build them."""

from __future__ import annotations

import logging

from pydicom.fileset import (  # data: SOP class -> record type
    _FOUR_LEVEL_SOP_CLASSES,
    _SINGLE_LEVEL_SOP_CLASSES,
)
from pydicom.uid import UID

from dcmseal.errors import InputError
from dcmseal.media.dicomdir import (
    DirectoryRecord,
    encode_element,
    encode_text,
)
from dcmseal.media.fileset.instance import PYDICOM_VALUE_ERRORS, Instance
from dcmseal.media.fileset.keys import (
    ENCAPSULATED_DOCUMENT,
    FOUR_LEVELS,
    KEYS,
    RECORD_KEYS,
    RT_PLAN_LABEL,
)
from dcmseal.media.profiles import Profile

__all__ = [
    "add_profile_keys",
    "align_with_meta",
    "first_missing",
    "insert_records",
    "record_types_of",
    "tidy_document_record",
]

logger = logging.getLogger(__name__)

# Table H.3-2: these keys may sit in the first item of a Shared Functional Groups Sequence macro.
_FUNCTIONAL_GROUP_KEYS = frozenset(
    {"ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "ReferencedImageSequence"}
)


def align_with_meta(instance: Instance) -> str:
    """Make our view of the data set carry the File Meta UIDs; return what differed, "" when nothing did.

    PS3.3 F.3.2.2: Referenced SOP Class/Instance UID in File are the File Meta (0002,0002)/(0002,0003) values,
    which is also what a reader checks the DICOMDIR against (:func:`read_file_facts`).
    """
    differs = []
    header = instance.header
    for keyword, meta_value in (
        ("SOPClassUID", header.sop_class_uid),
        ("SOPInstanceUID", header.sop_instance_uid),
    ):
        value = instance.text(keyword)
        if value and value != meta_value:
            differs.append(f"{keyword} {value} (File Meta: {meta_value})")
        instance.set(keyword, meta_value)
    if not differs:
        return ""
    return f"the data set's {' and '.join(differs)} differ; the DICOMDIR references the File Meta values"


def _leaf_type(instance: Instance) -> str:
    """pydicom's ``_four_level_record_type``: the record type of the instance under its SERIES record."""
    modality = instance.text("Modality")
    if modality in ("RTINTENT", "RTSEGANN", "RTRAD"):
        return "RADIOTHERAPY"
    if modality == "PLAN":
        return "PLAN"
    if ENCAPSULATED_DOCUMENT in instance.header.present:
        return "ENCAP DOC"
    if RT_PLAN_LABEL in instance.header.present:
        return "RT PLAN"
    return str(_FOUR_LEVEL_SOP_CLASSES.get(UID(instance.header.sop_class_uid), "IMAGE"))


def record_types_of(instance: Instance) -> tuple[str, ...]:
    single = _SINGLE_LEVEL_SOP_CLASSES.get(UID(instance.header.sop_class_uid))
    if single is not None:
        return (str(single),)
    return (*FOUR_LEVELS, _leaf_type(instance))


def first_missing(instance: Instance, record_types: tuple[str, ...]) -> tuple[str, str, str] | None:
    """The first key a record creator would refuse, as (record type, keyword, problem), in pydicom's order."""
    for record_type in record_types:
        checks, fields = RECORD_KEYS[record_type]
        for keyword in checks:
            if not instance.has(keyword):
                return record_type, keyword, "is missing"
            if instance.is_empty(keyword):
                return record_type, keyword, "cannot be empty"
        for keyword, mode in fields:
            if mode != "cond" or not instance.has(keyword) or not instance.is_empty(keyword):
                continue
            if KEYS[keyword][1] == "SQ":
                # An optional sequence present but empty: the record leaves it out, as if it were absent.
                instance.removed.add(keyword)
                continue
            return record_type, keyword, "cannot be empty"
        if record_type == "STUDY" and not instance.has("StudyInstanceUID"):
            # pydicom would key the STUDY record by a UID only the leaf has; PS3.3 F.5.2 needs the study's own.
            return record_type, "StudyInstanceUID", "is missing"
    return None


def _record(instance: Instance, record_type: str, four_levels: bool) -> DirectoryRecord:
    """One directory record from the instance, as pydicom's creator for ``record_type`` makes it."""
    _, fields = RECORD_KEYS[record_type]
    elements: dict[int, bytes] = {}
    if four_levels and instance.has("SpecificCharacterSet"):
        elements[KEYS["SpecificCharacterSet"][0]] = instance.element("SpecificCharacterSet")
    for keyword, mode in fields:
        if mode == "cond" and not instance.has(keyword):
            continue
        if mode == "type3" and (not instance.has(keyword) or instance.is_empty(keyword)):
            continue
        elements[KEYS[keyword][0]] = instance.element(keyword)
    if record_type not in FOUR_LEVELS:
        header = instance.header
        for tag, value in (
            (0x00041510, header.sop_class_uid),
            (0x00041511, header.sop_instance_uid),
            (0x00041512, header.transfer_syntax_uid),
        ):
            elements[tag] = encode_element(tag, "UI", value.encode("ascii", "replace"))
    return DirectoryRecord(record_type, _key(instance, record_type), elements)


def insert_records(
    root: DirectoryRecord, instance: Instance, record_types: tuple[str, ...]
) -> tuple[DirectoryRecord, ...]:
    """Link the instance's records under ``root``, joining the PATIENT/STUDY/SERIES records with the same keys.

    A record that already exists is not built again: the first instance's record stands (as in pydicom). The
    new records are all built before any is linked, so an instance whose keys do not encode leaves no trace.

    Raises
    ------
    InputError
        A record key does not decode or encode.
    """
    path: list[DirectoryRecord] = []
    parent = root
    levels = record_types[:-1]
    while len(path) < len(levels):
        found = parent.by_key.get(_key(instance, levels[len(path)]))
        if found is None:
            break
        path.append(found)
        parent = found
    new = [_record(instance, record_type, True) for record_type in levels[len(path) :]]
    leaf = _record(instance, record_types[-1], len(record_types) > 1)
    for record in new:
        parent = parent.child(record)
        path.append(parent)
    parent.append(leaf)
    path.append(leaf)
    return tuple(path)


def _key(instance: Instance, record_type: str) -> str:
    """The key that makes a record unique among its siblings (PS3.3 F.5.1-F.5.3; pydicom's RecordNode.key)."""
    if record_type == "PATIENT":
        return instance.text("PatientID")
    if record_type == "STUDY":
        return instance.text("StudyInstanceUID")
    if record_type == "SERIES":
        return instance.text("SeriesInstanceUID")
    return instance.header.sop_instance_uid


def tidy_document_record(record: DirectoryRecord, instance: Instance) -> None:
    """Trim SR DOCUMENT and KEY OBJECT DOC records to what PS3.3 F.5 allows.

    pydicom's creators copy the whole Content Sequence, i.e. the report (and its identifiers), into the
    DICOMDIR; the record keys hold only the Document Title's modifiers, the items with relationship HAS CONCEPT
    MOD. For a VERIFIED report, Verification DateTime (Type 1C in the record) lives in the instance's Verifying
    Observer Sequence.
    """
    if record.record_type not in ("SR DOCUMENT", "KEY OBJECT DOC"):
        return
    content = KEYS["ContentSequence"][0]
    if content in record.elements:
        del record.elements[content]
        try:
            items = instance.value("ContentSequence") or []
            modifiers = [item for item in items if item.get("RelationshipType") == "HAS CONCEPT MOD"]  # type: ignore[attr-defined]
            if modifiers:
                record.elements[content] = instance.pydicom_element(content, "SQ", modifiers)
        except (InputError, *PYDICOM_VALUE_ERRORS):
            logger.debug(
                "%s: Content Sequence does not decode; the record goes without it", instance.header.path
            )
    verification = KEYS["VerificationDateTime"][0]
    if instance.text_or_empty("VerificationFlag") == "VERIFIED" and not record.has_value(verification):
        try:
            observers = instance.value("VerifyingObserverSequence") or []
            stamps = [
                str(item.VerificationDateTime)
                for item in observers  # type: ignore[attr-defined]
                if item.get("VerificationDateTime")
            ]
        except (InputError, *PYDICOM_VALUE_ERRORS):
            stamps = []
        if stamps:
            record.elements[verification] = encode_text(verification, "DT", max(stamps), instance.encodings)


def add_profile_keys(path: tuple[DirectoryRecord, ...], instance: Instance, profile: Profile) -> None:
    """Copy the profile's additional keys (PS3.11 Tables D.3-2, H.3-2) into the instance's records."""
    keys = profile.additional_keys
    for record in reversed(path):
        for keyword in keys.get(record.record_type, ()):
            tag = KEYS[keyword][0]
            if record.has_value(tag):
                continue  # set by the record creator or by an earlier instance of the same patient or series
            try:
                if instance.has(keyword) and not instance.is_empty(keyword):
                    record.elements[tag] = instance.element(keyword)
                    continue
                nested = _functional_group_value(instance, keyword)
                if nested is not None:
                    record.elements[tag] = instance.pydicom_element(tag, KEYS[keyword][1], nested)
            except (InputError, *PYDICOM_VALUE_ERRORS):
                # An optional key (Type 1C "if present") that does not decode stays out of the record.
                logger.debug("%s: %s does not decode; left out of the record", instance.header.path, keyword)


def _functional_group_value(instance: Instance, keyword: str) -> object | None:
    """``keyword``'s non-empty value in the first Shared Functional Groups item's macros (Table H.3-2)."""
    if keyword not in _FUNCTIONAL_GROUP_KEYS or not instance.has("SharedFunctionalGroupsSequence"):
        return None
    groups = instance.value("SharedFunctionalGroupsSequence") or []
    for group in list(groups)[:1]:  # type: ignore[call-overload]
        for element in group:
            if element.VR != "SQ":
                continue
            for item in element.value[:1]:
                nested: object | None = item.get(keyword)
                if nested is not None and nested != "" and nested != []:
                    return nested
    return None
