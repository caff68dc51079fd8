"""Modality Worklist lookup for import reconciliation (IHE RAD TF-1 §19 Import Reconciliation Workflow, RAD-5).

For each foreign study on a medium the importer asks the hospital's worklist (Modality Worklist Information Model -
FIND, one C-FIND per study, all on one association) for the local order of that patient, and coerces the study to it
only when exactly one worklist entry matches. Zero or several matches hold the study, with the candidates listed:
a patient is never guessed.

Why names are compared here and not by the worklist SCP: worklists differ in how they match Person Names (case,
accents, the component and group separators, trailing spaces), and an SCP that matches ``MÜLLER^HANS`` exactly would
miss ``Muller^Hans`` on a foreign disc. So the query narrows only by keys every SCP matches exactly (Patient's Birth
Date, the scheduled date range, Scheduled Station AE Title, Modality, the foreign Accession Number when a rule asks
for it) and asks for every entry of that slice; the entries are then filtered here with :func:`normalise_name`
and :func:`normalise_date`. The number of entries one query may return is bounded (:data:`MAX_ENTRIES_PER_QUERY`).

Matching rules (``--match``) name the keys that must agree between the foreign study and a worklist entry:

==========  =========================================================================================
``name``    Patient's Name: family and first given name, accents, case and punctuation ignored
``birth``   Patient's Birth Date (DA; ``YYYY-MM-DD`` and ``YYYY.MM.DD`` on old media are read too)
``sex``     Patient's Sex (M, F, O)
``accession``  the foreign Accession Number equals the entry's (sites that order an import with it)
``id``      the foreign Patient ID equals the entry's (a shared patient domain)
==========  =========================================================================================

A key followed by ``?`` is optional: it must agree when both sides have a value, and is ignored when either side
has none. A required key the foreign study lacks holds the study ("no Patient's Birth Date on the medium"). The
default, ``name,birth,sex?``, is the demographic triple most worklists and sites use for identity.
"""

from __future__ import annotations

import datetime as _dt
import enum
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from dcmseal.errors import PeerError, UsageError
from dcmseal.importer.send import DEFAULT_AE_TITLE, DimseTarget, RetryPolicy, parse_target

if TYPE_CHECKING:  # pynetdicom is imported when a worklist is asked, not when the importer loads
    from pynetdicom.association import Association

__all__ = [
    "DEFAULT_MATCH_RULES",
    "MAX_ENTRIES_PER_QUERY",
    "ForeignStudy",
    "Held",
    "MatchKey",
    "MatchRules",
    "Matched",
    "Resolution",
    "WorklistEntry",
    "WorklistService",
    "WorklistUnavailableError",
    "find_local_orders",
    "match_entries",
    "normalise_date",
    "normalise_name",
    "parse_match_rules",
    "parse_worklist",
]

logger = logging.getLogger(__name__)

#: Entries one C-FIND may return before it is cancelled: a slice that large cannot identify one patient.
MAX_ENTRIES_PER_QUERY = 500
#: Seconds for the association and each DIMSE message: a worklist that does not answer fails the import early.
DEFAULT_TIMEOUT_S = 10.0
#: A worklist that is briefly down is asked again, for 15 s at most, before the import gives up (nothing sent).
DEFAULT_RETRY = RetryPolicy(attempts=3, initial_delay_s=1.0, max_total_s=15.0)
_MWL_FIND = "1.2.840.10008.5.1.4.31"  # Modality Worklist Information Model - FIND (PS3.4 K.6.1.2)


class WorklistUnavailableError(PeerError):
    """The worklist cannot be reached or refused the query: nothing is sent (exit code 3)."""


