"""One run of an import: what its stages share (the request, the journal, each file's outcome, the notes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dcmseal.events import Emitter, Event, FileFailed, FileQuarantined, InstanceStored
from dcmseal.importer.journal import Journal, JournalRow, State
from dcmseal.importer.request import ImportRequest
from dcmseal.importer.result import ImportedFile
from dcmseal.importer.verify import Confirmed
from dcmseal.outcomes import ReasonKind

__all__ = ["Run"]


@dataclass(slots=True, kw_only=True)
class Run:
    """The state one import run's stages read and add to, each file's outcome recorded once, journal first."""

    request: ImportRequest
    journal: Journal
    work: Path  # the private staging folder (plaintext of the medium)
    emitter: Emitter
    fingerprint: str
    previous: Mapping[str, JournalRow]  # the journal's rows as earlier runs left them
    files: dict[str, ImportedFile] = field(default_factory=dict)
    alerts: list[tuple[str, str, str]] = field(default_factory=list)  # (path, sha256, reason) quarantined
    notes: list[str] = field(default_factory=list)
    #: Stored by an earlier run that did not ask the PACS (killed after the confirmation, or --no-verify).
    carried: list[Confirmed] = field(default_factory=list)
    #: path -> (local Patient ID, Study Instance UID, SOP Class UID) as sent, for the Import audit message.
    sent_facts: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def settle(self, rel: str, state: State, reason: str | None, **extra: object) -> None:
        """``rel`` ended as ``state`` for ``reason``: in the journal, then in the result and to the handlers."""
        kind = extra.get("kind")
        self.journal.record(rel, state, reason=reason, kind=kind if isinstance(kind, ReasonKind) else None)
        self.end(ImportedFile(path=rel, status=state, reason=reason, **extra))  # type: ignore[arg-type]

    def end(self, outcome: ImportedFile) -> None:
        """``outcome`` is where its file ended (the journal written already): kept for the result, and told to
        the handlers as it happens (:class:`~dcmseal.events.InstanceStored` once the PACS confirmed it,
        :class:`~dcmseal.events.FileQuarantined`, :class:`~dcmseal.events.FileFailed`; a stored instance that
        the PACS, asked afterwards, does not hold is told failed too)."""
        self.files[outcome.path] = outcome
        event = _event(outcome)
        if event is not None:
            self.emitter.emit(event)


def _event(outcome: ImportedFile) -> Event | None:
    """What the handlers are told of ``outcome``: nothing for a file skipped, held (its study is told once),
    or stored by an earlier run."""
    path = Path(outcome.path)
    if outcome.status is State.STORED and not outcome.earlier_run:
        return InstanceStored(path=path, sop_instance_uid=outcome.sent_sop_instance_uid or "")
    if outcome.status is State.QUARANTINED:
        return FileQuarantined(path=path, reason=outcome.reason or "")
    if outcome.status is State.FAILED and outcome.kind is not ReasonKind.HELD:
        return FileFailed(path=path, reason=outcome.reason or "")
    return None
