"""The keys a File-set plan reads from each instance (PS3.3 F.5 record keys, PS3.11 additional keys), by tag and VR."""

from __future__ import annotations

from pydicom.datadict import dictionary_VR, tag_for_keyword

from dcmseal.media.profiles import Profile

__all__ = [
    "DATE_SOURCES",
    "ENCAPSULATED_DOCUMENT",
    "FOUR_LEVELS",
    "KEYS",
    "PRESENT",
    "RECORD_KEYS",
    "RT_PLAN_LABEL",
    "STOP_AFTER",
    "TIME_SOURCES",
    "WANTED",
]

# Where a Study Date or Time the instance lacks is taken from (:mod:`.inventions`): read for the plan.
DATE_SOURCES = ("SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate")
TIME_SOURCES = ("SeriesTime", "AcquisitionTime", "ContentTime", "InstanceCreationTime")

# pydicom's record creators (pydicom.fileset DIRECTORY_RECORDERS) as data, so that the records keep the keys and
# the order of checks they had: per record type, the Type 1 keys checked first, then the record's keys, each
# "req" (checked above, copied), "opt" (copied, or an empty element when absent), "cond" (copied only when
# present, and then it must not be empty) or "type3" (a Type 3 key PS3.3 F.5 allows beyond pydicom's: copied
# when present and not empty, never a reason to refuse an instance).
_Fields = tuple[tuple[str, str], ...]
_GENERIC_CONTENT: tuple[tuple[str, ...], _Fields] = (
    ("InstanceNumber", "ContentDate", "ContentTime"),
    (("InstanceNumber", "req"), ("ContentDate", "req"), ("ContentTime", "req")),
)
_GENERIC_CONTENT_ID: tuple[tuple[str, ...], _Fields] = (
    ("InstanceNumber", "ContentDate", "ContentTime", "ContentLabel"),
    (
        ("InstanceNumber", "req"),
        ("ContentDate", "req"),
        ("ContentTime", "req"),
        ("ContentLabel", "req"),
        ("ContentDescription", "opt"),
        ("ContentCreatorName", "opt"),
    ),
)
_EMPTY: tuple[tuple[str, ...], _Fields] = ((), ())
RECORD_KEYS: dict[str, tuple[tuple[str, ...], _Fields]] = {
    "PATIENT": (("PatientID",), (("PatientName", "opt"), ("PatientID", "req"))),
    "STUDY": (
        ("StudyDate", "StudyTime", "StudyID"),
        (
            ("StudyDate", "req"),
            ("StudyTime", "req"),
            ("StudyDescription", "opt"),
            ("StudyInstanceUID", "cond"),
            ("StudyID", "req"),
            ("AccessionNumber", "opt"),
        ),
    ),
    "SERIES": (
        ("Modality", "SeriesInstanceUID", "SeriesNumber"),
        (
            ("Modality", "req"),
            ("SeriesInstanceUID", "req"),
            ("SeriesNumber", "req"),
            # What a viewer's series list shows without opening the series (the medium's own viewer does).
            ("SeriesDescription", "type3"),
            ("SeriesDate", "type3"),
            ("SeriesTime", "type3"),
            ("BodyPartExamined", "type3"),
        ),
    ),
    "IMAGE": (("InstanceNumber",), (("InstanceNumber", "req"),)),
    "RT DOSE": (
        ("InstanceNumber", "DoseSummationType"),
        (("InstanceNumber", "req"), ("DoseSummationType", "req")),
    ),
    "RT STRUCTURE SET": (
        ("InstanceNumber", "StructureSetLabel"),
        (
            ("InstanceNumber", "req"),
            ("StructureSetLabel", "req"),
            ("StructureSetDate", "opt"),
            ("StructureSetTime", "opt"),
        ),
    ),
    "RT PLAN": (
        ("InstanceNumber", "RTPlanLabel"),
        (("InstanceNumber", "req"), ("RTPlanLabel", "req"), ("RTPlanDate", "opt"), ("RTPlanTime", "opt")),
    ),
    "RT TREAT RECORD": (
        ("InstanceNumber",),
        (("InstanceNumber", "req"), ("TreatmentDate", "opt"), ("TreatmentTime", "opt")),
    ),
    "PRESENTATION": (
        ("PresentationCreationDate", "PresentationCreationTime", "InstanceNumber", "ContentLabel"),
        (
            ("PresentationCreationDate", "req"),
            ("PresentationCreationTime", "req"),
            ("InstanceNumber", "req"),
            ("ContentLabel", "req"),
            ("ContentDescription", "opt"),
            ("ContentCreatorName", "opt"),
            ("ReferencedSeriesSequence", "cond"),
            ("BlendingSequence", "cond"),
        ),
    ),
    "WAVEFORM": _GENERIC_CONTENT,
    "SR DOCUMENT": (
        (
            "InstanceNumber",
            "CompletionFlag",
            "VerificationFlag",
            "ContentDate",
            "ContentTime",
            "ConceptNameCodeSequence",
        ),
        (
            ("InstanceNumber", "req"),
            ("CompletionFlag", "req"),
            ("VerificationFlag", "req"),
            ("ContentDate", "req"),
            ("ContentTime", "req"),
            ("VerificationDateTime", "cond"),
            ("ConceptNameCodeSequence", "req"),
            ("ContentSequence", "cond"),
        ),
    ),
    "KEY OBJECT DOC": (
        ("InstanceNumber", "ContentDate", "ContentTime", "ConceptNameCodeSequence"),
        (
            ("ContentDate", "req"),
            ("ContentTime", "req"),
            ("InstanceNumber", "req"),
            ("ConceptNameCodeSequence", "req"),
            ("ContentSequence", "cond"),
        ),
    ),
    "SPECTROSCOPY": (
        (
            "ImageType",
            "ContentDate",
            "ContentTime",
            "InstanceNumber",
            "NumberOfFrames",
            "Rows",
            "Columns",
            "DataPointRows",
            "DataPointColumns",
        ),
        (
            ("ImageType", "req"),
            ("ContentDate", "req"),
            ("ContentTime", "req"),
            ("InstanceNumber", "req"),
            ("ReferencedImageEvidenceSequence", "cond"),
            ("NumberOfFrames", "req"),
            ("Rows", "req"),
            ("Columns", "req"),
            ("DataPointRows", "req"),
            ("DataPointColumns", "req"),
        ),
    ),
    "RAW DATA": _GENERIC_CONTENT,
    "REGISTRATION": _GENERIC_CONTENT_ID,
    "FIDUCIAL": _GENERIC_CONTENT_ID,
    "HANGING PROTOCOL": (
        (
            "HangingProtocolCreator",
            "HangingProtocolCreationDateTime",
            "HangingProtocolDefinitionSequence",
            "NumberOfPriorsReferenced",
        ),
        (
            ("HangingProtocolCreator", "req"),
            ("HangingProtocolCreationDateTime", "req"),
            ("HangingProtocolDefinitionSequence", "req"),
            ("NumberOfPriorsReferenced", "req"),
            ("HangingProtocolUserIdentificationCodeSequence", "opt"),
        ),
    ),
    "ENCAP DOC": (
        ("InstanceNumber", "MIMETypeOfEncapsulatedDocument"),
        (
            ("ContentDate", "opt"),
            ("ContentTime", "opt"),
            ("InstanceNumber", "req"),
            ("DocumentTitle", "opt"),
            ("HL7InstanceIdentifier", "cond"),
            ("ConceptNameCodeSequence", "opt"),
            ("MIMETypeOfEncapsulatedDocument", "req"),
        ),
    ),
    "VALUE MAP": _GENERIC_CONTENT_ID,
    "STEREOMETRIC": _EMPTY,
    "PALETTE": (("ContentLabel",), (("ContentLabel", "req"), ("ContentDescription", "opt"))),
    "IMPLANT": (
        ("Manufacturer", "ImplantName", "ImplantPartNumber"),
        (
            ("Manufacturer", "req"),
            ("ImplantName", "req"),
            ("ImplantSize", "cond"),
            ("ImplantPartNumber", "req"),
        ),
    ),
    "IMPLANT ASSY": (
        ("ImplantAssemblyTemplateName", "Manufacturer", "ProcedureTypeCodeSequence"),
        (
            ("ImplantAssemblyTemplateName", "req"),
            ("Manufacturer", "req"),
            ("ProcedureTypeCodeSequence", "req"),
        ),
    ),
    "IMPLANT GROUP": (
        ("ImplantTemplateGroupName", "ImplantTemplateGroupIssuer"),
        (("ImplantTemplateGroupName", "req"), ("ImplantTemplateGroupIssuer", "req")),
    ),
    "PLAN": _EMPTY,
    "MEASUREMENT": _GENERIC_CONTENT_ID,
    "SURFACE": _GENERIC_CONTENT_ID,
    "SURFACE SCAN": (("ContentDate", "ContentTime"), (("ContentDate", "req"), ("ContentTime", "req"))),
    "TRACT": _GENERIC_CONTENT_ID,
    "ASSESSMENT": (
        ("InstanceNumber", "InstanceCreationDate"),
        (("InstanceNumber", "req"), ("InstanceCreationDate", "req"), ("InstanceCreationTime", "opt")),
    ),
    "RADIOTHERAPY": (
        ("InstanceNumber",),
        (
            ("InstanceNumber", "req"),
            ("UserContentLabel", "cond"),
            ("UserContentLongLabel", "cond"),
            ("ContentDescription", "opt"),
            ("ContentCreatorName", "opt"),
        ),
    ),
}
FOUR_LEVELS = ("PATIENT", "STUDY", "SERIES")
# Keywords read for the plan itself: identity, inventions (dates and times), SR verification, H.3-2 lookups.
_PLANNING_KEYWORDS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "PatientName",
    "PatientBirthDate",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    *DATE_SOURCES,
    *TIME_SOURCES,
    "VerifyingObserverSequence",
    "SharedFunctionalGroupsSequence",
)
# Presence only (its value can be large and is never read): it makes the leaf an ENCAP DOC record.
ENCAPSULATED_DOCUMENT = 0x00420011
RT_PLAN_LABEL = 0x300A0002


def _keyword_table() -> dict[str, tuple[int, str]]:
    keywords: set[str] = set(_PLANNING_KEYWORDS)
    for checks, fields in RECORD_KEYS.values():
        keywords.update(checks)
        keywords.update(keyword for keyword, _ in fields)
    for profile in Profile:
        for names in profile.additional_keys.values():
            keywords.update(names)
    table: dict[str, tuple[int, str]] = {}
    for keyword in sorted(keywords):
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise RuntimeError(f"{keyword} is not in pydicom's data dictionary")
        table[keyword] = (tag, dictionary_VR(tag))
    return table


KEYS = _keyword_table()
WANTED = frozenset(tag for tag, _ in KEYS.values())
PRESENT = frozenset({ENCAPSULATED_DOCUMENT, RT_PLAN_LABEL})
STOP_AFTER = max(WANTED | PRESENT)
