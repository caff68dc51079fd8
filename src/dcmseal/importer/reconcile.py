"""Import reconciliation (IHE RAD Import Reconciliation Workflow): foreign patient and accession to local ones.

A mapping file, CSV (with a header row) or JSON (an array of objects with the same keys), lists:

=====================  ==========================================================================================
``foreign_patient_id``  Patient ID (0010,0020) as it is on the medium
``foreign_issuer``      Issuer of Patient ID (0010,0021) on the medium; empty matches a patient with any issuer
``patient_id``          the local Patient ID; with ``patient_name`` (required together), optional ``birth_date``
                        (YYYYMMDD), ``sex`` (M, F, O) and ``issuer`` (the local Issuer of Patient ID)
``foreign_accession``   an Accession Number (0008,0050) on the medium, with ``accession``, the local one; scoped
                        to ``foreign_patient_id`` when the row names one
=====================  ==========================================================================================

Coercion keeps every value it replaces: an Original Attributes Sequence (0400,0561) item (PS3.3 C.12.1.1.9) with
the old values in its Modified Attributes Sequence, Reason "COERCE", the Modifying System, the date and time, and
the Source of Previous Values; the foreign ID joins Other Patient IDs Sequence (0010,1002) with its issuer.
A patient the map does not name is never guessed: the pipeline holds that study for a person.

:func:`reconcile_studies` decides each foreign study's local identity, in this order: a choice a person made
earlier (``dcmseal reconcile --interactive``, kept in the import journal), the mapping file, then the Modality
Worklist (:mod:`dcmseal.importer.worklist`, one C-FIND per study); what none of them settles is held.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from dcmseal.errors import InputError
from dcmseal.importer.worklist import (
    ForeignStudy,
    Held,
    Matched,
    MatchRules,
    WorklistEntry,
    WorklistService,
    find_local_orders,
    normalise_date,
    parse_match_rules,
)

__all__ = [
    "MAPPING_COLUMNS",
    "AccessionMapping",
    "PatientMapping",
    "ReconciledStudy",
    "ReconciliationMap",
    "StudyDecision",
    "StudyHeld",
    "add_original_attributes",
    "coerce_dataset",
    "load_reconciliation",
    "reconcile_studies",
    "summarise_decisions",
]

MAPPING_COLUMNS = (
    "foreign_patient_id",
    "foreign_issuer",
    "patient_id",
    "patient_name",
    "birth_date",
    "sex",
    "issuer",
    "foreign_accession",
    "accession",
)
#: Reason for the Attribute Modification (0400,0565), defined term for import reconciliation (PS3.3 C.12.1.1.9).
REASON_COERCE = "COERCE"
#: Type of Patient ID (0010,0022) in Other Patient IDs Sequence items: the only kind a medium gives us.
TYPE_OF_PATIENT_ID = "TEXT"
_DATE = re.compile(r"^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")
_SEXES = frozenset({"M", "F", "O"})
#: LO and the Patient ID: 64 characters, no backslash (the value separator), no control characters.
_LO = re.compile(r"^[^\\\x00-\x1f\x7f]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientMapping:
    """One foreign patient and the local patient it is."""

    foreign_id: str
    foreign_issuer: str | None
    patient_id: str
    patient_name: str
    birth_date: str | None
    sex: str | None
    issuer: str | None
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessionMapping:
    """One foreign accession number and the local one (for one foreign patient when ``foreign_patient_id``)."""

    foreign: str
    local: str
    foreign_patient_id: str | None
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationMap:
    """A loaded mapping file."""

    source: Path
    patients: tuple[PatientMapping, ...]
    accessions: tuple[AccessionMapping, ...]

    def patient_for(self, patient_id: str, issuer: str | None) -> PatientMapping | None:
        """The mapping of the foreign patient ``(patient_id, issuer)``: an exact issuer first, then one without."""
        loose = None
        for mapping in self.patients:
            if mapping.foreign_id != patient_id:
                continue
            if mapping.foreign_issuer is None:
                loose = loose or mapping
            elif mapping.foreign_issuer == (issuer or None):
                return mapping
        return loose

    def accession_for(self, accession: str, patient_id: str) -> str | None:
        """The local accession of the foreign ``accession`` of ``patient_id``: a patient-scoped row first."""
        loose = None
        for mapping in self.accessions:
            if mapping.foreign != accession:
                continue
            if mapping.foreign_patient_id is None:
                loose = loose or mapping.local
            elif mapping.foreign_patient_id == patient_id:
                return mapping.local
        return loose


def load_reconciliation(path: Path) -> ReconciliationMap:
    """Read a CSV or JSON mapping file (by its first non-blank character: ``[`` or ``{`` is JSON).

    Raises
    ------
    InputError
        The file cannot be read, or a row is malformed: one line naming the file, the line and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read the mapping file: {exc.strerror or exc}", path=path) from None
    except UnicodeDecodeError:
        raise InputError("the mapping file is not UTF-8 text", path=path) from None
    rows = _json_rows(text, path) if text.lstrip()[:1] in ("[", "{") else _csv_rows(text, path)
    patients: dict[tuple[str, str | None], PatientMapping] = {}
    accessions: dict[tuple[str, str | None], AccessionMapping] = {}
    for line, row in rows:
        made = False
        if row.get("patient_id"):
            mapping = _patient(row, line, path)
            key = (mapping.foreign_id, mapping.foreign_issuer)
            previous = patients.get(key)
            if previous is not None and _values(previous) != _values(mapping):
                raise _error(
                    path,
                    line,
                    f"foreign patient {mapping.foreign_id!r} is mapped differently on line {previous.line}",
                )
            patients.setdefault(key, mapping)
            made = True
        if row.get("foreign_accession"):
            accession = _accession(row, line, path)
            key2 = (accession.foreign, accession.foreign_patient_id)
            seen = accessions.get(key2)
            if seen is not None and seen.local != accession.local:
                raise _error(
                    path,
                    line,
                    f"foreign accession {accession.foreign!r} is mapped differently on line {seen.line}",
                )
            accessions.setdefault(key2, accession)
            made = True
        if not made:
            raise _error(
                path,
                line,
                "a row needs patient_id (with foreign_patient_id and patient_name) or foreign_accession",
            )
    if not patients and not accessions:
        raise InputError("the mapping file maps nothing", path=path)
    return ReconciliationMap(
        source=path, patients=tuple(patients.values()), accessions=tuple(accessions.values())
    )


def _values(mapping: PatientMapping) -> tuple[object, ...]:
    return (mapping.patient_id, mapping.patient_name, mapping.birth_date, mapping.sex, mapping.issuer)


def _error(path: Path, line: int, problem: str) -> InputError:
    return InputError(f"line {line}: {problem}", path=path)


def _patient(row: dict[str, str], line: int, path: Path) -> PatientMapping:
    foreign = row.get("foreign_patient_id", "")
    if not foreign:
        raise _error(path, line, "patient_id needs the foreign_patient_id it replaces")
    for key in ("foreign_patient_id", "patient_id", "foreign_issuer", "issuer"):
        if row.get(key) and not _LO.match(row[key]):
            raise _error(
                path, line, f"{key} must be 1 to 64 characters, without backslash or control characters"
            )
    name = row.get("patient_name", "")
    if not name:
        raise _error(path, line, "patient_name is required with patient_id (the local name, e.g. Doe^Jane)")
    if len(name) > 64 * 5 or any(ord(c) < 0x20 for c in name) or "\\" in name:
        raise _error(path, line, "patient_name is not a valid person name")
    birth = row.get("birth_date") or None
    if birth is not None and not _DATE.match(birth):
        raise _error(path, line, f"birth_date {birth!r} is not a date YYYYMMDD")
    sex = (row.get("sex") or "").upper() or None
    if sex is not None and sex not in _SEXES:
        raise _error(path, line, f"sex {row.get('sex')!r} must be M, F or O")
    return PatientMapping(
        foreign_id=foreign,
        foreign_issuer=row.get("foreign_issuer") or None,
        patient_id=row["patient_id"],
        patient_name=name,
        birth_date=birth,
        sex=sex,
        issuer=row.get("issuer") or None,
        line=line,
    )


def _accession(row: dict[str, str], line: int, path: Path) -> AccessionMapping:
    local = row.get("accession", "")
    if not local:
        raise _error(path, line, "foreign_accession needs the local accession it becomes")
    for key in ("foreign_accession", "accession"):
        if len(row[key]) > 16 or "\\" in row[key] or any(ord(c) < 0x20 for c in row[key]):
            raise _error(path, line, f"{key} must be 1 to 16 characters (SH), without backslash")
    return AccessionMapping(
        foreign=row["foreign_accession"],
        local=local,
        foreign_patient_id=row.get("foreign_patient_id") or None,
        line=line,
    )


def _check_columns(columns: Iterable[str], path: Path, line: int) -> None:
    unknown = [c for c in columns if c not in MAPPING_COLUMNS]
    if unknown:
        raise _error(
            path,
            line,
            f"unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(MAPPING_COLUMNS)}",
        )


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict[str, str]]]:
    lines = [
        (n, raw)
        for n, raw in enumerate(text.splitlines(), start=1)
        if raw.strip() and not raw.lstrip().startswith("#")
    ]
    if not lines:
        raise InputError("the mapping file is empty", path=path)
    reader: Iterator[list[str]] = csv.reader(raw for _n, raw in lines)
    try:
        header = [c.strip().lower() for c in next(reader)]
        _check_columns(header, path, lines[0][0])
        rows: list[tuple[int, dict[str, str]]] = []
        for (number, _raw), cells in zip(lines[1:], reader, strict=True):
            if len(cells) > len(header):
                raise _error(path, number, f"{len(cells)} fields, the header has {len(header)}")
            rows.append((number, {k: v.strip() for k, v in zip(header, cells, strict=False) if v.strip()}))
    except csv.Error as exc:
        raise InputError(f"not a CSV mapping file: {exc}", path=path) from None
    return rows


