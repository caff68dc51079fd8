"""Import a medium into a PACS: open, scan, sanitize or quarantine, reconcile, set UIDs, send, journal.

::

    medium ──open (unseal, verify)──> plain files ──scan──> clean ─────────────────────┐
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
the answer) is asked about first (:func:`_settle_in_doubt`): held, it is stored without a resend.
Only prepared files reach the PACS: written by us with a zero preamble, scanned again, and refused (quarantined)
if that scan is not clean. With ``verify`` (the default) the PACS is then asked which of the instances it
confirmed it holds (:mod:`dcmseal.importer.verify`): those confirmed in this run, and those an earlier run
left unchecked (killed between the confirmation and the query, or run without ``verify``); an instance
already verified is not asked about again. One it confirmed and does not hold is failed, so the next run sends
it again (not this one); a PACS that cannot be asked leaves a "not verified: ..." note and its confirmations,
still unchecked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path, PurePosixPath

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, ExplicitVRBigEndian, MediaStorageDirectoryStorage

from dcmseal.audit import (
    AuditEvent,
    AuditSink,
    AuditUser,
    EventOutcome,
    NullSink,
    PatientRef,
    StudyRef,
    audit_medium,
    audit_patients,
    audit_unopened,
    import_event,
    security_alert,
)
from dcmseal.config import DEFAULT_KDF_BUDGET_PER_MEDIUM, DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import (
    DcmsealError,
    HostileMediumError,
    InputError,
    NotPart10Error,
    PeerError,
    UsageError,
    one_line,
)
from dcmseal.fsutil import CHUNK_SIZE_BYTES, atomic_write, make_dirs, sha256_file, staging_area
from dcmseal.importer.journal import IN_DOUBT, NOT_CONFIRMED, Journal, JournalRow, State
from dcmseal.importer.reconcile import (
    ReconciledStudy,
    ReconciliationMap,
    StudyDecision,
    StudyHeld,
    add_original_attributes,
    coerce_dataset,
    reconcile_studies,
    summarise_decisions,
)
from dcmseal.importer.send import (
    DEFAULT_AE_TITLE,
    DicomWebTarget,
    DimseTarget,
    Outgoing,
    RetryPolicy,
    Sender,
    Target,
    deliver,
)
from dcmseal.importer.uids import UidPolicy, UidTriple, plan_uids, regenerate_uids
from dcmseal.importer.verify import Confirmed, Verification, not_held_reason, verify_held
from dcmseal.importer.worklist import ForeignStudy, MatchRules, WorklistEntry, WorklistService
from dcmseal.intake import NOT_DICOM
from dcmseal.media.open import OpenRequest, open_to_folder
from dcmseal.outcomes import ReasonKind
from dcmseal.part10.fileformat import ZERO_PREAMBLE, is_part10, parse_meta_group, read_file_meta
from dcmseal.reader import is_iso_image, open_archive
from dcmseal.reader.medium import open_medium
from dcmseal.scan import (
    Finding,
    Verdict,
    is_quarantine_dir,
    quarantine_file,
    sanitize_file,
    scan_file,
    scan_medium_layout,
)
from dcmseal.uids import stamp_implementation

__all__ = ["ImportRequest", "ImportResult", "ImportedFile", "import_medium", "medium_fingerprint"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
SenderFactory = Callable[[Target, Sequence[tuple[str, str]]], Sender]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRequest:
    """A medium, the PACS it goes to, and how: keys, reconciliation, UID policy, journal, quarantine, retries."""

    medium: Path
    target: Target
    operator: str
    journal: Path
    quarantine: Path
    passwords: tuple[bytes, ...] = field(default=(), repr=False)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)  # PKCS#8 DER
    certificates: tuple[bytes | None, ...] = ()
    reconciliation: ReconciliationMap | None = None
    #: The Modality Worklist asked for the studies the mapping file does not settle, with these rules.
    worklist: WorklistService | None = None
    match_rules: MatchRules | None = None
    uid_policy: UidPolicy = UidPolicy.KEEP
    calling_aet: str = DEFAULT_AE_TITLE
    username: str | None = None
    http_password: str | None = field(default=None, repr=False)
    http_token: str | None = field(default=None, repr=False)  # a bearer token (RFC 6750) instead of a user
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: A folder that receives a copy of every prepared (sent) file, named by its SOP Instance UID.
    keep_sent: Path | None = None
    #: Source of Previous Values (0400,0564); default: each instance's Institution Name, else empty.
    source_of_previous_values: str | None = None
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    workers: int = 0
    #: Where the private work folder (plaintext of the medium) is made; default: the system's temp folder.
    workdir: Path | None = None
    ask_password: Callable[[], str] | None = field(default=None, repr=False)
    #: After the send, ask the PACS (QIDO-RS / C-FIND) whether it holds what it confirmed in this run.
    verify: bool = True
    #: Send again what an earlier run sent without an answer when the PACS cannot be asked whether it holds
    #: it (a peer with no query service): it may then be stored twice.
    resend_in_doubt: bool = False
    #: Also open envelopes with no digest or signature inside; each such file says integrity "not-verified".
    accept_unprotected: bool = False
    #: PBKDF2 iterations opening the medium may cost (see :class:`dcmseal.media.open.OpenRequest`).
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM


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
    integrity: str | None = None

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
            "integrity": self.integrity,
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


def medium_fingerprint(medium: Path) -> str:
    """``sha256:<hex>`` of the medium: of the image file, or of every file's path and content for a folder.

    The journal keys an import by it, so a rerun from another mount point or a copy of the image resumes.
    """
    medium = Path(medium)
    if medium.is_file():
        return f"sha256:{sha256_file(medium)}"
    digest = hashlib.sha256()
    for path in sorted(p for p in medium.rglob("*") if p.is_file()):
        digest.update(path.relative_to(medium).as_posix().encode("utf-8", "surrogateescape") + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return f"sha256:{digest.hexdigest()}"


def _dt(moment: datetime) -> str:
    """A DICOM DT with its UTC offset."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S.%f") + "+0000"