class MatchKey(enum.StrEnum):
    """A key that must agree between a foreign study and a worklist entry."""

    NAME = "name"
    BIRTH_DATE = "birth"
    SEX = "sex"
    ACCESSION = "accession"
    PATIENT_ID = "id"


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchRules:
    """Which keys must agree (``required``), which agree when both sides have them (``optional``), and which
    slice of the worklist is asked: a scheduled date range (DICOM DA range), station AE title, modality."""

    required: frozenset[MatchKey]
    optional: frozenset[MatchKey] = frozenset()
    scheduled_dates: str | None = None
    station_aet: str | None = None
    modality: str | None = None

    def __post_init__(self) -> None:
        if not self.required:
            raise UsageError("--match: at least one key must be required (name, birth, sex, accession, id)")
        if self.scheduled_dates is not None and not re.fullmatch(
            r"\d{8}(-\d{8})?|-\d{8}|\d{8}-", self.scheduled_dates
        ):
            raise UsageError(
                f"--scheduled {self.scheduled_dates!r}: a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end open)"
            )

    def __str__(self) -> str:
        keys = [k.value for k in MatchKey if k in self.required]
        keys += [f"{k.value}?" for k in MatchKey if k in self.optional]
        return ",".join(keys)


DEFAULT_MATCH_RULES = "name,birth,sex?"


def parse_match_rules(
    text: str = DEFAULT_MATCH_RULES,
    *,
    scheduled_dates: str | None = None,
    station_aet: str | None = None,
    modality: str | None = None,
) -> MatchRules:
    """Parse ``--match`` (``name,birth,sex?``): comma-separated keys, ``?`` marks an optional one.

    Raises
    ------
    UsageError
        An unknown or repeated key, or no required key.
    """
    required: set[MatchKey] = set()
    optional: set[MatchKey] = set()
    for raw in text.split(","):
        word = raw.strip().lower()
        if not word:
            continue
        wanted = optional if word.endswith("?") else required
        word = word.rstrip("?")
        try:
            key = MatchKey(word)
        except ValueError:
            known = ", ".join(k.value for k in MatchKey)
            raise UsageError(f"--match: unknown key {word!r}; known: {known} (add ? for optional)") from None
        if key in required or key in optional:
            raise UsageError(f"--match: {word!r} is named twice")
        wanted.add(key)
    return MatchRules(
        required=frozenset(required),
        optional=frozenset(optional),
        scheduled_dates=scheduled_dates,
        station_aet=station_aet,
        modality=modality,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorklistService:
    """The Modality Worklist SCP: ``dicom://AET@host:port``, our calling AE title, timeouts and retries."""

    target: DimseTarget
    calling_aet: str = DEFAULT_AE_TITLE
    timeout_s: float = DEFAULT_TIMEOUT_S
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(attempts=3, initial_delay_s=1.0, max_total_s=15.0)
    )

    def __str__(self) -> str:
        return str(self.target)