def _json_rows(text: str, path: Path) -> list[tuple[int, dict[str, str]]]:
    """Decode a JSON array of objects element by element, so an error names the element's line."""
    decoder = json.JSONDecoder()
    try:
        document = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise _error(path, exc.lineno, f"not valid JSON: {exc.msg}") from None
    start = text.index("[") if isinstance(document, list) else -1
    if isinstance(document, dict):
        if set(document) != {"mappings"} or not isinstance(document["mappings"], list):
            raise _error(path, 1, 'a JSON mapping file is an array of objects, or {"mappings": [...]}')
        start = text.index("[")
    elif not isinstance(document, list):
        raise _error(path, 1, "a JSON mapping file is an array of objects")
    rows: list[tuple[int, dict[str, str]]] = []
    index = start + 1
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index >= len(text) or text[index] == "]":
            break
        line = text.count("\n", 0, index) + 1
        item, index = decoder.raw_decode(text, index)
        if not isinstance(item, dict):
            raise _error(path, line, "each mapping is a JSON object")
        _check_columns(item, path, line)
        row: dict[str, str] = {}
        for key, value in item.items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise _error(path, line, f"{key} must be a string")
            if value.strip():
                row[key] = value.strip()
        rows.append((line, row))
    return rows


# --- coercion -----------------------------------------------------------------------------------------------


