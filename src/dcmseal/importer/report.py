"""How an import ends for the audit trail and for the handlers: its audit messages and its events."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from dcmseal.audit import (
    AuditEvent,
    AuditSink,
    AuditUser,
    EventOutcome,
    PatientRef,
    StudyRef,
    audit_medium,
    audit_patients,
    import_event,
    security_alert,
)
from dcmseal.errors import DcmsealError
from dcmseal.events import Emitter
from dcmseal.events import StudyHeld as StudyHeldEvent
from dcmseal.importer.journal import State
from dcmseal.importer.reconcile import ReconciledStudy, StudyHeld
from dcmseal.importer.result import ImportedFile
from dcmseal.importer.run import Run
from dcmseal.intake import Integrity
from dcmseal.scan import Finding, Verdict

__all__ = ["announce_held", "audit_import"]

logger = logging.getLogger(__name__)


def announce_held(reconciled: Sequence[ReconciledStudy], emitter: Emitter) -> None:
    """Tell the handlers of each study held for reconciliation, once (its files are held with it, not failed)."""
    for study in reconciled:
        if isinstance(study.decision, StudyHeld):
            emitter.emit(
                StudyHeldEvent(
                    study_instance_uid=study.foreign.study_instance_uid, reason=study.decision.reason
                )
            )


def _foreign_patients(reconciled: Sequence[ReconciledStudy], local: Mapping[str, None]) -> list[PatientRef]:
    """The foreign patients of the coerced studies, as the medium named them (not already listed as local)."""
    foreign: dict[str, PatientRef] = {}
    for study in reconciled:
        if study.held or not study.foreign.patient_id or study.foreign.patient_id in local:
            continue
        foreign.setdefault(
            study.foreign.patient_id,
            PatientRef(patient_id=study.foreign.patient_id, name=study.foreign.patient_name or None),
        )
    return list(foreign.values())


def audit_import(
    run: Run,
    files: tuple[ImportedFile, ...],
    *,
    medium_findings: Sequence[Finding],
    encrypted: bool,
    fileset_id: str,
    reconciled: Sequence[ReconciledStudy],
    audit: AuditSink,
    now: Callable[[], datetime],
) -> None:
    """One Import message with the outcome; one Security Alert per quarantined file and for medium findings.

    A coerced study names both patients: the local one it was stored as, and the foreign one it came as (its
    Patient ID and name on the medium), so the audit trail shows the coercion (PS3.15 A.5.3.5, IHE RAD §19).
    The medium is named by its Volume Identifier or File-set ID (the fingerprint, which the journal keys
    runs by, is its AlternativeUserID and the Alert Subject's ID).
    """
    request, fingerprint, alerts, sent_facts = run.request, run.fingerprint, run.alerts, run.sent_facts
    user = AuditUser(user_id=request.operator)
    medium_id, media_type = audit_medium(request.medium, fileset_id)
    events: list[AuditEvent] = []
    stored = [f for f in files if f.status is State.STORED and not f.earlier_run]
    unverified = sum(1 for f in stored if f.integrity is Integrity.NOT_VERIFIED)
    failed = sum(1 for f in files if f.status in (State.FAILED, State.PENDING))
    if stored or failed or alerts:
        studies: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        patients: dict[str, None] = {}
        for f in stored:
            facts = sent_facts.get(f.path)
            if facts is not None:
                patients[facts[0]] = None  # "" (no Patient ID) is an unidentified patient, see audit_patients
                studies[facts[1]][facts[2]] += 1
        outcome = (
            EventOutcome.SUCCESS
            if not failed and not alerts
            else (EventOutcome.MINOR_FAILURE if stored else EventOutcome.SERIOUS_FAILURE)
        )
        events.append(
            import_event(
                user=user,
                medium_id=medium_id,
                media_type=media_type,
                medium_label=fingerprint,
                patients=(audit_patients(patients) if patients else [])
                + _foreign_patients(reconciled, patients)
                or audit_patients(()),
                studies=[StudyRef.from_counts(uid, dict(counts)) for uid, counts in studies.items()],
                encrypted=encrypted,
                outcome=outcome,
                description=(
                    f"{len(stored)} stored into {request.target}, {failed} failed or held, {len(alerts)} quarantined"
                    + (f", {unverified} with integrity NOT verified" if unverified else "")
                ),
                now=now,
            )
        )
    for rel, sha, reason in alerts:
        events.append(
            security_alert(
                user=user,
                description=f"quarantined on import: {reason}",
                medium_id=fingerprint,
                details={"File": rel, "SHA-256": sha, "Quarantine": str(request.quarantine)},
                outcome=EventOutcome.MINOR_FAILURE,  # mitigated: the file never reached the PACS
                now=now,
            )
        )
    active = [f for f in medium_findings if f.severity is not Verdict.CLEAN]
    if active:
        events.append(
            security_alert(
                user=user,
                description="active content on the medium outside the File-set (not imported): "
                + ", ".join(sorted({f.code for f in active})),
                medium_id=fingerprint,
                outcome=EventOutcome.MINOR_FAILURE,
                now=now,
            )
        )
    for event in events:
        try:
            audit.emit(event)
        except DcmsealError as exc:
            run.notes.append(f"an audit message could not be written: {exc}")
            logger.error("audit: %s", exc)
