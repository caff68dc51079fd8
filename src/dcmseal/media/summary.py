"""What a File-set holds, for the registry and the audit trail: patients, studies, SOP classes, counts."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

__all__ = ["InstanceFacts", "StudyFacts", "da_date", "summarize"]


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


def da_date(value: str) -> date | None:
    """A DA value (YYYYMMDD) as a date; None when it is empty or not a date (the registry records no guess)."""
    try:
        return datetime.strptime(value.strip(), "%Y%m%d").date() if value.strip() else None
    except ValueError:
        return None