def coerce_dataset(
    ds: Dataset,
    patient: PatientMapping,
    accession: str | None,
    *,
    request_attributes: Mapping[str, str] | None = None,
) -> list[DataElement]:
    """Coerce the patient (and the accession when ``accession``) of ``ds`` in place; return the old elements.

    The returned elements (deep copies, as they were) are what :func:`add_original_attributes` keeps. The
    foreign Patient ID and its issuer are added to Other Patient IDs Sequence (0010,1002). ``request_attributes``
    (from a worklist order: Requested Procedure ID, Scheduled Procedure Step ID...) become the one item of
    Request Attributes Sequence (0040,0275). Local values outside the data set's character set switch it to
    UTF-8 (ISO_IR 192), every text value decoded first so nothing is written in the wrong encoding.
    """
    originals: list[DataElement] = []
    new_text = [patient.patient_id, patient.patient_name, patient.issuer or "", accession or ""]
    new_text += list((request_attributes or {}).values())
    if not all(t.isascii() for t in new_text) and _charset(ds) != "ISO_IR 192":
        ds.decode()  # every text value to str with the old character set, before it changes
        if "SpecificCharacterSet" in ds:
            originals.append(copy.deepcopy(ds["SpecificCharacterSet"]))
        ds.SpecificCharacterSet = "ISO_IR 192"
    foreign_id = str(ds.get("PatientID", "") or "")
    foreign_issuer = str(ds.get("IssuerOfPatientID", "") or "") or None

    def keep(keyword: str) -> None:
        if keyword in ds:
            originals.append(copy.deepcopy(ds[keyword]))

    def set_value(keyword: str, value: str) -> None:
        if str(ds.get(keyword, "") or "") != value:
            keep(keyword)
            setattr(ds, keyword, value)

    def remove(keyword: str) -> None:
        if keyword in ds:
            keep(keyword)
            del ds[keyword]

    set_value("PatientID", patient.patient_id)
    set_value("PatientName", patient.patient_name)
    if patient.birth_date is not None:
        set_value("PatientBirthDate", patient.birth_date)
    if patient.sex is not None:
        set_value("PatientSex", patient.sex)
    if patient.issuer is not None:
        set_value("IssuerOfPatientID", patient.issuer)
        remove("IssuerOfPatientIDQualifiersSequence")
    elif foreign_issuer is not None:
        # The foreign issuer names the foreign assigning authority: wrong for the local ID.
        remove("IssuerOfPatientID")
        remove("IssuerOfPatientIDQualifiersSequence")
    if accession is not None and str(ds.get("AccessionNumber", "") or "") != accession:
        set_value("AccessionNumber", accession)
        remove("IssuerOfAccessionNumberSequence")
    if request_attributes:
        request = Dataset()
        for keyword, value in request_attributes.items():
            setattr(request, keyword, value)
        keep("RequestAttributesSequence")
        ds.RequestAttributesSequence = DicomSequence([request])
    if foreign_id and foreign_id != patient.patient_id:
        item = Dataset()
        item.PatientID = foreign_id
        if foreign_issuer is not None:
            item.IssuerOfPatientID = foreign_issuer
        item.TypeOfPatientID = TYPE_OF_PATIENT_ID
        existing = ds.get("OtherPatientIDsSequence")
        already = existing is not None and any(
            str(i.get("PatientID", "")) == foreign_id
            and (str(i.get("IssuerOfPatientID", "")) or None) == foreign_issuer
            for i in existing
        )
        if not already:
            keep("OtherPatientIDsSequence")
            ds.OtherPatientIDsSequence = DicomSequence([*(existing or []), item])
    return originals


