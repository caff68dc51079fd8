"""Import a medium into a PACS: read in, scan, sanitize or quarantine, reconcile, set UIDs, send, journal.

::

    medium ──read in (unseal, verify)──> plain files ──scan──> clean ─────────────────────┐
                                                     └──> suspicious/malicious ─sanitize┤
                                                                        refused ─> quarantine
    ready files ──reconcile (hold unmatched studies)──> UIDs (keep/regenerate) ──> prepared file
    prepared file (preamble zero, rescanned clean) ──send (C-STORE / STOW-RS, retries)──> journal: stored
    stored, not yet checked ──verify (one QIDO-RS / C-FIND per study)──> held: journal: verified
                                                                     └──> not held: journal: failed

Every file of the medium ends in the result, and in the journal, as stored, quarantined, failed (with the
reason; "held: ..." for a study waiting for reconciliation) or skipped (not an instance, with the reason), its
:attr:`ImportedFile.outcome` telling "sanitized then stored" and "not DICOM" apart. One file never stops the
run: a file pydicom cannot parse is quarantined, one a step cannot handle fails alone, each with one line.
Before the send, what an earlier run sent and never heard back about (in doubt: killed between the send and
the answer) is asked about first (:func:`dcmseal.importer.delivery.settle_in_doubt`): held, it is stored without a resend.
Only prepared files reach the PACS: written by us with a zero preamble, scanned again, and refused (quarantined)
if that scan is not clean. With ``verify`` (the default) the PACS is then asked which of the instances it
confirmed it holds (:mod:`dcmseal.importer.verify`): those confirmed in this run, and those an earlier run
left unchecked (killed between the confirmation and the query, or run without ``verify``); an instance
already verified is not asked about again. One it confirmed and does not hold is failed, so the next run sends
it again (not this one); a PACS that cannot be asked leaves a "not verified: ..." note and its confirmations,
still unchecked.

:func:`import_medium` runs these as stages, one function each, sharing one :class:`~dcmseal.importer.run.Run`:
read in (:func:`_read_in`), examine every file (:func:`_examine_files`), reconcile and hold (:func:`_reconcile`,
:func:`_hold_undecided`), plan UIDs (:func:`_uid_mapping`), prepare (:func:`_prepare_all`), send and verify
(:func:`_send_and_verify`), then audit (:func:`dcmseal.importer.report.audit_import`). The handlers are told
each file's outcome as it happens (:meth:`dcmseal.importer.run.Run.end`) and each held study once decided
(:func:`dcmseal.importer.report.announce_held`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path, PurePosixPath

from pydicom import dcmread

from dcmseal.audit import AuditSink, audit_unopened
from dcmseal.errors import DcmsealError, UsageError, one_line
from dcmseal.events import Emitter
from dcmseal.fsutil import make_dirs, staging_area
from dcmseal.importer.delivery import Prepared, send_prepared, sent_study, settle_in_doubt, verify_stored
from dcmseal.importer.examine import Candidate, examine, quarantine_unscanned
from dcmseal.importer.journal import Journal, JournalRow, State
from dcmseal.importer.medium import extract_medium, image_links, medium_fingerprint
from dcmseal.importer.prepare import dicom_datetime, fail, prepare
from dcmseal.importer.reconcile import StudyDecision, StudyHeld, reconcile_studies, summarise_decisions
from dcmseal.importer.report import announce_held, audit_import
from dcmseal.importer.request import ImportRequest, SenderFactory, default_sender
from dcmseal.importer.result import ImportedFile, ImportResult
from dcmseal.importer.run import Run
from dcmseal.importer.uids import UidPolicy, plan_uids
from dcmseal.importer.verify import Confirmed, Verification
from dcmseal.importer.worklist import WorklistEntry
from dcmseal.intake import NOT_DICOM, IntakeStatus, Keys, MediumFile, MediumReading, fileset_id, read_medium
from dcmseal.outcomes import ReasonKind
from dcmseal.scan import Finding, is_quarantine_dir, scan_medium_layout

__all__ = ["ImportRequest", "ImportResult", "ImportedFile", "import_medium", "medium_fingerprint"]

logger = logging.getLogger(__name__)


def import_medium(
    request: ImportRequest,
    *,
    audit: AuditSink,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sender_factory: SenderFactory | None = None,
) -> ImportResult:
    """Import ``request.medium`` into ``request.target``; see the module docstring for the steps.

    The import resumes what an earlier run with the same journal left: instances the peer confirmed are
    not sent again. It returns a result even when the peer fails midway (``peer_error``), after marking
    every unsent instance failed; the journal says exactly which were stored.

    Raises
    ------
    DecryptionError, UsageError, InputError
        The medium cannot be opened at all (wrong key, missing, not a medium), or the journal is busy.
        Audited as an Import that failed (and a Security Alert when the medium itself is refused).
    """
    try:
        return _import_medium(request, audit=audit, now=now, sender_factory=sender_factory)
    except UsageError:
        raise  # the command was incomplete, or the journal busy: nothing was read in
    except DcmsealError as exc:
        audit_unopened(audit, medium=request.medium, operator=request.operator, error=exc, now=now)
        raise


@dataclass(frozen=True, slots=True, kw_only=True)
class _Medium:
    """The medium once read in: its files as they are (when extracted whole), as read in, its own findings."""

    #: Its files as they are (a folder, or an image or zip extracted whole), when there is one.
    root: Path | None
    reading: MediumReading
    findings: tuple[Finding, ...]  # its layout's, outside the File-set (autorun, executables, unreferenced)
    files: list[tuple[str, Path | None]]  # every file, by path on the medium, with its bytes as they are
    links: dict[str, str]  # the symbolic links of an image (left out of its extraction) -> why skipped
    fileset_id: str  # of its DICOMDIR, for the audit

    @property
    def encrypted(self) -> bool:
        return any(f.status is IntakeStatus.OPENED for f in self.reading.files)


def _import_medium(
    request: ImportRequest,
    *,
    audit: AuditSink,
    now: Callable[[], datetime],
    sender_factory: SenderFactory | None,
) -> ImportResult:
    started = time.perf_counter()
    when = dicom_datetime(now())
    fingerprint = medium_fingerprint(request.medium)
    with (
        Journal.open(request.journal) as journal,
        # Decrypted patient data lives here until the end of the import: a private staging folder that the
        # next run of any command removes if this one is killed.
        staging_area(request.workdir or Path(tempfile.gettempdir())) as work,
    ):
        number = journal.begin_import(
            fingerprint=fingerprint,
            target=str(request.target),
            medium=str(request.medium),
            uid_policy=request.uid_policy.value,
        )
        run = Run(
            request=request,
            journal=journal,
            work=work,
            emitter=Emitter(request.handlers),
            fingerprint=fingerprint,
            previous=journal.rows(),
        )
        medium = _read_in(run)
        with journal.batch():  # the scan's rows in one transaction: nothing is sent before it commits
            candidates = _examine_files(run, medium)
            # Reconciliation decides per study: a study nothing settles is held whole.
            decisions = _reconcile(candidates, request, journal, fingerprint)
            ready = _hold_undecided(candidates, decisions, run.settle)
            reconciled = summarise_decisions([c.study for c in candidates], decisions)
        announce_held(reconciled, run.emitter)
        mapping = _uid_mapping(run, ready)
        outgoing = _prepare_all(run, ready, decisions, mapping, when)
        peer_error, verification = _send_and_verify(run, outgoing, sender_factory)
    outcome = _with_integrity(run.files, medium.reading)
    audit_import(
        run,
        outcome,
        medium_findings=medium.findings,
        encrypted=medium.encrypted,
        fileset_id=medium.fileset_id,
        reconciled=reconciled,
        audit=audit,
        now=now,
    )
    return ImportResult(
        medium=request.medium,
        target=str(request.target),
        fingerprint=fingerprint,
        run=number,
        uid_policy=request.uid_policy,
        files=outcome,
        medium_findings=medium.findings,
        peer_error=peer_error,
        journal=request.journal,
        notes=tuple(run.notes),
        elapsed_s=time.perf_counter() - started,
        verification=verification,
        reconciliation=reconciled,
    )


def _read_in(run: Run) -> _Medium:
    """Read the medium in: its files as they are (extracted whole when it can be), its layout scanned, and every
    file recognised and, when sealed, unsealed (:func:`dcmseal.intake.read_medium`)."""
    request, work = run.request, run.work
    root = extract_medium(request, work, run.notes)
    if root is not None and is_quarantine_dir(root):
        raise UsageError("this is a quarantine folder: its files are never imported", path=request.medium)
    findings = tuple(scan_medium_layout(root)) if root is not None else ()
    (work / "intake").mkdir()
    reading = read_medium(
        root if root is not None else request.medium, work / "intake", Keys.of(request), emitter=run.emitter
    )
    listing: dict[str, Path | None] = (
        {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
        if root is not None
        else {}
    )
    # Every file read in is accounted for, also one the extraction left out (a Rock Ridge link) and, when
    # the image was read in file by file, every file: those have no bytes of their own here (None).
    listing |= {f.label: None for f in reading.files if f.label not in listing}
    links = image_links(request.medium) if root is not None else {}
    listing |= {rel: None for rel in links if rel not in listing}
    return _Medium(
        root=root,
        reading=reading,
        findings=findings,
        files=sorted(listing.items()),
        links=links,
        fileset_id=fileset_id(reading),
    )


def _examine_files(run: Run, medium: _Medium) -> list[Candidate]:
    """Settle every file of the medium that is not to be sent, and examine the others: the candidates to send."""
    (run.work / "sanitized").mkdir()
    (run.work / "prepared").mkdir()
    (run.work / "conformed").mkdir()
    by_label = {f.label: f for f in medium.reading.files}
    uid_map = cache(run.journal.uid_map)  # read once, and only for a journal of version 1
    candidates: list[Candidate] = []
    instances: dict[str, str] = {}  # SOP Instance UID -> the first file of the medium that holds it
    for number, (rel, path) in enumerate(medium.files, start=1):
        run.emitter.progress("scan", number, len(medium.files))
        earlier = run.previous.get(rel)
        if earlier is not None and earlier.state is State.STORED:
            _carry_over(run, rel, earlier, by_label.get(rel), path, uid_map)
            continue
        scanned = _to_scan(run, medium, rel, path, by_label.get(rel), instances)
        if scanned is None:
            continue
        candidate = _examine_one(run, rel, number, *scanned)
        if candidate is not None:
            candidates.append(candidate)
            run.journal.record(
                rel,
                State.PENDING,
                source_sha256=candidate.source_sha256,
                sop_instance_uid=candidate.uids.sop_instance,
            )
    return candidates


def _carry_over(
    run: Run,
    rel: str,
    earlier: JournalRow,
    entry: MediumFile | None,
    path: Path | None,
    uid_map: Callable[[], Mapping[str, str]],
) -> None:
    """``rel`` was stored by an earlier run: not sent again, and asked about if that run did not verify it."""
    if run.request.verify and earlier.verified is None and earlier.sent_sop_instance_uid:
        source = (
            entry.plain
            if entry is not None and (entry.status is IntakeStatus.OPENED or path is None)
            else path
        )
        study = sent_study(earlier, source, run.request.uid_policy, uid_map) if source is not None else None
        if study is not None:
            run.carried.append(Confirmed(rel, study, earlier.sent_sop_instance_uid, earlier_run=True))
    run.end(
        ImportedFile(
            path=rel,
            status=State.STORED,
            reason="stored by an earlier run",
            sop_instance_uid=earlier.sop_instance_uid,
            sent_sop_instance_uid=earlier.sent_sop_instance_uid,
            earlier_run=True,
            confirmation=earlier.confirmation,
        )
    )


def _to_scan(
    run: Run,
    medium: _Medium,
    rel: str,
    path: Path | None,
    entry: MediumFile | None,
    instances: dict[str, str],
) -> tuple[Path, Path | None] | None:
    """The bytes of ``rel`` to scan and the PS3.10 copy to fall back on; None when it is settled here instead
    (in a quarantine folder, hidden, a link, not DICOM, not opened, a DICOMDIR, a second copy of an instance
    in ``instances``, which maps each SOP Instance UID seen to its first file)."""
    root = medium.root
    name = PurePosixPath(rel).name
    if root is not None and any(
        is_quarantine_dir(root / parent) for parent in Path(rel).parents if parent != Path(".")
    ):
        run.settle(rel, State.SKIPPED, "in a quarantine folder (never imported)")
        return None
    if name.startswith("."):
        run.settle(rel, State.SKIPPED, "a hidden file (not part of a File-set)")
        return None
    if rel in medium.links:
        run.settle(rel, State.SKIPPED, medium.links[rel])
        return None
    if entry is None:
        run.settle(rel, State.SKIPPED, "not read by open")
        return None
    if entry.status is IntakeStatus.FAILED and entry.encrypted:
        run.settle(rel, State.FAILED, entry.reason or "could not be opened")
        return None
    if entry.status is IntakeStatus.SKIPPED:
        reason = entry.reason or NOT_DICOM
        not_dicom = entry.reason is None or entry.kind is ReasonKind.NOT_DICOM
        run.settle(rel, State.SKIPPED, reason, not_dicom=not_dicom, kind=entry.kind)
        return None
    if name.upper() == "DICOMDIR":
        run.settle(rel, State.SKIPPED, "the DICOMDIR (the File-set's directory, not an instance)")
        return None
    uid = _instance_uid(entry)
    first = instances.setdefault(uid, rel) if uid else rel
    if first != rel:
        reason = f"a second copy of the instance in {first} (same SOP Instance UID): left out"
        run.settle(rel, State.SKIPPED, reason, sop_instance_uid=uid)
        return None
    # A plain file's PS3.10 copy (File Meta given to a data set that had none): what is prepared when the
    # medium's own clean bytes cannot be sent as they are.
    conformed = entry.plain if entry.status is IntakeStatus.COPIED else None
    if entry.status is IntakeStatus.OPENED and entry.plain is not None:
        return entry.plain, conformed
    if path is not None:
        return path, conformed  # a plain file: scan the bytes exactly as they are on the medium
    if conformed is not None:
        return conformed, conformed  # read in out of the image: its copy is what there is to scan
    run.settle(rel, State.FAILED if entry.status is IntakeStatus.FAILED else State.SKIPPED, entry.reason)
    return None


def _instance_uid(entry: MediumFile) -> str:
    """The SOP Instance UID of ``entry``'s data set (its PS3.10 copy); "" when it has none that reads."""
    if entry.plain is None:
        return ""
    try:
        ds = dcmread(entry.plain, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
    except Exception:  # whatever pydicom raises, the scan that follows says what is wrong with the file
        return ""
    return str(ds.get("SOPInstanceUID", "") or "").strip()


def _examine_one(run: Run, rel: str, number: int, scanned: Path, conformed: Path | None) -> Candidate | None:
    """Examine one file (:func:`dcmseal.importer.examine.examine`); a file the scan chokes on is quarantined."""
    try:
        return examine(run, rel, number, scanned, conformed)
    except DcmsealError as exc:
        # The quarantine itself failed (disk full, not writable): nothing more can be done for the file
        # here, and it is not sent.
        logger.debug("%s: cannot be examined", rel, exc_info=True)
        run.settle(rel, State.FAILED, f"cannot be scanned or quarantined: {one_line(exc)}")
    except Exception as exc:  # a file the scanner chokes on is refused, not the run
        logger.debug("%s: the scan failed", rel, exc_info=True)
        quarantine_unscanned(run, rel, scanned, exc)
    return None


def _uid_mapping(run: Run, ready: list[Candidate]) -> dict[str, str]:
    """Under ``--uids regenerate``, the new UID of each one the ready files carry, journaled before any is sent."""
    if run.request.uid_policy is not UidPolicy.REGENERATE or not ready:
        return {}
    mapping, added = plan_uids([c.uids for c in ready], run.journal.uid_map())
    run.journal.add_uids(added)  # recorded before any instance leaves with them
    return mapping


def _prepare_all(
    run: Run,
    ready: list[Candidate],
    decisions: Mapping[str, StudyDecision | StudyHeld],
    mapping: dict[str, str],
    when: str,
) -> list[Prepared]:
    """Write each ready file as it is to be sent (:func:`dcmseal.importer.prepare.prepare`); one that breaks
    fails alone."""
    if run.request.keep_sent is not None:
        make_dirs(run.request.keep_sent)
    outgoing: list[Prepared] = []
    for number, candidate in enumerate(ready, start=1):
        run.emitter.progress("prepare", number, len(ready))
        try:
            prepared = prepare(run, candidate, decisions, mapping, when)
        except Exception as exc:  # one file that breaks a step fails alone; the run goes on
            logger.debug("%s: cannot be prepared", candidate.rel, exc_info=True)
            fail(run, candidate, f"cannot be prepared for the send: {one_line(exc)}")
            continue
        if prepared is not None:
            item, sha, coerced, patient_id, study_uid = prepared
            outgoing.append((candidate, item, sha, coerced))
            run.sent_facts[item.key] = (patient_id, study_uid, item.sop_class_uid)
    return outgoing


def _send_and_verify(
    run: Run, outgoing: list[Prepared], sender_factory: SenderFactory | None
) -> tuple[str | None, Verification | None]:
    """Settle what is in doubt, send the rest, then ask the PACS about what it confirmed and nobody checked;
    the peer's error, if it failed, and what the asking found."""
    request = run.request
    factory = sender_factory or default_sender(request)
    pairs = [(item.sop_class_uid, item.transfer_syntax_uid) for _c, item, _s, _k in outgoing]
    sender = factory(request.target, pairs) if outgoing else None
    peer_error: str | None = None
    verification: Verification | None = None
    try:
        confirmed: list[Confirmed] = []  # in this run, with the UIDs sent
        if sender is not None:
            peer_error, confirmed = send_prepared(run, sender, settle_in_doubt(run, sender, outgoing))
        unchecked = [*confirmed, *run.carried]
        if request.verify and unchecked:
            if peer_error is not None:
                # Asking a PACS that just failed would only spend the retry time again.
                run.notes.append(
                    f"not verified: the PACS failed during the send; {len(unchecked)} instance(s) remain "
                    "unverified, a rerun with --verify asks again"
                )
            else:
                if sender is None:  # nothing to send, only what an earlier run left unchecked
                    sender = factory(request.target, [])
                verification = verify_stored(run, sender, unchecked)
    finally:
        if sender is not None:
            sender.close()
    return peer_error, verification


def _with_integrity(files: Mapping[str, ImportedFile], reading: MediumReading) -> tuple[ImportedFile, ...]:
    """Every file's outcome, by path, with the integrity of those opened from an envelope."""
    integrity = {f.label: f.integrity for f in reading.files if f.integrity is not None}
    return tuple(replace(files[k], integrity=integrity.get(k)) for k in sorted(files))


def _reconcile(
    candidates: list[Candidate], request: ImportRequest, journal: Journal, fingerprint: str
) -> dict[str, StudyDecision | StudyHeld]:
    """Each study's local identity (choices kept in the journal, the map, the worklist), or why it is held."""
    if request.reconciliation is None and request.worklist is None:
        return {}
    choices = {
        uid: (WorklistEntry.from_json(local), who)
        for uid, (local, who) in journal.choices(fingerprint).items()
    }
    return reconcile_studies(
        [c.study for c in candidates],
        mapping=request.reconciliation,
        worklist=request.worklist,
        rules=request.match_rules,
        choices=choices,
    )


def _hold_undecided(
    candidates: list[Candidate],
    decisions: Mapping[str, StudyDecision | StudyHeld],
    settle: Callable[..., None],
) -> list[Candidate]:
    """Settle every instance of a held study as failed with the study's reason; return the others."""
    ready = []
    for c in candidates:
        decision = decisions.get(c.uids.study)
        if isinstance(decision, StudyHeld):
            settle(
                c.rel,
                State.FAILED,
                decision.reason,
                kind=ReasonKind.HELD,
                verdict=c.verdict,
                findings=c.findings,
                changes=c.changes,
                sop_instance_uid=c.uids.sop_instance,
            )
        else:
            ready.append(c)
    return ready