def parse_worklist(
    url: str,
    *,
    match: str = DEFAULT_MATCH_RULES,
    scheduled: str | None = None,
    station_aet: str | None = None,
    modality: str | None = None,
    calling_aet: str = DEFAULT_AE_TITLE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    today: _dt.date | None = None,
) -> tuple[WorklistService, MatchRules]:
    """The worklist and the rules of ``--worklist dicom://AET@host:port --match ... --scheduled ...``.

    ``scheduled`` is a DA range (``20261201-20261207``, either end open) or ``today``.

    Raises
    ------
    UsageError
        Not a ``dicom://`` address, a bad rule, or a bad date range.
    """
    target = parse_target(url)
    if not isinstance(target, DimseTarget):
        raise UsageError(
            f"--worklist {url!r}: a Modality Worklist is asked over DIMSE: dicom://AET@host:port"
        )
    if timeout_s <= 0:
        raise UsageError("--worklist-timeout must be more than 0 seconds")
    if scheduled is not None and scheduled.strip().lower() == "today":
        scheduled = (today or _dt.date.today()).strftime("%Y%m%d")
    rules = parse_match_rules(
        match, scheduled_dates=scheduled, station_aet=station_aet or None, modality=modality or None
    )
    service = WorklistService(
        target=target,
        calling_aet=calling_aet,
        timeout_s=timeout_s,
        retry=retry or DEFAULT_RETRY,
    )
    return service, rules


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeignStudy:
    """What a medium says of one study's patient and order (from its first instance)."""

    study_instance_uid: str
    patient_id: str = ""
    issuer: str | None = None
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    accession: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> ForeignStudy:
        """Read the study's patient and order keys from an instance (absent keys are empty)."""

        def text(keyword: str) -> str:
            return str(ds.get(keyword, "") or "").strip()

        return cls(
            study_instance_uid=text("StudyInstanceUID"),
            patient_id=text("PatientID"),
            issuer=text("IssuerOfPatientID") or None,
            patient_name=text("PatientName"),
            birth_date=text("PatientBirthDate"),
            sex=text("PatientSex").upper(),
            accession=text("AccessionNumber"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorklistEntry:
    """One worklist answer: the local patient and the order (requested procedure, scheduled step)."""

    patient_id: str
    issuer: str | None
    patient_name: str
    birth_date: str
    sex: str
    accession: str
    requested_procedure_id: str
    requested_procedure_description: str = ""
    scheduled_step_id: str = ""
    scheduled_step_description: str = ""
    scheduled_date: str = ""
    station_aet: str = ""
    modality: str = ""
    study_instance_uid: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> WorklistEntry:
        """Read one C-FIND pending identifier (text decoded by :func:`_answer_text`)."""
        charset = _answer_charset(ds)

        def text(source: Dataset, keyword: str) -> str:
            return _answer_text(source, keyword, charset)

        steps = ds.get("ScheduledProcedureStepSequence") or []
        step = steps[0] if len(steps) else Dataset()
        return cls(
            patient_id=text(ds, "PatientID"),
            issuer=text(ds, "IssuerOfPatientID") or None,
            patient_name=text(ds, "PatientName"),
            birth_date=text(ds, "PatientBirthDate"),
            sex=text(ds, "PatientSex").upper(),
            accession=text(ds, "AccessionNumber"),
            requested_procedure_id=text(ds, "RequestedProcedureID"),
            requested_procedure_description=text(ds, "RequestedProcedureDescription"),
            scheduled_step_id=text(step, "ScheduledProcedureStepID"),
            scheduled_step_description=text(step, "ScheduledProcedureStepDescription"),
            scheduled_date=text(step, "ScheduledProcedureStepStartDate"),
            station_aet=text(step, "ScheduledStationAETitle"),
            modality=text(step, "Modality"),
            study_instance_uid=text(ds, "StudyInstanceUID"),
        )

    def request_attributes(self) -> dict[str, str]:
        """The Request Attributes Sequence (0040,0275) item of this order (PS3.3 C.7.3.1), non-empty keys only."""
        values = {
            "AccessionNumber": self.accession,
            "RequestedProcedureID": self.requested_procedure_id,
            "RequestedProcedureDescription": self.requested_procedure_description,
            "ScheduledProcedureStepID": self.scheduled_step_id,
            "ScheduledProcedureStepDescription": self.scheduled_step_description,
        }
        return {k: v for k, v in values.items() if v}

    def describe(self) -> str:
        """One line for a person: who, born when, which order."""
        parts = [f"{self.patient_name or '(no name)'} ({self.patient_id or 'no ID'})"]
        if self.birth_date:
            parts.append(f"born {self.birth_date}")
        if self.sex:
            parts.append(f"sex {self.sex}")
        order = ", ".join(
            x
            for x in (f"accession {self.accession}" if self.accession else "", self.requested_procedure_id)
            if x
        )
        if order:
            parts.append(order)
        return ", ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "patient_id": self.patient_id,
            "issuer": self.issuer,
            "patient_name": self.patient_name,
            "birth_date": self.birth_date,
            "sex": self.sex,
            "accession": self.accession,
            "requested_procedure_id": self.requested_procedure_id,
            "scheduled_step_id": self.scheduled_step_id,
            "scheduled_date": self.scheduled_date,
            "station_aet": self.station_aet,
            "modality": self.modality,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> WorklistEntry:
        def text(key: str) -> str:
            value = data.get(key)
            return str(value) if value is not None else ""

        return cls(
            patient_id=text("patient_id"),
            issuer=text("issuer") or None,
            patient_name=text("patient_name"),
            birth_date=text("birth_date"),
            sex=text("sex"),
            accession=text("accession"),
            requested_procedure_id=text("requested_procedure_id"),
            scheduled_step_id=text("scheduled_step_id"),
            scheduled_date=text("scheduled_date"),
            station_aet=text("station_aet"),
            modality=text("modality"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Matched:
    """Exactly one worklist entry is this study's local order."""

    entry: WorklistEntry
    source: str  # "worklist dicom://..." or "chosen by <operator>"


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """No entry, or several: the study waits for a person; ``candidates`` are the entries that matched."""

    reason: str
    candidates: tuple[WorklistEntry, ...] = ()


Resolution = Matched | Held


def _answer_charset(ds: Dataset) -> str | None:
    raw = ds.get_item(0x00080005)
    if raw is None or raw.value in (None, b"", ""):
        return None
    value = raw.value.decode("ascii", "replace") if isinstance(raw.value, bytes) else str(raw.value)
    return value.split("\\")[-1].strip() or None


def _answer_text(ds: Dataset, keyword: str, charset: str | None) -> str:
    """One text value of a worklist answer.

    Some worklists (DCMTK's wlmscpfs among them) send names in UTF-8 or Latin-1 without Specific Character Set
    in the answer, which a strict reader shows as mojibake (``MÃ\x9cLLER``). Without a declared character set
    the raw bytes are read as UTF-8 when they are valid UTF-8 (what a modern RIS writes), else as Latin-1
    (ISO_IR 100, the most common on older ones).
    """
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    element = ds.get_item(tag) if tag is not None else None
    if element is None or element.value is None:
        return ""
    value = element.value
    if isinstance(value, bytes):  # still raw: decode it here
        try:
            return value.decode("utf-8").strip(" \x00")
        except UnicodeDecodeError:
            return value.decode("latin-1").strip(" \x00")
    text = str(ds.get(keyword, "") or "").strip()
    if charset is None and not text.isascii():
        # Decoded as the default repertoire, which pydicom reads as Latin-1: undo that, then try UTF-8.
        try:
            return text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return text
    return text


# --- normalisation ----------------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Case, accents and punctuation folded: ``Müller-Lüdenscheidt`` -> ``muller ludenscheidt``."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", plain).split())


def normalise_name(name: str) -> tuple[str, str]:
    """``(family, first given name)`` of a Person Name, folded; only the alphabetic group counts.

    ``MÜLLER^Hans Peter^^Dr`` and ``Muller^HANS`` both give ``("muller", "hans")``. A name written without
    component separators (``Hans Muller`` in some vendors' exports) is read as given names then family name.
    """
    alphabetic = name.split("=", 1)[0]
    if "^" in alphabetic:
        components = alphabetic.split("^")
        family = _fold(components[0])
        given_words = _fold(components[1]).split() if len(components) > 1 else []
    else:
        words = _fold(alphabetic).split()
        family = words[-1] if words else ""
        given_words = words[:-1]
    return family, given_words[0] if given_words else ""


def normalise_date(value: str) -> str:
    """A DA value as ``YYYYMMDD``, or ``""`` when it is not a date (old ``YYYY.MM.DD`` and ISO forms accepted)."""
    digits = re.sub(r"[.\-/ ]", "", value.strip())
    return digits if re.fullmatch(r"\d{8}", digits) else ""


def _names_agree(foreign: str, local: str) -> bool:
    family_f, given_f = normalise_name(foreign)
    family_l, given_l = normalise_name(local)
    if not family_f or family_f != family_l:
        return False
    # A given name on one side only (an initial-less foreign export) does not contradict the other.
    return not (given_f and given_l) or given_f == given_l


def _foreign_value(study: ForeignStudy, key: MatchKey) -> str:
    if key is MatchKey.NAME:
        return study.patient_name
    if key is MatchKey.BIRTH_DATE:
        return normalise_date(study.birth_date)
    if key is MatchKey.SEX:
        return study.sex.upper()
    return study.accession if key is MatchKey.ACCESSION else study.patient_id


def _local_value(entry: WorklistEntry, key: MatchKey) -> str:
    if key is MatchKey.NAME:
        return entry.patient_name
    if key is MatchKey.BIRTH_DATE:
        return normalise_date(entry.birth_date)
    if key is MatchKey.SEX:
        return entry.sex.upper()
    return entry.accession if key is MatchKey.ACCESSION else entry.patient_id


_KEY_NAMES = {
    MatchKey.NAME: "Patient's Name",
    MatchKey.BIRTH_DATE: "Patient's Birth Date",
    MatchKey.SEX: "Patient's Sex",
    MatchKey.ACCESSION: "Accession Number",
    MatchKey.PATIENT_ID: "Patient ID",
}


def _agree(key: MatchKey, foreign: str, local: str) -> bool:
    if key is MatchKey.NAME:
        return _names_agree(foreign, local)
    return foreign == local


def missing_keys(study: ForeignStudy, rules: MatchRules) -> list[str]:
    """The required keys the foreign study has no value for (so it cannot be matched)."""
    return [_KEY_NAMES[k] for k in MatchKey if k in rules.required and not _foreign_value(study, k)]


def match_entries(
    study: ForeignStudy, entries: Iterable[WorklistEntry], rules: MatchRules
) -> list[WorklistEntry]:
    """The entries whose keys agree with the foreign study under ``rules`` (duplicates of one order once)."""
    found: dict[tuple[str, str, str, str], WorklistEntry] = {}
    for entry in entries:
        ok = True
        for key in MatchKey:
            if key not in rules.required and key not in rules.optional:
                continue
            foreign, local = _foreign_value(study, key), _local_value(entry, key)
            if key in rules.optional and (not foreign or not local):
                continue
            if not _agree(key, foreign, local):
                ok = False
                break
        if ok:
            # One requested procedure with several scheduled steps is one order for reconciliation.
            found.setdefault(
                (entry.patient_id, entry.issuer or "", entry.accession, entry.requested_procedure_id), entry
            )
    return list(found.values())


def resolve(
    study: ForeignStudy, entries: Sequence[WorklistEntry], rules: MatchRules, service: str
) -> Resolution:
    """Exactly one match is the study's order; none or several hold it, with the candidates."""
    matches = match_entries(study, entries, rules)
    if len(matches) == 1:
        return Matched(entry=matches[0], source=f"worklist {service}")
    if not matches:
        return Held(reason=f"held: no worklist entry matches ({rules}) in {service}")
    # Several orders of one patient are still one patient: the accession is what is ambiguous.
    patients = {(m.patient_id, m.issuer) for m in matches}
    what = "patients" if len(patients) > 1 else "orders of one patient"
    return Held(
        reason=f"held: {len(matches)} worklist entries match ({what}) in {service}; choose one with "
        "dcmseal reconcile --interactive",
        candidates=tuple(matches),
    )


# --- the query ----------------------------------------------------------------------------------------------------


def _identifier(study: ForeignStudy, rules: MatchRules) -> Dataset:
    """The C-FIND identifier: return keys for everything the coercion needs, matching only on exact keys."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = ""
    ds.PatientID = study.patient_id if MatchKey.PATIENT_ID in rules.required else ""
    ds.IssuerOfPatientID = ""
    birth = normalise_date(study.birth_date)
    ds.PatientBirthDate = birth if MatchKey.BIRTH_DATE in rules.required and birth else ""
    ds.PatientSex = ""
    ds.AccessionNumber = study.accession if MatchKey.ACCESSION in rules.required else ""
    ds.RequestedProcedureID = ""
    ds.RequestedProcedureDescription = ""
    ds.StudyInstanceUID = ""
    step = Dataset()
    step.ScheduledStationAETitle = rules.station_aet or ""
    step.ScheduledProcedureStepStartDate = rules.scheduled_dates or ""
    step.Modality = rules.modality or ""
    step.ScheduledProcedureStepID = ""
    step.ScheduledProcedureStepDescription = ""
    ds.ScheduledProcedureStepSequence = [step]
    return ds


class _Association:
    """One association offering Modality Worklist FIND; reopened once per retry."""

    def __init__(self, service: WorklistService) -> None:
        from pynetdicom import AE

        self.service = service
        self._ae = AE(ae_title=service.calling_aet)
        self._ae.add_requested_context(_MWL_FIND)
        for attribute in ("connection_timeout", "acse_timeout", "network_timeout", "dimse_timeout"):
            setattr(self._ae, attribute, service.timeout_s)
        self._assoc: Association | None = None

    def _open(self) -> Association:
        if self._assoc is not None and self._assoc.is_established:
            return self._assoc
        target = self.service.target
        assoc = self._ae.associate(target.host, target.port, ae_title=target.called_aet)
        if not assoc.is_established:
            if assoc.is_rejected:
                raise WorklistUnavailableError(f"worklist {self.service}: the association was rejected")
            raise WorklistUnavailableError(f"worklist {self.service}: cannot connect")
        if not any(c.abstract_syntax == _MWL_FIND for c in assoc.accepted_contexts):
            assoc.release()
            raise WorklistUnavailableError(
                f"worklist {self.service}: the peer does not accept Modality Worklist C-FIND"
            )
        self._assoc = assoc
        return assoc

    def find(self, identifier: Dataset) -> list[Dataset]:
        assoc = self._open()
        answers: list[Dataset] = []
        for status, answer in assoc.send_c_find(identifier, _MWL_FIND):
            if status is None or "Status" not in status:
                self._assoc = None
                raise WorklistUnavailableError(
                    f"worklist {self.service}: no answer to the C-FIND (timed out)"
                )
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if answer is not None:
                    answers.append(answer)
                if len(answers) > MAX_ENTRIES_PER_QUERY:
                    assoc.send_c_cancel(1, query_model=_MWL_FIND)
                    return answers
            elif code in (0x0000, 0xFE00):  # success, or cancelled after our C-CANCEL
                return answers
            else:
                raise WorklistUnavailableError(
                    f"worklist {self.service}: C-FIND refused with status 0x{code:04X}"
                )
        self._assoc = None
        raise WorklistUnavailableError(f"worklist {self.service}: the C-FIND ended without a final status")

    def close(self) -> None:
        if self._assoc is not None and self._assoc.is_established:
            self._assoc.release()
        self._assoc = None


@contextmanager
def _association(service: WorklistService) -> Iterator[_Association]:
    assoc = _Association(service)
    try:
        yield assoc
    finally:
        assoc.close()


def find_local_orders(
    service: WorklistService,
    studies: Iterable[ForeignStudy],
    rules: MatchRules,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Resolution]:
    """Ask the worklist once per foreign study (one association) and resolve each: matched or held.

    A study missing a required key is held without a query. The retry policy of ``service`` covers a worklist
    that is down or drops the association; when it is used up the whole lookup fails, before anything is sent.

    Raises
    ------
    WorklistUnavailableError
        The worklist cannot be reached, rejects the association or the query, or does not answer in time.
    """
    resolutions: dict[str, Resolution] = {}
    with _association(service) as assoc:
        for study in studies:
            if study.study_instance_uid in resolutions:
                continue
            missing = missing_keys(study, rules)
            if missing:
                resolutions[study.study_instance_uid] = Held(
                    reason=f"held: no {' or '.join(missing)} on the medium, and the match rules ({rules}) need it"
                )
                continue
            identifier = _identifier(study, rules)
            started = clock()
            attempt = 0
            while True:
                attempt += 1
                try:
                    answers = assoc.find(identifier)
                    break
                except WorklistUnavailableError as exc:
                    pause = service.retry.next_pause(attempt, clock() - started)
                    if pause is None:
                        raise
                    logger.warning("%s; trying again in %.1f s", exc, pause)
                    assoc.close()
                    sleep(pause)
            entries = [WorklistEntry.from_dataset(a) for a in answers]
            if len(entries) > MAX_ENTRIES_PER_QUERY:
                resolutions[study.study_instance_uid] = Held(
                    reason=f"held: more than {MAX_ENTRIES_PER_QUERY} worklist entries in the slice asked; narrow it "
                    "(--scheduled, --station-aet, --modality, or birth in --match)"
                )
                continue
            resolutions[study.study_instance_uid] = resolve(study, entries, rules, str(service))
    return resolutions