def _charset(ds: Dataset) -> str:
    value = ds.get("SpecificCharacterSet", "") or ""
    return str(value if isinstance(value, str) else "\\".join(value)).strip()


def add_original_attributes(
    ds: Dataset,
    originals: Sequence[DataElement],
    *,
    when: str,
    modifying_system: str,
    source: str,
    reason: str = REASON_COERCE,
) -> bool:
    """Append one Original Attributes Sequence (0400,0561) item holding ``originals``; False if none.

    ``when`` is the Attribute Modification DateTime (DT, e.g. ``20261122051500.000000+0000``), the same for
    every instance of one import.
    """
    if not originals:
        return False
    modified = Dataset()
    for element in originals:
        modified.add(copy.deepcopy(element))
    item = Dataset()
    item.ModifiedAttributesSequence = DicomSequence([modified])
    item.AttributeModificationDateTime = when
    item.ModifyingSystem = modifying_system[:64]
    item.SourceOfPreviousValues = source[:64]
    item.ReasonForTheAttributeModification = reason
    existing = ds.get("OriginalAttributesSequence")
    ds.OriginalAttributesSequence = DicomSequence([*(existing or []), item])
    return True


# --- deciding each study --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyDecision:
    """A foreign study's local identity: the patient, the accession, the order's request attributes, and where
    the decision came from (for the report and the Source of Previous Values)."""

    patient: PatientMapping
    accession: str | None
    request_attributes: Mapping[str, str] = field(default_factory=dict)
    source: str
    entry: WorklistEntry | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyHeld:
    """A foreign study no source settles: why, and the worklist entries a person may choose from."""

    reason: str
    candidates: tuple[WorklistEntry, ...] = ()


def decision_for_entry(entry: WorklistEntry, source: str) -> StudyDecision:
    """The decision that coerces a study to worklist ``entry`` (matched by the worklist or chosen by a person)."""
    return StudyDecision(
        patient=PatientMapping(
            foreign_id="",
            foreign_issuer=None,
            patient_id=entry.patient_id,
            patient_name=entry.patient_name,
            birth_date=normalise_date(entry.birth_date) or None,
            sex=entry.sex if entry.sex in _SEXES else None,
            issuer=entry.issuer,
            line=0,
        ),
        accession=entry.accession or None,
        request_attributes=entry.request_attributes(),
        source=source,
        entry=entry,
    )


