"""What reconciliation would decide for a medium, without sending anything (``dcmseal reconcile``).

The medium is read in as the import reads it (:func:`dcmseal.intake.read_medium`: into a private work folder,
decrypting with the keys given), the patient and order keys of every instance are read, and each foreign study is decided by
:func:`dcmseal.importer.reconcile.reconcile_studies` exactly as the import would decide it: a person's earlier
choice in the journal, the mapping file, the worklist. A person's choice among a held study's candidates is
written to the journal with :func:`record_choice`, so the import (and a rerun of the plan) does not ask again.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import MediaStorageDirectoryStorage

from dcmseal.config import DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.fsutil import staging_area
from dcmseal.importer.journal import Journal
from dcmseal.importer.pipeline import medium_fingerprint
from dcmseal.importer.reconcile import (
    ReconciledStudy,
    ReconciliationMap,
    reconcile_studies,
    summarise_decisions,
)
from dcmseal.importer.worklist import ForeignStudy, MatchRules, WorklistEntry, WorklistService
from dcmseal.intake import Keys, read_medium

__all__ = ["ReconciliationPlan", "ReconciliationPlanRequest", "plan_reconciliation", "record_choice"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationPlanRequest:
    """A medium, its keys, and the sources of local identity (mapping file, worklist) to plan with."""

    medium: Path
    operator: str
    journal: Path
    passwords: tuple[bytes, ...] = field(default=(), repr=False)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)
    certificates: tuple[bytes | None, ...] = ()
    reconciliation: ReconciliationMap | None = None
    worklist: WorklistService | None = None
    match_rules: MatchRules | None = None
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    workers: int = 0
    workdir: Path | None = None
    ask_password: Callable[[], str] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationPlan:
    """Each foreign study of the medium and its local identity, or why it is held (with the candidates)."""

    medium: Path
    fingerprint: str
    studies: tuple[ReconciledStudy, ...]
    unreadable: tuple[str, ...]  # files of the medium (by path on it) that could not be read as DICOM

    @property
    def held(self) -> tuple[ReconciledStudy, ...]:
        return tuple(s for s in self.studies if s.held)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": "dcmseal.reconcile/1",
            "medium": str(self.medium),
            "fingerprint": self.fingerprint,
            "studies": [s.to_json() for s in self.studies],
            "unreadable": list(self.unreadable),
            "summary": {
                "studies": len(self.studies),
                "coerced": len(self.studies) - len(self.held),
                "held": len(self.held),
            },
        }


def plan_reconciliation(request: ReconciliationPlanRequest) -> ReconciliationPlan:
    """Open the medium privately, read each instance's patient and order keys, and decide every study.

    Raises
    ------
    WorklistUnavailableError
        The worklist was needed and could not be asked.
    DecryptionError, InputError
        The medium cannot be opened at all.
    """
    fingerprint = medium_fingerprint(request.medium)
    studies: list[ForeignStudy] = []
    unreadable: list[str] = []
    # Decrypted patient data lives here until the plan is made: a private staging folder that the next run
    # of any command removes if this one is killed.
    with staging_area(request.workdir or Path(tempfile.gettempdir())) as work:
        reading = read_medium(
            request.medium,  # folders, ISO, UDF and FAT images and zips
            work,
            Keys.of(request),
        )
        for entry in sorted(reading.ready, key=lambda f: f.label):
            assert entry.plain is not None
            try:
                ds = dcmread(entry.plain, stop_before_pixels=True)
                if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
                    continue  # a DICOMDIR: a File-set's directory, not an instance
                if "StudyInstanceUID" not in ds:
                    raise InvalidDicomError("no Study Instance UID")
            except (InvalidDicomError, ValueError, OSError, AttributeError) as exc:
                unreadable.append(entry.label)
                logger.warning("%s: not read for the plan: %s", entry.label, exc)
                continue
            studies.append(ForeignStudy.from_dataset(ds))
    with Journal.open(request.journal) as journal:
        choices = {
            uid: (WorklistEntry.from_json(local), who)
            for uid, (local, who) in journal.choices(fingerprint).items()
        }
    decisions = reconcile_studies(
        studies,
        mapping=request.reconciliation,
        worklist=request.worklist,
        rules=request.match_rules,
        choices=choices,
    )
    return ReconciliationPlan(
        medium=request.medium,
        fingerprint=fingerprint,
        studies=summarise_decisions(studies, decisions),
        unreadable=tuple(unreadable),
    )


def record_choice(
    journal_path: Path, fingerprint: str, study_instance_uid: str, entry: WorklistEntry, operator: str
) -> None:
    """Keep ``operator``'s choice of ``entry`` for one foreign study of the medium, for the import and reruns."""
    with Journal.open(journal_path) as journal:
        journal.record_choice(fingerprint, study_instance_uid, entry.to_json(), operator)
