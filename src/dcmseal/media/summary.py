"""What a File-set holds, for the registry and the audit trail: patients, studies, SOP classes, counts."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from dcmseal.audit import MediaType, PatientRef
from dcmseal.media.fileset import is_invented_patient_id
from dcmseal.media.iso import is_iso_image, iso_volume

__all__ = ["InstanceFacts", "StudyFacts", "audit_medium", "audit_patients", "summarize"]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceFacts:
    """The few attributes of one instance that a summary needs."""

    patient_id: str
    study_instance_uid: str
    sop_class_uid: str
    modality: str = ""
    study_date: str = ""  # DA (YYYYMMDD), "" when unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyFacts:
    """One study of a File-set: who, what, how many of each SOP class."""

    study_instance_uid: str
    patient_id: str
    modalities: tuple[str, ...]
    sop_class_counts: tuple[tuple[str, int], ...]
    study_date: str = ""  # DA (YYYYMMDD) of the first instance that has one, "" when none has

    @property
    def instance_count(self) -> int:
        return sum(n for _, n in self.sop_class_counts)


def summarize(instances: Iterable[InstanceFacts]) -> tuple[StudyFacts, ...]:
    """Group instances by study, in first-seen order."""
    patients: dict[str, str] = {}
    modalities: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    dates: dict[str, str] = {}
    for item in instances:
        patients.setdefault(item.study_instance_uid, item.patient_id)
        if item.study_date:
            dates.setdefault(item.study_instance_uid, item.study_date)
        if item.modality and item.modality not in modalities[item.study_instance_uid]:
            modalities[item.study_instance_uid].append(item.modality)
        counts[item.study_instance_uid][item.sop_class_uid] += 1
    return tuple(
        StudyFacts(
            study_instance_uid=uid,
            patient_id=patient,
            modalities=tuple(modalities[uid]),
            sop_class_counts=tuple(sorted(counts[uid].items())),
            study_date=dates.get(uid, ""),
        )
        for uid, patient in patients.items()
    )


def audit_patients(patient_ids: Iterable[str]) -> list[PatientRef]:
    """The patients an Export or Import audit message names, each once, in first-seen order.

    Data without a Patient ID, and a Patient ID dcmseal invented for a DICOMDIR record, are an unidentified
    patient (an empty ParticipantObjectID): an invented value is not the patient's identifier. With no
    patient at all, one unidentified patient stands for the data (the A.5.3 tables require 1..N).
    """
    patients: dict[str, PatientRef] = {}
    for patient_id in patient_ids:
        known = patient_id.strip() if not is_invented_patient_id(patient_id) else ""
        patients.setdefault(known, PatientRef(patient_id=known) if known else PatientRef.unidentified())
    return list(patients.values()) or [PatientRef.unidentified()]


def audit_medium(medium: Path, fileset_id: str = "") -> tuple[str, MediaType]:
    """The UserID and the CID 405 MediaType an Import message gives the medium at ``medium``.

    An image is named by its Volume Identifier (dcmseal's agrees with the File-set ID, PS3.12 F.1.1) and is a
    DVD when it carries a UDF bridge (the DVD profiles, PS3.12 Annex P), else a CD; a folder (a USB stick or a
    copy of a medium) is named by its File-set ID. Only a medium that has neither is named by its file name.
    """
    if is_iso_image(medium):
        volume_id, udf = iso_volume(medium)
        return volume_id or fileset_id or medium.name, MediaType.DVD if udf else MediaType.CD
    return fileset_id or medium.name or str(medium), MediaType.USB_DISK_EMULATION


def da_date(value: str) -> date | None:
    """A DA value (YYYYMMDD) as a date; None when it is empty or not a date (the registry records no guess)."""
    try:
        return datetime.strptime(value.strip(), "%Y%m%d").date() if value.strip() else None
    except ValueError:
        return None
