"""The prepared files sent: what an earlier run left in doubt settled first, what the PACS confirmed verified."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from dcmseal.errors import PeerError
from dcmseal.events import Emitter
from dcmseal.importer.examine import Candidate
from dcmseal.importer.journal import DOUBT_PREFIX, NOT_CONFIRMED, Journal, JournalRow, State
from dcmseal.importer.request import ImportRequest
from dcmseal.importer.result import ImportedFile
from dcmseal.importer.run import Run
from dcmseal.importer.send import Outgoing, Sender, deliver
from dcmseal.importer.uids import UidPolicy
from dcmseal.importer.verify import Confirmed, Verification, not_held_reason, verify_held
from dcmseal.outcomes import ReasonKind

__all__ = ["Prepared", "file_outcome", "send_prepared", "sent_study", "settle_in_doubt", "verify_stored"]

logger = logging.getLogger(__name__)

#: A file ready to send: the candidate, the outgoing item, the SHA-256 of the prepared file, what was coerced.
Prepared = tuple[Candidate, Outgoing, str, tuple[str, ...]]


def send_prepared(run: Run, sender: Sender, outgoing: list[Prepared]) -> tuple[str | None, list[Confirmed]]:
    """Send ``outgoing`` in the sender's batches, journaling each attempt and answer; the peer's error, if it
    failed (every instance not confirmed then failed), and the instances it confirmed, with the UIDs sent."""
    request, journal = run.request, run.journal
    confirmed: list[Confirmed] = []
    for start in range(0, len(outgoing), sender.batch_size):
        batch = outgoing[start : start + sender.batch_size]
        items = [o for _c, o, _s, _k in batch]
        sent = {o.key: (sha, o.sop_instance_uid, run.sent_facts[o.key][1]) for _c, o, sha, _k in batch}
        try:
            answers = deliver(
                sender,
                items,
                request.retry,
                target=request.target,
                before_attempt=partial(_count_attempt, journal, sent),
            )
        except PeerError as exc:
            for candidate, item, _sha, coerced in outgoing[start:]:
                if item in items:  # this batch was being sent: the PACS may hold some of it
                    reason, kind = f"{NOT_CONFIRMED}{exc}", ReasonKind.UNCONFIRMED
                else:
                    reason, kind = f"not sent: the PACS failed ({exc})", ReasonKind.PEER
                journal.mark_failed(item.key, reason, kind)
                run.end(file_outcome(candidate, State.FAILED, reason, item, coerced, kind=kind))
            return str(exc), confirmed
        for (candidate, item, _sha, coerced), answer in zip(batch, answers, strict=True):
            if answer.stored:
                journal.mark_stored(item.key, answer.confirmation)
                confirmed.append(Confirmed(item.key, run.sent_facts[item.key][1], item.sop_instance_uid))
                run.end(
                    file_outcome(
                        candidate, State.STORED, None, item, coerced, confirmation=answer.confirmation
                    )
                )
            else:
                reason, kind = answer.reason or "refused", ReasonKind.PEER
                if answer.in_doubt:  # a rerun asks the PACS before it sends it again
                    reason, kind = NOT_CONFIRMED + reason, ReasonKind.UNCONFIRMED
                journal.mark_failed(item.key, reason, kind)
                run.end(file_outcome(candidate, State.FAILED, reason, item, coerced, kind=kind))
        run.emitter.progress("send", len(confirmed), len(outgoing))
    return None, confirmed


def settle_in_doubt(run: Run, sender: Sender, outgoing: list[Prepared]) -> list[Prepared]:
    """Ask the PACS about what an earlier run sent and never heard back about; return what is still to send.

    Held: recorded stored (found by the query) and not sent again. Not held: sent. Unknown (the PACS cannot be
    asked, or does not answer): sent only with ``request.resend_in_doubt``, else failed as in doubt, so nothing
    is ever stored twice without the operator saying so.
    """
    request, journal = run.request, run.journal
    doubtful: list[Confirmed] = []
    for _candidate, item, _sha, _coerced in outgoing:
        row = run.previous.get(item.key)
        if row is not None and row.in_doubt and row.sent_sop_instance_uid is not None:
            study = row.sent_study_instance_uid or run.sent_facts[item.key][1]
            doubtful.append(Confirmed(item.key, study, row.sent_sop_instance_uid, earlier_run=True))
    if not doubtful:
        return outgoing
    verification = _ask(sender, doubtful, request, run.emitter, "in doubt")
    held = set(verification.held)
    unknown = {d.key for d in doubtful} - held - set(verification.not_held)
    query = verification.query
    why = (verification.note or "").removeprefix("not verified: ").split("; ")[0]
    doubt_reason = (
        f"{DOUBT_PREFIX}an earlier run sent it and stopped before {request.target} answered, and {why}; not sent "
        "again, so that it is never stored twice (rerun with --resend-in-doubt to send it anyway)"
    )
    remaining: list[Prepared] = []
    for entry in outgoing:
        candidate, item, _sha, coerced = entry
        if item.key in held:
            found = journal.mark_found(item.key, query)
            run.end(
                replace(
                    file_outcome(candidate, State.STORED, None, item, coerced, confirmation=found),
                    reason=f"stored by an earlier run that stopped before the answer; found held by {query}",
                    earlier_run=True,
                )
            )
        elif item.key in unknown and not request.resend_in_doubt:
            journal.mark_failed(item.key, doubt_reason, ReasonKind.UNCONFIRMED)
            run.end(
                file_outcome(
                    candidate, State.FAILED, doubt_reason, item, coerced, kind=ReasonKind.UNCONFIRMED
                )
            )
        else:
            remaining.append(entry)
    run.notes.append(
        f"{len(doubtful)} instance(s) sent by an earlier run that stopped before the answer: {len(held)} found "
        f"held by {query} (not sent again), {len(verification.not_held)} not held (sent again), {len(unknown)} "
        "unknown"
        + ("" if not unknown else (" (sent again)" if request.resend_in_doubt else " (left in doubt)"))
    )
    return remaining


def _ask(
    sender: Sender, instances: Sequence[Confirmed], request: ImportRequest, emitter: Emitter, stage: str
) -> Verification:
    """Which of ``instances`` the PACS holds (one query per study, within the import's retry policy)."""
    return verify_held(
        sender,
        instances,
        request.retry,
        target=request.target,
        progress=lambda done, total: emitter.progress(stage, done, total),
    )


def _count_attempt(
    journal: Journal, sent: dict[str, tuple[str, str, str]], chunk: Sequence[Outgoing]
) -> None:
    journal.mark_sending([o.key for o in chunk], sent)


def verify_stored(run: Run, sender: Sender, unchecked: Sequence[Confirmed]) -> Verification:
    """Ask the PACS about ``unchecked``; journal what it holds as verified, and what it does not hold as failed."""
    verification = _ask(sender, unchecked, run.request, run.emitter, "verify")
    run.journal.mark_verified(verification.held, verification.query)
    reason = not_held_reason(verification.query)
    for key in verification.not_held:
        run.journal.mark_not_held(key, reason)
        run.end(replace(run.files[key], status=State.FAILED, reason=reason, kind=ReasonKind.PEER))
        logger.warning("%s: %s", key, reason)
    if verification.note is not None:
        run.notes.append(verification.note)
    return verification


def sent_study(
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


def _stored_reason(candidate: Candidate, confirmation: Mapping[str, object] | None) -> str:
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


def file_outcome(
    candidate: Candidate,
    state: State,
    reason: str | None,
    item: Outgoing,
    coerced: tuple[str, ...],
    *,
    confirmation: dict[str, object] | None = None,
    kind: ReasonKind | None = None,
) -> ImportedFile:
    """What became of ``candidate`` once sent as ``item`` (stored: said with what confirmed it)."""
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
        kind=kind,
    )
