"""DICOMDIR keys an instance lacks, supplied in the DICOMDIR only and deterministically (PS3.11 Table D.3-2 note)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dcmseal.media.fileset.instance import Instance
from dcmseal.media.fileset.keys import DATE_SOURCES, KEYS, TIME_SOURCES
from dcmseal.uids import INVENTED_PATIENT_ID_PREFIX, derived_uid

__all__ = ["DEFAULT_DATE", "Planner", "patient_identity", "remember_keys", "supply_key"]

# PS3.3 F.5 keys dcmseal knows how to supply for the DICOMDIR when the instance lacks them (PS3.11 Table D.3-2
# note: "either these attributes are present in the Image IOD, or they are in some other way supplied by the
# File-set Creator"); any other missing key is invented from its VR.
_STUDY_KEYS = ("StudyDate", "StudyTime", "StudyID")
_SERIES_KEYS = ("Modality", "SeriesNumber")
DEFAULT_DATE = "19000101"
_DEFAULT_TIME = "000000"
_ENUMERATED_DEFAULTS = {"CompletionFlag": "PARTIAL", "VerificationFlag": "UNVERIFIED"}
_VR_DEFAULTS = {
    "DA": DEFAULT_DATE,
    "TM": _DEFAULT_TIME,
    "DT": DEFAULT_DATE + _DEFAULT_TIME,
    "IS": "1",
    "DS": "0",
    "CS": "UNKNOWN",
    "SH": "UNKNOWN",
    "LO": "UNKNOWN",
    "ST": "UNKNOWN",
    "LT": "UNKNOWN",
}


@dataclass(slots=True)
class Planner:
    """Per-File-set memory: what each study and series record holds, so that inventions agree."""

    study_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    series_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    series_per_study: dict[str, int] = field(default_factory=dict)
    instances_per_series: dict[str, int] = field(default_factory=dict)
    patients: dict[str, tuple[tuple[str, str], Path]] = field(default_factory=dict)


def supply_key(instance: Instance, keyword: str, planner: Planner) -> str | None:
    """Give ``keyword`` a value in our view of the instance (the file is never changed).

    Returns the note to report, ``""`` when the value is the one its existing STUDY or SERIES record already
    holds (nothing new for the user), or None when dcmseal cannot supply the key.
    """
    study = _study_key(instance)
    if keyword in _STUDY_KEYS and keyword in planner.study_keys.get(study, {}):
        # The STUDY record already exists: reuse its value, nothing new is invented.
        instance.set(keyword, planner.study_keys[study][keyword])
        return ""
    series = instance.text("SeriesInstanceUID")
    if keyword in _SERIES_KEYS and keyword in planner.series_keys.get(series, {}):
        instance.set(keyword, planner.series_keys[series][keyword])
        return ""

    value: str | None
    if keyword == "PatientID":
        value = _invent_patient_id(instance)
        why = "from a hash of the patient's name and birth date (or of the study when there is no name)"
    elif keyword == "StudyID":
        value = _digest(study)[:8]
        why = "from a hash of the Study Instance UID"
    elif keyword == "StudyDate":
        value = _first_value(instance, DATE_SOURCES) or DEFAULT_DATE
        why = "from the series, acquisition or content date (19000101 when none is known)"
    elif keyword == "StudyTime":
        value = _first_value(instance, TIME_SOURCES) or _DEFAULT_TIME
        why = "from the series, acquisition or content time (000000 when none is known)"
    elif keyword == "SeriesNumber":
        value = str(planner.series_per_study.get(study, 0) + 1)
        why = "from the order of the series in the input"
    elif keyword == "InstanceNumber":
        value = str(planner.instances_per_series.get(series, 0) + 1)
        why = "from the order of the instance in its series in the input"
    elif keyword == "Modality":
        value, why = "OT", "Other"
    elif keyword == "SeriesInstanceUID":
        value = derived_uid("dcmseal-series", study, instance.text("Modality"))
        why = "derived from the Study Instance UID and the modality"
    elif keyword in _ENUMERATED_DEFAULTS:
        value, why = _ENUMERATED_DEFAULTS[keyword], "the most cautious enumerated value"
    else:
        value, why = _by_vr(instance, keyword)
        if value is None:
            return None
    instance.set(keyword, value)
    return f"{keyword} is empty or missing; the DICOMDIR uses the invented value {value!r} ({why})"


def _by_vr(instance: Instance, keyword: str) -> tuple[str | None, str]:
    vr = KEYS[keyword][1]
    if vr == "SQ":
        return None, ""  # a required sequence cannot be made up
    if vr == "UI":
        return derived_uid(
            "dcmseal", keyword, instance.header.sop_instance_uid
        ), "derived from the SOP Instance UID"
    if vr == "DA":
        return _first_value(instance, DATE_SOURCES) or DEFAULT_DATE, "from the instance's other dates"
    if vr == "TM":
        return _first_value(instance, TIME_SOURCES) or _DEFAULT_TIME, "from the instance's other times"
    value = _VR_DEFAULTS.get(vr)
    return value, f"the placeholder for VR {vr}"


def _first_value(instance: Instance, keywords: Sequence[str]) -> str:
    for keyword in keywords:
        value = instance.text(keyword).strip()
        if value:
            return value
    return ""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()


def _study_key(instance: Instance) -> str:
    # A STUDY record is keyed by its Study Instance UID, else by the instance it references.
    return instance.text("StudyInstanceUID") or instance.header.sop_instance_uid


def patient_identity(instance: Instance) -> tuple[str, str]:
    name = "^".join(part.strip() for part in instance.text_or_empty("PatientName").upper().split("^"))
    return name.rstrip("^ "), instance.text_or_empty("PatientBirthDate").strip()


def _invent_patient_id(instance: Instance) -> str:
    name, birth = patient_identity(instance)
    basis = f"{name}|{birth}" if name else f"study|{_study_key(instance)}"
    return f"{INVENTED_PATIENT_ID_PREFIX}{_digest(basis)[:8]}"


def remember_keys(planner: Planner, instance: Instance) -> None:
    """Record the keys of the records this instance created or joined, and count it in its series."""
    study = _study_key(instance)
    series = instance.text_or_empty("SeriesInstanceUID")
    if series and series not in planner.series_keys:
        planner.series_per_study[study] = planner.series_per_study.get(study, 0) + 1
    study_keys = planner.study_keys.setdefault(study, {})
    for keyword in _STUDY_KEYS:
        if keyword not in study_keys:
            value = instance.text_or_empty(keyword)
            if value:
                study_keys[keyword] = value
    series_keys = planner.series_keys.setdefault(series, {})
    for keyword in _SERIES_KEYS:
        if keyword not in series_keys:
            value = instance.text_or_empty(keyword)
            if value:
                series_keys[keyword] = value
    planner.instances_per_series[series] = planner.instances_per_series.get(series, 0) + 1
