"""What became of each file of an imported medium, and of the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcmseal.importer.journal import State
from dcmseal.importer.reconcile import ReconciledStudy
from dcmseal.importer.uids import UidPolicy
from dcmseal.importer.verify import Verification
from dcmseal.intake import Integrity
from dcmseal.outcomes import ReasonKind
from dcmseal.scan import Finding

__all__ = ["OUTCOMES", "ImportResult", "ImportedFile"]


#: Where a file of the medium can end (:attr:`ImportedFile.outcome`), each counted in the JSON summary.
OUTCOMES = (
    "stored",
    "sanitized then stored",
    "quarantined",
    "failed",
    "held",
    "skipped",
    "not DICOM",
    "pending",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedFile:
    """One file of the medium and what became of it."""

    path: str  # on the medium
    status: State
    reason: str | None = None
    verdict: str | None = None  # the scan of the file as opened
    findings: tuple[str, ...] = ()  # finding codes
    changes: tuple[str, ...] = ()  # what the sanitizer changed
    coerced: tuple[str, ...] = ()  # attributes replaced (kept in the Original Attributes Sequence)
    sop_instance_uid: str | None = None
    sent_sop_instance_uid: str | None = None
    earlier_run: bool = False  # stored by an earlier run of the same import; not sent again
    confirmation: dict[str, object] | None = None
    not_dicom: bool = False  # skipped because it is not DICOM (open found no data set in it)
    kind: ReasonKind | None = None  # the reason's kind, for a program (HELD: waiting for reconciliation)
    #: For files opened from an envelope: "verified", or "not-verified" (accepted unprotected content).
    integrity: Integrity | None = None

    @property
    def outcome(self) -> str:
        """Where the file ended, one of :data:`OUTCOMES`: the journal state, with "sanitized then stored",
        "held" (waiting for reconciliation) and "not DICOM" told apart from plain stored, failed and skipped."""
        if self.status is State.STORED:
            return "sanitized then stored" if self.changes else "stored"
        if self.status is State.FAILED and self.kind is ReasonKind.HELD:
            return "held"
        if self.status is State.SKIPPED and self.not_dicom:
            return "not DICOM"
        return self.status.value

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "status": self.status.value,
            "outcome": self.outcome,
            "reason": self.reason,
            "verdict": self.verdict,
            "findings": list(self.findings),
            "changes": list(self.changes),
            "coerced": list(self.coerced),
            "sop_instance_uid": self.sop_instance_uid,
            "sent_sop_instance_uid": self.sent_sop_instance_uid,
            "earlier_run": self.earlier_run,
            "confirmation": self.confirmation,
            "integrity": self.integrity.value if self.integrity is not None else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """Every file of the medium, the medium's own findings, and whether the peer failed."""

    medium: Path
    target: str
    fingerprint: str
    run: int
    uid_policy: UidPolicy
    files: tuple[ImportedFile, ...]
    medium_findings: tuple[Finding, ...]
    peer_error: str | None
    journal: Path
    notes: tuple[str, ...]
    elapsed_s: float
    #: What asking the PACS found; None when not asked (``verify`` off, or nothing confirmed and unchecked).
    verification: Verification | None = None
    #: Each foreign study of this run and its local identity (or why it is held); empty without reconciliation.
    reconciliation: tuple[ReconciledStudy, ...] = ()

    def count(self, status: State) -> int:
        return sum(1 for f in self.files if f.status is status)

    @property
    def held(self) -> int:
        return sum(1 for f in self.files if f.status is State.FAILED and f.kind is ReasonKind.HELD)

    @property
    def ok(self) -> bool:
        """Nothing failed, nothing held, the peer answered (quarantined files are a success of the importer)."""
        return self.peer_error is None and not any(
            f.status in (State.FAILED, State.PENDING) for f in self.files
        )

    def to_json(self) -> dict[str, object]:
        return {
            "schema": "dcmseal.import/1",
            "medium": str(self.medium),
            "target": self.target,
            "fingerprint": self.fingerprint,
            "run": self.run,
            "uid_policy": self.uid_policy.value,
            "journal": str(self.journal),
            "files": [f.to_json() for f in self.files],
            "medium_findings": [f.to_json() for f in self.medium_findings],
            "peer_error": self.peer_error,
            "notes": list(self.notes),
            "reconciliation": [r.to_json() for r in self.reconciliation],
            "verification": None
            if self.verification is None
            else {
                "query": self.verification.query,
                "studies": self.verification.studies,
                "studies_checked": self.verification.studies_checked,
                "queries": self.verification.queries,
                "held": len(self.verification.held),
                "not_held": len(self.verification.not_held),
                "carried_over": self.verification.carried_over,
                "unverified": self.verification.unverified,
                "note": self.verification.note,
            },
            "summary": {
                **{s.value: self.count(s) for s in State},
                "held": self.held,
                "outcomes": {o: sum(1 for f in self.files if f.outcome == o) for o in OUTCOMES},
                "sent_now": sum(1 for f in self.files if f.status is State.STORED and not f.earlier_run),
                "elapsed_s": round(self.elapsed_s, 3),
            },
        }