@dataclass(slots=True)
class _Candidate:
    """A DICOM instance of the medium on its way to the PACS."""

    index: int
    rel: str
    chosen: Path  # the scanned-clean or sanitized bytes that are prepared
    source_sha256: str
    verdict: str
    findings: tuple[str, ...]
    changes: tuple[str, ...]
    patient_id: str
    issuer: str | None
    accession: str
    uids: UidTriple
    sop_class_uid: str
    institution: str
    study: ForeignStudy  # the patient and order keys reconciliation decides on
    transfer_syntax_uid: str = ""
    #: Elements pydicom read without a VR (implicit VR under an explicit Transfer Syntax): must be re-encoded.
    mislabelled: bool = False


def _default_sender(
    request: ImportRequest,
) -> SenderFactory:
    def make(target: Target, pairs: Sequence[tuple[str, str]]) -> Sender:
        if isinstance(target, DimseTarget):
            from dcmseal.importer.dimse import DimseSender

            return DimseSender(target, calling_aet=request.calling_aet, pairs=pairs)
        from dcmseal.importer.dicomweb import StowSender

        assert isinstance(target, DicomWebTarget)
        return StowSender(
            target, username=request.username, password=request.http_password, token=request.http_token
        )

    return make


def import_medium(
    request: ImportRequest,
    *,
    audit: AuditSink,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Progress | None = None,
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
        return _import_medium(request, audit=audit, now=now, progress=progress, sender_factory=sender_factory)
    except UsageError:
        raise  # the command was incomplete, or the journal busy: nothing was read in
    except DcmsealError as exc:
        audit_unopened(audit, medium=request.medium, operator=request.operator, error=exc, now=now)
        raise


def _import_medium(
    request: ImportRequest,
    *,
    audit: AuditSink,
    now: Callable[[], datetime],
    progress: Progress | None,
    sender_factory: SenderFactory | None,
) -> ImportResult:
    started = time.perf_counter()
    step = progress or (lambda _stage, _done, _total: None)
    moment = now()
    target = str(request.target)
    notes: list[str] = []
    files: dict[str, ImportedFile] = {}
    alerts: list[tuple[str, str, str]] = []  # (path, sha256, reason) of quarantined files
    fingerprint = medium_fingerprint(request.medium)
    with (
        Journal.open(request.journal) as journal,
        # Decrypted patient data lives here until the end of the import: a private staging folder that the
        # next run of any command removes if this one is killed.
        staging_area(request.workdir or Path(tempfile.gettempdir())) as work,
    ):
        run = journal.begin_import(
            fingerprint=fingerprint,
            target=target,
            medium=str(request.medium),
            uid_policy=request.uid_policy.value,
        )
        previous = journal.rows()
        root = _extract(request, work, notes)
        if root is not None and is_quarantine_dir(root):
            raise UsageError("this is a quarantine folder: its files are never imported", path=request.medium)
        medium_findings = scan_medium_layout(root) if root is not None else ()
        opened = open_to_folder(
            OpenRequest(
                medium=root if root is not None else request.medium,
                out=work / "opened",
                operator=request.operator,
                passwords=request.passwords,
                private_keys=request.private_keys,
                certificates=request.certificates,
                max_iterations=request.max_iterations,
                workers=request.workers,
                ask_password=request.ask_password,
                accept_unprotected=request.accept_unprotected,
                screen=False,  # the import scans, sanitizes and quarantines each file itself (_examine)
                kdf_budget_per_medium=request.kdf_budget_per_medium,
            ),
            audit=NullSink(),  # the import writes one Import message with the final outcome
            progress=progress,
        )
        notes.extend(opened.notes)  # what open said of the DICOMDIR (missing, disagreeing, rebuilt)
        encrypted = any(f.status == "opened" for f in opened.files)
        by_path = {f.path: f for f in opened.files}
        listing: dict[str, Path | None] = (
            {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
            if root is not None
            else {}
        )
        # Every file open reports is accounted for, also one the extraction left out (a Rock Ridge link) and,
        # when open read the image itself, every file: those have no bytes of their own here (None).
        listing |= {f.path: None for f in opened.files if f.path not in listing}
        links = _image_links(request.medium) if root is not None else {}
        listing |= {rel: None for rel in links if rel not in listing}
        raw_files = sorted(listing.items())
        candidates: list[_Candidate] = []
        (work / "sanitized").mkdir()
        (work / "prepared").mkdir()

        def settle(rel: str, state: State, reason: str | None, **extra: object) -> None:
            journal.record(rel, state, reason=reason)
            files[rel] = ImportedFile(path=rel, status=state, reason=reason, **extra)  # type: ignore[arg-type]

        # Stored by an earlier run that did not ask the PACS (killed after the confirmation, or --no-verify).
        carried: list[Confirmed] = []
        uid_map = cache(journal.uid_map)  # read once, and only for a journal of version 1
        with journal.batch():  # the scan's rows in one transaction: nothing is sent before it commits
            for number, (rel, path) in enumerate(raw_files, start=1):
                step("scan", number, len(raw_files))
                name = PurePosixPath(rel).name
                earlier = previous.get(rel)
                if earlier is not None and earlier.state is State.STORED:
                    if request.verify and earlier.verified is None and earlier.sent_sop_instance_uid:
                        entry = by_path.get(rel)
                        source = (
                            work / "opened" / Path(*entry.file_id.split("/"))
                            if entry is not None
                            and entry.file_id is not None
                            and (entry.status == "opened" or path is None)
                            else path
                        )
                        study = (
                            _sent_study(earlier, source, request.uid_policy, uid_map)
                            if source is not None
                            else None
                        )
                        if study is not None:
                            carried.append(
                                Confirmed(rel, study, earlier.sent_sop_instance_uid, earlier_run=True)
                            )
                    files[rel] = ImportedFile(
                        path=rel,
                        status=State.STORED,
                        reason="stored by an earlier run",
                        sop_instance_uid=earlier.sop_instance_uid,
                        sent_sop_instance_uid=earlier.sent_sop_instance_uid,
                        earlier_run=True,
                        confirmation=earlier.confirmation,
                    )
                    continue
                if root is not None and any(
                    is_quarantine_dir(root / parent) for parent in Path(rel).parents if parent != Path(".")
                ):
                    settle(rel, State.SKIPPED, "in a quarantine folder (never imported)")
                    continue
                if name.startswith("."):
                    settle(rel, State.SKIPPED, "a hidden file (not part of a File-set)")
                    continue
                if rel in links:
                    settle(rel, State.SKIPPED, links[rel])
                    continue
                entry = by_path.get(rel)
                if entry is None:
                    settle(rel, State.SKIPPED, "not read by open")
                    continue
                if entry.status == "failed" and entry.encrypted:
                    settle(rel, State.FAILED, entry.reason or "could not be opened")
                    continue
                if entry.status == "skipped":
                    reason = entry.reason or NOT_DICOM
                    not_dicom = entry.reason is None or entry.kind is ReasonKind.NOT_DICOM
                    settle(rel, State.SKIPPED, reason, not_dicom=not_dicom, kind=entry.kind)
                    continue
                if name.upper() == "DICOMDIR":
                    settle(rel, State.SKIPPED, "the DICOMDIR (the File-set's directory, not an instance)")
                    continue
                in_fileset = work / "opened" / Path(*entry.file_id.split("/")) if entry.file_id else None
                conformed = in_fileset if entry.status == "copied" else None
                scanned: Path
                if entry.status == "opened":
                    if in_fileset is None:
                        settle(rel, State.FAILED, "opened, but missing from the opened File-set")
                        continue
                    scanned = in_fileset
                elif path is not None:
                    scanned = path  # a plain file: scan the bytes exactly as they are on the medium
                elif conformed is not None:
                    scanned = conformed  # read by open out of the image: its copy is what there is to scan
                else:
                    settle(rel, State.FAILED if entry.status == "failed" else State.SKIPPED, entry.reason)
                    continue
                try:
                    candidate = _examine(rel, number, scanned, work, request, settle, alerts, conformed)
                except DcmsealError as exc:
                    # The quarantine itself failed (disk full, not writable): nothing more can be done for the
                    # file here, and it is not sent.
                    logger.debug("%s: cannot be examined", rel, exc_info=True)
                    settle(rel, State.FAILED, f"cannot be scanned or quarantined: {one_line(exc)}")
                    continue
                except Exception as exc:  # a file the scanner chokes on is refused, not the run
                    logger.debug("%s: the scan failed", rel, exc_info=True)
                    _quarantine_unscanned(rel, scanned, exc, request, settle, alerts)
                    continue
                if candidate is not None:
                    candidates.append(candidate)
                    journal.record(
                        rel,
                        State.PENDING,
                        source_sha256=candidate.source_sha256,
                        sop_instance_uid=candidate.uids.sop_instance,
                    )

            # Reconciliation decides per study: a study nothing settles is held whole.
            decisions = _reconcile(candidates, request, journal, fingerprint)
            ready = _hold_undecided(candidates, decisions, settle)
            reconciled = summarise_decisions([c.study for c in candidates], decisions)
        mapping: dict[str, str] = {}
        if request.uid_policy is UidPolicy.REGENERATE and ready:
            mapping, added = plan_uids([c.uids for c in ready], journal.uid_map())
            journal.add_uids(added)  # recorded before any instance leaves with them
        if request.keep_sent is not None:
            make_dirs(request.keep_sent)

        peer_error: str | None = None
        verification: Verification | None = None
        stored_now = 0
        # path -> (local Patient ID, Study Instance UID, SOP Class UID) as sent, for the Import audit message
        sent_facts: dict[str, tuple[str, str, str]] = {}
        pairs: list[tuple[str, str]] = []
        outgoing: list[_Outgoing] = []
        for number, candidate in enumerate(ready, start=1):
            step("prepare", number, len(ready))
            try:
                prepared = _prepare(candidate, work, request, decisions, mapping, _dt(moment), settle, alerts)
            except Exception as exc:  # one file that breaks a step fails alone; the run goes on
                logger.debug("%s: cannot be prepared", candidate.rel, exc_info=True)
                _fail(candidate, settle, f"cannot be prepared for the send: {one_line(exc)}")
                continue
            if prepared is not None:
                item, sha, coerced, patient_id, study_uid = prepared
                outgoing.append((candidate, item, sha, coerced))
                pairs.append((item.sop_class_uid, item.transfer_syntax_uid))
                sent_facts[item.key] = (patient_id, study_uid, item.sop_class_uid)
        factory = sender_factory or _default_sender(request)
        sender = factory(request.target, pairs) if outgoing else None
        confirmed: list[Confirmed] = []  # in this run, with the UIDs sent
        try:
            if sender is not None:
                outgoing = _settle_in_doubt(
                    outgoing, previous, sender, journal, request, sent_facts, files, notes, step
                )
            size = sender.batch_size if sender is not None else 1
            for start in range(0, len(outgoing), size):
                batch = outgoing[start : start + size]
                items = [o for _c, o, _s, _k in batch]
                sent = {o.key: (sha, o.sop_instance_uid, sent_facts[o.key][1]) for _c, o, sha, _k in batch}
                assert sender is not None
                try:
                    answers = deliver(
                        sender,
                        items,
                        request.retry,
                        target=request.target,
                        before_attempt=partial(_count_attempt, journal, sent),
                    )
                except PeerError as exc:
                    peer_error = str(exc)
                    for candidate, item, _sha, coerced in outgoing[start:]:
                        reason = (
                            f"{NOT_CONFIRMED}{exc}" if item in items else f"not sent: the PACS failed ({exc})"
                        )
                        journal.mark_failed(item.key, reason)
                        files[item.key] = _file(candidate, State.FAILED, reason, item, coerced)
                    break
                for (candidate, item, _sha, coerced), answer in zip(batch, answers, strict=True):
                    if answer.stored:
                        journal.mark_stored(item.key, answer.confirmation)
                        confirmed.append(Confirmed(item.key, sent_facts[item.key][1], item.sop_instance_uid))
                        stored_now += 1
                        files[item.key] = _file(
                            candidate, State.STORED, None, item, coerced, confirmation=answer.confirmation
                        )
                    else:
                        reason = answer.reason or "refused"
                        if answer.in_doubt:  # a rerun asks the PACS before it sends it again
                            reason = NOT_CONFIRMED + reason
                        journal.mark_failed(item.key, reason)
                        files[item.key] = _file(candidate, State.FAILED, reason, item, coerced)
                step("send", stored_now, len(outgoing))
            unchecked = [*confirmed, *carried]
            if request.verify and unchecked:
                if peer_error is not None:
                    # Asking a PACS that just failed would only spend the retry time again.
                    notes.append(
                        f"not verified: the PACS failed during the send; {len(unchecked)} instance(s) remain "
                        "unverified, a rerun with --verify asks again"
                    )
                else:
                    if sender is None:  # nothing to send, only what an earlier run left unchecked
                        sender = factory(request.target, [])
                    verification = _verify(journal, sender, unchecked, request, step, files, notes)
        finally:
            if sender is not None:
                sender.close()

    integrity = {f.path: f.integrity for f in opened.files if f.integrity is not None}
    outcome = tuple(replace(files[k], integrity=integrity.get(k)) for k in sorted(files))
    _audit(
        request,
        outcome,
        medium_findings,
        fingerprint,
        encrypted,
        alerts,
        sent_facts,
        audit,
        now,
        notes,
        reconciled,
        fileset_id=opened.fileset_id,
    )
    return ImportResult(
        medium=request.medium,
        target=target,
        fingerprint=fingerprint,
        run=run,
        uid_policy=request.uid_policy,
        files=outcome,
        medium_findings=tuple(medium_findings),
        peer_error=peer_error,
        journal=request.journal,
        notes=tuple(notes),
        elapsed_s=time.perf_counter() - started,
        verification=verification,
        reconciliation=reconciled,
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


_Outgoing = tuple[_Candidate, Outgoing, str, tuple[str, ...]]


def _settle_in_doubt(
    outgoing: list[_Outgoing],
    previous: Mapping[str, JournalRow],
    sender: Sender,
    journal: Journal,
    request: ImportRequest,
    sent_facts: Mapping[str, tuple[str, str, str]],
    files: dict[str, ImportedFile],
    notes: list[str],
    step: Progress,
) -> list[_Outgoing]:
    """Ask the PACS about what an earlier run sent and never heard back about; return what is still to send.

    Held: recorded stored (found by the query) and not sent again. Not held: sent. Unknown (the PACS cannot be
    asked, or does not answer): sent only with ``request.resend_in_doubt``, else failed as in doubt, so nothing
    is ever stored twice without the operator saying so.
    """
    doubtful: list[Confirmed] = []
    for _candidate, item, _sha, _coerced in outgoing:
        row = previous.get(item.key)
        if row is not None and row.in_doubt and row.sent_sop_instance_uid is not None:
            study = row.sent_study_instance_uid or sent_facts[item.key][1]
            doubtful.append(Confirmed(item.key, study, row.sent_sop_instance_uid, earlier_run=True))
    if not doubtful:
        return outgoing
    verification = _ask(sender, doubtful, request, step, "in doubt")
    held = set(verification.held)
    unknown = {d.key for d in doubtful} - held - set(verification.not_held)
    query = verification.query
    why = (verification.note or "").removeprefix("not verified: ").split("; ")[0]
    doubt_reason = (
        f"{IN_DOUBT}an earlier run sent it and stopped before {request.target} answered, and {why}; not sent "
        "again, so that it is never stored twice (rerun with --resend-in-doubt to send it anyway)"
    )
    remaining: list[_Outgoing] = []
    for entry in outgoing:
        candidate, item, _sha, coerced = entry
        if item.key in held:
            found = journal.mark_found(item.key, query)
            files[item.key] = replace(
                _file(candidate, State.STORED, None, item, coerced, confirmation=found),
                reason=f"stored by an earlier run that stopped before the answer; found held by {query}",
                earlier_run=True,
            )
        elif item.key in unknown and not request.resend_in_doubt:
            journal.mark_failed(item.key, doubt_reason)
            files[item.key] = _file(candidate, State.FAILED, doubt_reason, item, coerced)
        else:
            remaining.append(entry)
    notes.append(
        f"{len(doubtful)} instance(s) sent by an earlier run that stopped before the answer: {len(held)} found "
        f"held by {query} (not sent again), {len(verification.not_held)} not held (sent again), {len(unknown)} "
        "unknown"
        + ("" if not unknown else (" (sent again)" if request.resend_in_doubt else " (left in doubt)"))
    )
    return remaining


def _ask(
    sender: Sender, instances: Sequence[Confirmed], request: ImportRequest, step: Progress, stage: str
) -> Verification:
    """Which of ``instances`` the PACS holds (one query per study, within the import's retry policy)."""
    return verify_held(
        sender,
        instances,
        request.retry,
        target=request.target,
        progress=lambda done, total: step(stage, done, total),
    )


def _count_attempt(
    journal: Journal, sent: dict[str, tuple[str, str, str]], chunk: Sequence[Outgoing]
) -> None:
    journal.mark_sending([o.key for o in chunk], sent)


def _verify(
    journal: Journal,
    sender: Sender,
    unchecked: Sequence[Confirmed],
    request: ImportRequest,
    step: Progress,
    files: dict[str, ImportedFile],
    notes: list[str],
) -> Verification:
    """Ask the PACS about ``unchecked``; journal what it holds as verified, and what it does not hold as failed."""
    verification = _ask(sender, unchecked, request, step, "verify")
    journal.mark_verified(verification.held, verification.query)
    reason = not_held_reason(verification.query)
    for key in verification.not_held:
        journal.mark_not_held(key, reason)
        files[key] = replace(files[key], status=State.FAILED, reason=reason)
        logger.warning("%s: %s", key, reason)
    if verification.note is not None:
        notes.append(verification.note)
    return verification


def _sent_study(
    row: JournalRow, source: Path, policy: UidPolicy, uid_map: Callable[[], Mapping[str, str]]
) -> str | None:
    """The Study Instance UID ``row``'s instance was sent with, for asking the PACS about it.

    A version 1 journal did not record it: it is read again from the medium (the same bytes, the fingerprint
    says so) and, under ``--uids regenerate``, mapped as it was when sent. None when it cannot be read.
    """
    if row.sent_study_instance_uid is not None:
        return row.sent_study_instance_uid
    try:
        study = str(
            dcmread(source, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]).StudyInstanceUID
        )
    except (InvalidDicomError, AttributeError, ValueError, OSError) as exc:
        logger.warning(
            "%s: the study it was sent in cannot be read again, so it is not verified: %s", row.path, exc
        )
        return None
    return uid_map().get(study, study) if policy is UidPolicy.REGENERATE else study


def _examine(
    rel: str,
    number: int,
    source: Path,
    work: Path,
    request: ImportRequest,
    settle: Callable[..., None],
    alerts: list[tuple[str, str, str]],
    conformed: Path | None = None,
) -> _Candidate | None:
    """Scan one instance; sanitize it if it needs it, quarantine it if it cannot be; read what the import needs.

    ``conformed`` is the copy open made of a plain file (File Meta added to a data set that had none, big endian
    made little endian): what is prepared when the medium's own clean bytes cannot be sent as they are.
    """
    if _is_dicomdir(source):
        settle(rel, State.SKIPPED, "a DICOMDIR (a File-set's directory, not an instance)")
        return None
    sha = sha256_file(source)
    report = scan_file(source, name=rel)
    codes = tuple(f.code for f in report.findings if f.severity is not Verdict.CLEAN)
    chosen: Path = source
    changes: tuple[str, ...] = ()
    refuse = partial(
        _quarantine,
        rel,
        source,
        sha,
        findings=report.findings,
        request=request,
        settle=settle,
        alerts=alerts,
        verdict=report.verdict.value,
        codes=codes,
    )
    if report.verdict is not Verdict.CLEAN:
        sanitized = sanitize_file(source, work / "sanitized" / f"{number:06d}.dcm", overwrite=True)
        if sanitized.output is None:
            refuse(sanitized.refused or f"{report.verdict.value}: cannot be made safe")
            return None
        chosen, changes = sanitized.output, tuple(sanitized.changes)
        logger.warning("%s: %s, sanitized (%s)", rel, report.verdict.value, "; ".join(changes))
    elif conformed is not None and not _sendable_as_is(source):
        chosen = conformed
    try:
        ds = dcmread(chosen, stop_before_pixels=True)
        mislabelled = _decode_mislabelled(ds) > 0
    except OSError as exc:
        settle(
            rel,
            State.FAILED,
            f"cannot be read: {one_line(exc)}",
            verdict=report.verdict.value,
            findings=codes,
        )
        return None
    except Exception as exc:  # whatever pydicom raises, this file does not parse
        logger.debug("%s: pydicom cannot read it", rel, exc_info=True)
        refuse(f"the data set does not parse ({one_line(exc)})")
        return None
    missing = [k for k in _IDENTIFYING if not str(ds.get(k, "") or "").strip()]
    if missing:
        settle(
            rel,
            State.FAILED,
            f"not storable: no {', '.join(missing)}",
            verdict=report.verdict.value,
            findings=codes,
            changes=changes,
        )
        return None
    uids = UidTriple(
        study=str(ds.StudyInstanceUID),
        series=str(ds.SeriesInstanceUID),
        sop_instance=str(ds.SOPInstanceUID),
    )
    sop_class = str(ds.SOPClassUID)
    return _Candidate(
        index=number,
        rel=rel,
        chosen=chosen,
        source_sha256=sha,
        verdict=report.verdict.value,
        findings=codes,
        changes=tuple(changes),
        patient_id=str(ds.get("PatientID", "") or ""),
        issuer=str(ds.get("IssuerOfPatientID", "") or "") or None,
        accession=str(ds.get("AccessionNumber", "") or ""),
        uids=uids,
        sop_class_uid=sop_class,
        institution=str(ds.get("InstitutionName", "") or ""),
        study=ForeignStudy.from_dataset(ds),
        transfer_syntax_uid=str(getattr(ds.get("file_meta"), "TransferSyntaxUID", "") or ""),
        mislabelled=mislabelled,
    )


#: The Part 10 preamble (PS3.10 7.1): 128 bytes before "DICM".
_PREAMBLE = 128
#: One read covers the preamble and the File Meta group in practice (a larger group: pydicom writes the file).
_META_READ_BYTES = 16 * 1024
#: What an instance needs to be stored and found again: without them a PACS refuses it or cannot index it.
_IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def _extract(request: ImportRequest, work: Path, notes: list[str]) -> Path | None:
    """The medium as a folder of its files as they are (an image or a zip extracted), or None when only open
    can read it, file by file: then what open read is scanned as open copied it.

    The extraction takes an image or a zip whole, and refuses all of it for one member it cannot take (an
    encrypted zip member, an ISO name it cannot place); open reads each file on its own and reports those.
    A medium refused for its structure (a name that escapes, a file past the end) stays refused.
    """
    try:
        return open_medium(request.medium, work / "medium")
    except HostileMediumError:
        raise
    except (InputError, OSError) as exc:
        if not Path(request.medium).is_file():
            raise
        logger.debug("%s: not extracted whole", request.medium, exc_info=True)
        notes.append(f"the medium was read file by file (extracting it whole failed: {one_line(exc)})")
        return None


def _image_links(medium: Path) -> dict[str, str]:
    """The symbolic links (Rock Ridge) of an ISO image, which its extraction leaves out: path -> reason."""
    medium = Path(medium)
    if not medium.is_file() or not is_iso_image(medium):
        return {}
    with open_archive(medium) as archive:
        return {
            m.name: m.problem or "a symbolic link: not followed (it may point outside the medium)"
            for m in archive.members
            if m.symlink
        }


def _sendable_as_is(path: Path) -> bool:
    """Whether a plain file can go to a PACS as it is: a File Meta with its UIDs, little endian.

    A data set without File Meta (old CDs) has no Transfer Syntax to send it in; Explicit VR Big Endian is
    retired (PS3.5 A.3) and Orthanc, for one, accepts no context for it, and pynetdicom converts only between
    the little endian syntaxes. open's copy of such a file has both fixed.
    """
    try:
        return read_file_meta(path).transfer_syntax_uid != ExplicitVRBigEndian
    except (NotPart10Error, OSError):
        return False


def _is_dicomdir(path: Path) -> bool:
    """Whether ``path`` is a DICOMDIR by its File Meta (Media Storage Directory Storage), whatever its name."""
    try:
        return read_file_meta(path).sop_class_uid == MediaStorageDirectoryStorage
    except (NotPart10Error, OSError):
        return False


def _quarantine(
    rel: str,
    source: Path,
    sha: str,
    reason: str,
    findings: Sequence[Finding],
    request: ImportRequest,
    settle: Callable[..., None],
    alerts: list[tuple[str, str, str]],
    verdict: str,
    codes: tuple[str, ...],
) -> None:
    record = quarantine_file(
        source, request.quarantine, reason=reason, findings=findings, source=f"{request.medium}:{rel}"
    )
    alerts.append((rel, record.sha256, reason))
    logger.warning("%s: quarantined (%s)", rel, reason)
    settle(
        rel,
        State.QUARANTINED,
        f"{reason} (quarantined as {record.quarantined_path.name})",
        verdict=verdict,
        findings=codes,
    )


def _quarantine_unscanned(
    rel: str,
    source: Path,
    exc: Exception,
    request: ImportRequest,
    settle: Callable[..., None],
    alerts: list[tuple[str, str, str]],
) -> None:
    """A file the scan or the sanitizer could not get through: what could not be checked is not sent."""
    reason = f"cannot be checked: {one_line(exc)}"
    try:
        _quarantine(rel, source, sha256_file(source), reason, (), request, settle, alerts, "unknown", ())
    except (DcmsealError, OSError) as failure:
        settle(rel, State.FAILED, f"{reason}; and cannot be quarantined: {one_line(failure)}")


def _reconcile(
    candidates: list[_Candidate], request: ImportRequest, journal: Journal, fingerprint: str
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
    candidates: list[_Candidate],
    decisions: Mapping[str, StudyDecision | StudyHeld],
    settle: Callable[..., None],
) -> list[_Candidate]:
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


def _fail(candidate: _Candidate, settle: Callable[..., None], reason: str) -> None:
    """``candidate`` failed before the send, for ``reason`` (one line)."""
    settle(
        candidate.rel,
        State.FAILED,
        reason,
        verdict=candidate.verdict,
        findings=candidate.findings,
        changes=candidate.changes,
        sop_instance_uid=candidate.uids.sop_instance,
    )


def _decode_mislabelled(ds: Dataset) -> int:
    """Decode, with the data dictionary's VRs, the elements pydicom read as implicit VR from a file whose
    Transfer Syntax says explicit VR.

    pydicom reads such a data set (pydicom's own ``SC_rgb_jpeg.dcm``: JPEG Baseline, implicit VR inside) by
    guessing, but keeps its elements raw, without a VR, and then cannot write them in the explicit VR the File
    Meta names ("encoding without a string argument"). Decoded, they are written as the Transfer Syntax says,
    so what is sent is conformant. Elements read with their VR stay raw and are written back byte for byte.
    Returns how many elements were decoded.
    """
    count = 0
    for element in list(ds.elements()):
        if isinstance(element, RawDataElement):
            if element.VR is not None:
                continue  # explicit VR as read: nested items too
            decoded = ds[element.tag]
            count += 1
        else:
            decoded = element
        if decoded.VR == "SQ":
            for item in decoded.value:
                count += _decode_mislabelled(item)
    return count


def _prepare(
    candidate: _Candidate,
    work: Path,
    request: ImportRequest,
    decisions: Mapping[str, StudyDecision | StudyHeld],
    mapping: dict[str, str],
    when: str,
    settle: Callable[..., None],
    alerts: list[tuple[str, str, str]],
) -> tuple[Outgoing, str, tuple[str, ...], str, str] | None:
    """Write the file to send: coerced, UIDs set, preamble zero; rescan it.

    Returns the outgoing item, its SHA-256, the attributes coerced, and the local Patient ID and Study
    Instance UID it is sent with (for the audit message).
    """
    prepared = work / "prepared" / f"{candidate.index:06d}.dcm"
    decision = decisions.get(candidate.uids.study)
    if decision is None and not mapping and not candidate.mislabelled and candidate.transfer_syntax_uid:
        # Nothing to change but the preamble: the bytes as scanned, preamble zeroed, without a decode and an
        # encode by pydicom (which cost more than the send itself on a plain medium). Rescanned as any other.
        sha = _copy_zero_preamble(candidate.chosen, prepared)
        if sha is not None:
            item = _outgoing(candidate, prepared, candidate.uids.sop_instance, candidate.transfer_syntax_uid)
            return _checked(
                candidate, item, sha, (), candidate.patient_id, candidate.uids.study, request, settle, alerts
            )
    try:
        ds = dcmread(candidate.chosen)
        _decode_mislabelled(ds)
    except Exception as exc:  # whatever pydicom raises on this file, the file is refused, not the run
        # The scan found the file clean or made it so, yet pydicom cannot read it: it does not parse, and a file
        # that does not parse never reaches the PACS.
        logger.debug("%s: pydicom cannot read it", candidate.rel, exc_info=True)
        _quarantine(
            candidate.rel,
            candidate.chosen,
            sha256_file(candidate.chosen),
            f"the data set does not parse ({one_line(exc)})",
            (),
            request,
            settle,
            alerts,
            candidate.verdict,
            candidate.findings,
        )
        return None
    originals = []
    if decision is not None:
        assert isinstance(decision, StudyDecision)  # held studies never get here
        originals += coerce_dataset(
            ds, decision.patient, decision.accession, request_attributes=decision.request_attributes
        )
    if mapping:
        uid_originals, _count = regenerate_uids(ds, mapping)
        originals += uid_originals
    add_original_attributes(
        ds,
        originals,
        when=when,
        modifying_system=request.calling_aet,
        source=request.source_of_previous_values
        if request.source_of_previous_values is not None
        else candidate.institution,
    )
    ds.preamble = ZERO_PREAMBLE  # PS3.10 §7.5: whatever the medium carried, what we send has a zero preamble
    stamp_implementation(ds)  # dcmseal wrote this file: its File Meta says so (PS3.10 §7.1)
    try:
        with atomic_write(prepared, overwrite=True, durable=False) as out:
            ds.save_as(out, enforce_file_format=True)
    except Exception as exc:  # one value pydicom cannot encode fails this file, not the run
        logger.debug("%s: cannot be written again", candidate.rel, exc_info=True)
        step = "after reconciliation" if request.reconciliation is not None else "before the send"
        _fail(candidate, settle, f"cannot be written again {step}: {one_line(exc)}")
        return None
    return _checked(
        candidate,
        _outgoing(candidate, prepared, str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID)),
        sha256_file(prepared),
        tuple(str(e.keyword) for e in originals),  # the attributes coerced
        str(ds.get("PatientID", "") or ""),
        str(ds.StudyInstanceUID),
        request,
        settle,
        alerts,
    )


def _copy_zero_preamble(source: Path, prepared: Path) -> str | None:
    """Copy the Part 10 file ``source`` to ``prepared`` with a zero preamble and dcmseal named in its File Meta
    (PS3.10 7.1: dcmseal wrote it), the data set's bytes as they are; the SHA-256 of what was written, or None
    when ``source`` has no Part 10 header that parses (the caller then writes it with pydicom)."""
    with open(source, "rb") as src:
        head = src.read(_META_READ_BYTES)
        if not is_part10(head):
            return None
        try:
            values, end = parse_meta_group(head, os.fstat(src.fileno()).st_size, source)
        except NotPart10Error:
            return None
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(values[0x00020002])
        meta.MediaStorageSOPInstanceUID = UID(values[0x00020003])
        meta.TransferSyntaxUID = UID(values[0x00020010])
        holder = Dataset()
        holder.file_meta = meta
        stamp_implementation(holder)
        header = DicomBytesIO()
        header.write(bytes(_PREAMBLE) + b"DICM")
        write_file_meta_info(header, meta, enforce_standard=True)
        digest = hashlib.sha256(header.getvalue())
        src.seek(end)
        with atomic_write(prepared, overwrite=True, durable=False) as out:
            out.write(header.getvalue())
            while chunk := src.read(CHUNK_SIZE_BYTES):
                out.write(chunk)
                digest.update(chunk)
    return digest.hexdigest()


def _outgoing(
    candidate: _Candidate, prepared: Path, sop_instance_uid: str, transfer_syntax_uid: str
) -> Outgoing:
    return Outgoing(
        key=candidate.rel,
        path=prepared,
        sop_class_uid=candidate.sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        transfer_syntax_uid=transfer_syntax_uid,
    )


def _checked(
    candidate: _Candidate,
    item: Outgoing,
    sha: str,
    coerced: tuple[str, ...],
    patient_id: str,
    study_uid: str,
    request: ImportRequest,
    settle: Callable[..., None],
    alerts: list[tuple[str, str, str]],
) -> tuple[Outgoing, str, tuple[str, ...], str, str] | None:
    """Rescan the prepared file of ``item``; the outgoing item when it is clean, else quarantine the original."""
    recheck = scan_file(item.path, name=candidate.rel)
    if recheck.verdict is not Verdict.CLEAN:
        codes = tuple(f.code for f in recheck.findings if f.severity is not Verdict.CLEAN)
        _quarantine(
            candidate.rel,
            candidate.chosen,
            sha256_file(candidate.chosen),
            f"still {recheck.verdict.value} after sanitizing ({', '.join(codes)})",
            recheck.findings,
            request,
            settle,
            alerts,
            candidate.verdict,
            codes,
        )
        return None
    if request.keep_sent is not None:
        with (
            atomic_write(request.keep_sent / f"{item.sop_instance_uid}.dcm", overwrite=True) as out,
            open(item.path, "rb") as src,
        ):
            shutil.copyfileobj(src, out, CHUNK_SIZE_BYTES)
    return item, sha, coerced, patient_id, study_uid


def _stored_reason(candidate: _Candidate, confirmation: Mapping[str, object] | None) -> str:
    """The line a stored file gets: what confirmed it, and what the sanitizer changed first."""
    said = "confirmed"
    if confirmation is not None and confirmation.get("protocol") == "C-STORE":
        said = f"C-STORE status {confirmation.get('status')}"
    elif confirmation is not None and confirmation.get("protocol") == "STOW-RS":
        said = "STOW-RS " + (
            f"warning {confirmation['warning_reason']}" if "warning_reason" in confirmation else "success"
        )
    if candidate.changes:
        found = (
            f"{candidate.verdict} ({', '.join(candidate.findings)})"
            if candidate.findings
            else candidate.verdict
        )
        return f"{found}: sanitized ({'; '.join(candidate.changes)}), then stored ({said})"
    return f"stored ({said})"


def _file(
    candidate: _Candidate,
    state: State,
    reason: str | None,
    item: Outgoing,
    coerced: tuple[str, ...],
    *,
    confirmation: dict[str, object] | None = None,
) -> ImportedFile:
    if state is State.STORED and reason is None:
        reason = _stored_reason(candidate, confirmation)
    return ImportedFile(
        path=candidate.rel,
        status=state,
        reason=reason,
        verdict=candidate.verdict,
        findings=candidate.findings,
        changes=candidate.changes,
        coerced=coerced,
        sop_instance_uid=candidate.uids.sop_instance,
        sent_sop_instance_uid=item.sop_instance_uid,
        confirmation=confirmation,
    )


def _audit(
    request: ImportRequest,
    files: tuple[ImportedFile, ...],
    medium_findings: Sequence[Finding],
    fingerprint: str,
    encrypted: bool,
    alerts: list[tuple[str, str, str]],
    sent_facts: dict[str, tuple[str, str, str]],
    audit: AuditSink,
    now: Callable[[], datetime],
    notes: list[str],
    reconciled: Sequence[ReconciledStudy] = (),
    *,
    fileset_id: str,
) -> None:
    """One Import message with the outcome; one Security Alert per quarantined file and for medium findings.

    A coerced study names both patients: the local one it was stored as, and the foreign one it came as (its
    Patient ID and name on the medium), so the audit trail shows the coercion (PS3.15 A.5.3.5, IHE RAD §19).
    The medium is named by its Volume Identifier or File-set ID (the fingerprint, which the journal keys
    runs by, is its AlternativeUserID and the Alert Subject's ID).
    """
    user = AuditUser(user_id=request.operator)
    medium_id, media_type = audit_medium(request.medium, fileset_id)
    events: list[AuditEvent] = []
    stored = [f for f in files if f.status is State.STORED and not f.earlier_run]
    unverified = sum(1 for f in stored if f.integrity == "not-verified")
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
            notes.append(f"an audit message could not be written: {exc}")
            logger.error("audit: %s", exc)