def reconcile_studies(
    studies: Iterable[ForeignStudy],
    *,
    mapping: ReconciliationMap | None = None,
    worklist: WorklistService | None = None,
    rules: MatchRules | None = None,
    choices: Mapping[str, tuple[WorklistEntry, str]] | None = None,
) -> dict[str, StudyDecision | StudyHeld]:
    """Decide every foreign study: a person's earlier choice, then the map, then the worklist; else held.

    ``choices`` maps Study Instance UID to the entry a person chose and who chose it. The worklist is asked
    only about the studies nothing before it settled (one C-FIND each, one association).

    Raises
    ------
    WorklistUnavailableError
        The worklist was needed and cannot be asked (nothing has been sent).
    """
    decided: dict[str, StudyDecision | StudyHeld] = {}
    ask: dict[str, ForeignStudy] = {}  # one study (its first instance) per Study Instance UID
    for study in studies:
        uid = study.study_instance_uid
        if uid in decided or uid in ask:
            continue
        chosen = (choices or {}).get(uid)
        if chosen is not None:
            decided[uid] = decision_for_entry(chosen[0], f"chosen by {chosen[1]}")
            continue
        if mapping is not None:
            patient = mapping.patient_for(study.patient_id, study.issuer)
            if patient is not None:
                accession = (
                    mapping.accession_for(study.accession, study.patient_id) if study.accession else None
                )
                decided[uid] = StudyDecision(
                    patient=patient, accession=accession, source=f"{mapping.source.name} line {patient.line}"
                )
                continue
        if worklist is not None:
            ask[uid] = study
            continue
        issuer = f" (issuer {study.issuer!r})" if study.issuer else ""
        where = f" in {mapping.source}" if mapping is not None else ""
        decided[uid] = StudyHeld(
            reason=f"held: no reconciliation for patient {study.patient_id!r}{issuer}{where}"
        )
    if ask:
        assert worklist is not None  # a study is only asked about when there is a worklist
        for uid, answer in find_local_orders(worklist, ask.values(), rules or parse_match_rules()).items():
            if isinstance(answer, Matched):
                decided[uid] = decision_for_entry(answer.entry, answer.source)
            else:
                assert isinstance(answer, Held)
                decided[uid] = StudyHeld(reason=answer.reason, candidates=answer.candidates)
    return decided


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciledStudy:
    """One foreign study of a medium, its instance count, and what reconciliation decided (for the report)."""

    foreign: ForeignStudy
    instances: int
    decision: StudyDecision | StudyHeld

    @property
    def held(self) -> bool:
        return isinstance(self.decision, StudyHeld)

    def to_json(self) -> dict[str, object]:
        foreign = self.foreign
        data: dict[str, object] = {
            "study_instance_uid": foreign.study_instance_uid,
            "instances": self.instances,
            "foreign": {
                "patient_id": foreign.patient_id,
                "issuer": foreign.issuer,
                "patient_name": foreign.patient_name,
                "birth_date": foreign.birth_date,
                "sex": foreign.sex,
                "accession": foreign.accession,
            },
        }
        decision = self.decision
        if isinstance(decision, StudyHeld):
            data["outcome"] = "held"
            data["reason"] = decision.reason
            data["candidates"] = [c.to_json() for c in decision.candidates]
        else:
            data["outcome"] = "coerced"
            data["source"] = decision.source
            data["local"] = {
                "patient_id": decision.patient.patient_id,
                "issuer": decision.patient.issuer,
                "patient_name": decision.patient.patient_name,
                "birth_date": decision.patient.birth_date,
                "sex": decision.patient.sex,
                "accession": decision.accession,
                "request_attributes": dict(decision.request_attributes),
            }
        return data


def summarise_decisions(
    studies: Iterable[ForeignStudy], decisions: Mapping[str, StudyDecision | StudyHeld]
) -> tuple[ReconciledStudy, ...]:
    """One :class:`ReconciledStudy` per decided study (``studies`` holds one entry per instance)."""
    first: dict[str, ForeignStudy] = {}
    counts: dict[str, int] = {}
    for study in studies:
        first.setdefault(study.study_instance_uid, study)
        counts[study.study_instance_uid] = counts.get(study.study_instance_uid, 0) + 1
    return tuple(
        ReconciledStudy(foreign=first[uid], instances=counts[uid], decision=decisions[uid])
        for uid in sorted(first)
        if uid in decisions
    )
