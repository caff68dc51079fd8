"""The import journal: an SQLite file recording every file of every imported medium and what became of it.

One row per file of a medium, per target: the medium's fingerprint, the file's path on the medium, the SHA-256 of
the plaintext read from it and of the bytes sent, the SOP Instance UID as found and as sent (and the study sent in),
the state, the reason, the attempts, the peer's confirmation and whether the PACS was asked about it afterwards. A
``uid_map`` table keeps the UIDs ``--uids regenerate`` made, so a rerun gives every instance the UIDs it had the
first time.

A ``reconciliation_choices`` table keeps the worklist entry a person chose for a foreign study (``dcmseal reconcile
--interactive``), per medium, so no later run asks again; it is created in journals of any schema version.

Why a rerun never sends twice, and why a row never says "stored" when the peer did not say so:

* every state change is one SQLite transaction, committed (``synchronous=FULL``) before the next step;
* a file is marked ``pending`` with its attempt counted *before* it is sent, and ``stored`` only *after* the
  peer confirmed it, in the same transaction that writes the confirmation;
* a rerun skips ``stored`` rows. A row whose send was attempted and never answered is *in doubt*
  (:attr:`JournalRow.in_doubt`): ``pending`` with an attempt counted (the import was killed between the send and
  the commit of the answer), or ``failed`` of the reason kind :attr:`~dcmseal.outcomes.ReasonKind.UNCONFIRMED`
  (the peer broke off mid-send, or an earlier rerun could not find out). The kind is a column of its own
  (``reason_kind``), never read from the reason's words. Before sending it again the rerun asks the PACS
  (QIDO-RS / C-FIND) about the UIDs the journal says were sent: held, it is recorded stored
  (:meth:`Journal.mark_found`) and not sent; not held, it is sent. A PACS that cannot be asked (DCMTK storescp
  has no query service) leaves it in doubt, failed, and not sent again unless the operator says so: sending it
  blind might store it twice;
* a ``stored`` row changes state only when the PACS, asked after the send (``--verify``), does not hold what it
  confirmed: :meth:`Journal.mark_not_held` makes it ``failed`` (the confirmation kept), so a rerun sends it again;
* whether the PACS was asked is a column of its own (``verified``: the query that found the instance held, NULL
  while it was not checked), written after the query: an import killed between the confirmation and the query,
  or run with ``--no-verify``, leaves ``stored`` rows with no ``verified``, and the next run with ``--verify``
  asks about them;
* one import at a time per journal: an exclusive ``flock`` on ``<journal>.lock``, released by the kernel when
  the process dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from dcmseal.errors import InputError, UsageError
from dcmseal.fsutil import make_dirs, open_state_file
from dcmseal.outcomes import ReasonKind

__all__ = ["DOUBT_PREFIX", "NOT_CONFIRMED", "Journal", "JournalRow", "State"]

SCHEMA_VERSION = "3"
#: Version 1 had neither the study an instance was sent in nor whether the PACS was asked: :meth:`Journal.open`
#: adds the two columns (NULL in old rows: not yet checked, study read again from the medium).
_ADDED_IN_2 = (("sent_study_instance_uid", "TEXT"), ("verified", "TEXT"))
#: Version 2 had no reason kind: a row in doubt was told by the first words of its reason, which the upgrade
#: reads once (:func:`_upgrade_from_2`) to fill the column.
_ADDED_IN_3 = (("reason_kind", "TEXT"),)
#: The first words of the reason of a row whose send the peer broke off before answering (for a person).
NOT_CONFIRMED = "not confirmed: "
#: The first words of the reason of a row left in doubt by a rerun that could not ask the PACS (for a person).
DOUBT_PREFIX = "in doubt: "
#: How long a writer waits for a reader's lock (a test polling the journal) before giving up.
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS imports (
    medium_fingerprint TEXT NOT NULL,
    target TEXT NOT NULL,
    medium TEXT NOT NULL,
    uid_policy TEXT NOT NULL,
    started TEXT NOT NULL,
    updated TEXT NOT NULL,
    runs INTEGER NOT NULL,
    PRIMARY KEY (medium_fingerprint, target)
);
CREATE TABLE IF NOT EXISTS instances (
    medium_fingerprint TEXT NOT NULL,
    target TEXT NOT NULL,
    path TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'stored', 'quarantined', 'failed', 'skipped')),
    reason TEXT,
    source_sha256 TEXT,
    sent_sha256 TEXT,
    sop_instance_uid TEXT,
    sent_sop_instance_uid TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    confirmation TEXT,
    updated TEXT NOT NULL,
    sent_study_instance_uid TEXT,
    verified TEXT,
    reason_kind TEXT,
    PRIMARY KEY (medium_fingerprint, target, path)
);
CREATE TABLE IF NOT EXISTS uid_map (
    original_uid TEXT PRIMARY KEY,
    new_uid TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    medium_fingerprint TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reconciliation_choices (
    medium_fingerprint TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    local TEXT NOT NULL,
    chosen_by TEXT NOT NULL,
    chosen TEXT NOT NULL,
    PRIMARY KEY (medium_fingerprint, study_instance_uid)
);
"""


class State(enum.StrEnum):
    """Where a file of the medium stands."""

    PENDING = "pending"  # seen, not (yet) confirmed by the peer; sent again by a rerun
    STORED = "stored"  # the peer confirmed it; a rerun skips it
    QUARANTINED = "quarantined"  # could not be made safe; its bytes are in the quarantine folder
    FAILED = (
        "failed"  # with a reason (held for reconciliation, refused, peer unavailable); retried by a rerun
    )
    SKIPPED = "skipped"  # not an instance (DICOMDIR, README, viewer), with a reason


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalRow:
    """One file of one medium, for one target."""

    path: str
    state: State
    reason: str | None
    source_sha256: str | None
    sent_sha256: str | None
    sop_instance_uid: str | None
    sent_sop_instance_uid: str | None
    attempts: int
    confirmation: dict[str, object] | None
    updated: str
    sent_study_instance_uid: str | None = None
    #: The query that found the instance held (QIDO-RS, C-FIND); None: not (yet) checked.
    verified: str | None = None
    #: The reason's kind, for a program (None: none recorded, as for rows written before version 3).
    reason_kind: ReasonKind | None = None

    @property
    def in_doubt(self) -> bool:
        """Sent (an attempt counted, the UIDs recorded) and never answered: the PACS may or may not hold it."""
        if self.attempts == 0 or self.sent_sop_instance_uid is None:
            return False
        return self.state is State.PENDING or (
            self.state is State.FAILED and self.reason_kind is ReasonKind.UNCONFIRMED
        )

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "state": self.state.value,
            "reason": self.reason,
            "source_sha256": self.source_sha256,
            "sent_sha256": self.sent_sha256,
            "sop_instance_uid": self.sop_instance_uid,
            "sent_sop_instance_uid": self.sent_sop_instance_uid,
            "attempts": self.attempts,
            "confirmation": self.confirmation,
            "updated": self.updated,
            "sent_study_instance_uid": self.sent_study_instance_uid,
            "verified": self.verified,
            "reason_kind": self.reason_kind.value if self.reason_kind is not None else None,
        }


#: The rows of one import, in the order of the columns :func:`_row` reads.
_SELECT_ROWS = (
    "SELECT path, state, reason, source_sha256, sent_sha256, sop_instance_uid, sent_sop_instance_uid, attempts,"
    " confirmation, updated, sent_study_instance_uid, verified, reason_kind FROM instances"
    " WHERE medium_fingerprint = ? AND target = ?"
)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Journal:
    """The import journal at ``path``; open with :meth:`open`, use as a context manager.

    All writes of one import are for one ``(medium fingerprint, target)`` pair, set by :meth:`begin_import`.
    """

    def __init__(
        self, path: Path, connection: sqlite3.Connection, lock_fd: int, now: Callable[[], str]
    ) -> None:
        self.path = path
        self._db = connection
        self._lock_fd = lock_fd
        self._now = now
        self._fingerprint: str | None = None
        self._target: str | None = None
        self._in_batch = False

    # --- opening and closing ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, now: Callable[[], str] = _utc_now) -> Journal:
        """Open (or create) the journal at ``path`` and take its lock.

        Raises
        ------
        UsageError
            Another import holds the journal.
        InputError
            The file is not an SQLite database, or not a journal of ours.
        """
        path = Path(path)
        make_dirs(path.parent)
        lock_fd = open_state_file(Path(f"{path}.lock"), os.O_RDWR)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise UsageError(
                "another import is using this journal; wait for it, or give another --journal", path=path
            ) from None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each state change is one transaction.
            # The journal names files and UIDs of patients' studies: owner-only, or the operators' group's in
            # a shared station folder; created so before SQLite would create it with the umask.
            os.close(open_state_file(path, os.O_RDWR))
            db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # readers (a progress poller) never block the writer
                db.execute("PRAGMA synchronous=FULL")
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                db.executescript(_SCHEMA)
                found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if found is None:
                    db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
                elif found[0] in _UPGRADES:
                    _upgrade(db, found[0])
                elif found[0] != SCHEMA_VERSION:
                    raise InputError(
                        f"journal schema {found[0]} is not the one this dcmseal writes ({SCHEMA_VERSION})",
                        path=path,
                    )
            except BaseException:
                db.close()
                raise
        except sqlite3.DatabaseError as exc:
            os.close(lock_fd)
            raise InputError(f"not an import journal (SQLite): {exc}", path=path) from None
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, db, lock_fd, now)

    def close(self) -> None:
        """Close the database and release the lock."""
        self._db.close()
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._in_batch:
            yield self._db  # part of the caller's batch: committed with it
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make every write inside one transaction (one fsync), for the rows of a scan before anything is sent.

        Never used around :meth:`mark_stored`: a confirmation is committed on its own, at once.
        """
        with self._transaction():
            self._in_batch = True
            try:
                yield
            finally:
                self._in_batch = False

    # --- one import ---------------------------------------------------------------------------------------

    def begin_import(self, *, fingerprint: str, target: str, medium: str, uid_policy: str) -> int:
        """Start (or resume) the import of the medium ``fingerprint`` into ``target``; return the run number.

        Raises
        ------
        UsageError
            The same medium went to the same target under another UID policy and some of it is stored:
            mixing policies would store the same instances twice under two sets of UIDs.
        """
        moment = self._now()
        with self._transaction() as db:
            found = db.execute(
                "SELECT uid_policy, runs FROM imports WHERE medium_fingerprint = ? AND target = ?",
                (fingerprint, target),
            ).fetchone()
            if found is None:
                db.execute(
                    "INSERT INTO imports (medium_fingerprint, target, medium, uid_policy, started, updated, runs)"
                    " VALUES (?, ?, ?, ?, ?, ?, 1)",
                    (fingerprint, target, medium, uid_policy, moment, moment),
                )
                runs = 1
            else:
                policy, runs = str(found[0]), int(found[1]) + 1
                stored = db.execute(
                    "SELECT COUNT(*) FROM instances WHERE medium_fingerprint = ? AND target = ? AND state = ?",
                    (fingerprint, target, State.STORED.value),
                ).fetchone()[0]
                if policy != uid_policy and stored:
                    raise UsageError(
                        f"this medium was imported into {target} with --uids {policy} ({stored} instance(s) "
                        f"stored); rerun with --uids {policy}, or use another journal",
                        path=self.path,
                    )
                db.execute(
                    "UPDATE imports SET medium = ?, uid_policy = ?, updated = ?, runs = ?"
                    " WHERE medium_fingerprint = ? AND target = ?",
                    (medium, uid_policy, moment, runs, fingerprint, target),
                )
        self._fingerprint, self._target = fingerprint, target
        return runs

    def _key(self) -> tuple[str, str]:
        if self._fingerprint is None or self._target is None:
            raise RuntimeError("begin_import() first")
        return self._fingerprint, self._target

    def rows(self) -> dict[str, JournalRow]:
        """Every row of the current import, by path on the medium."""
        fingerprint, target = self._key()
        cursor = self._db.execute(
            _SELECT_ROWS + " ORDER BY path",
            (fingerprint, target),
        )
        return {row[0]: _row(row) for row in cursor}

    def row(self, path: str) -> JournalRow | None:
        """The row of ``path`` in the current import, if any."""
        fingerprint, target = self._key()
        found = self._db.execute(
            _SELECT_ROWS + " AND path = ?",
            (fingerprint, target, path),
        ).fetchone()
        return _row(found) if found is not None else None

    def record(
        self,
        path: str,
        state: State,
        *,
        reason: str | None = None,
        kind: ReasonKind | None = None,
        source_sha256: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> None:
        """Write the state of ``path`` and the ``kind`` of its reason (one transaction); a ``stored`` row is never
        changed."""
        if state is State.STORED:
            raise ValueError("only mark_stored() records a stored instance, with the peer's confirmation")
        fingerprint, target = self._key()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO instances (medium_fingerprint, target, path, state, reason, reason_kind,"
                " source_sha256, sop_instance_uid, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (medium_fingerprint, target, path) DO UPDATE SET state = excluded.state,"
                " reason = excluded.reason, reason_kind = excluded.reason_kind, source_sha256 = COALESCE(excluded.source_sha256, source_sha256),"
                " sop_instance_uid = COALESCE(excluded.sop_instance_uid, sop_instance_uid),"
                " updated = excluded.updated WHERE instances.state != 'stored'",
                (
                    fingerprint,
                    target,
                    path,
                    state.value,
                    reason,
                    kind.value if kind is not None else None,
                    source_sha256,
                    sop_instance_uid,
                    self._now(),
                ),
            )

    def mark_sending(self, paths: Iterable[str], sent: Mapping[str, tuple[str, str, str]]) -> None:
        """Before a send: ``pending``, one more attempt, and the (sha256, SOP Instance UID, Study Instance UID)
        about to be sent (the study is what a later run asks the PACS about)."""
        fingerprint, target = self._key()
        moment = self._now()
        with self._transaction() as db:
            for path in paths:
                sha, uid, study = sent[path]
                db.execute(
                    "UPDATE instances SET state = 'pending', reason = NULL, reason_kind = NULL, attempts = attempts + 1,"
                    " sent_sha256 = ?, sent_sop_instance_uid = ?, sent_study_instance_uid = ?, updated = ?"
                    " WHERE medium_fingerprint = ? AND target = ? AND path = ? AND state != 'stored'",
                    (sha, uid, study, moment, fingerprint, target, path),
                )

    def mark_stored(self, path: str, confirmation: Mapping[str, object]) -> None:
        """After the peer confirmed ``path``: ``stored``, with the confirmation, not yet verified (one transaction)."""
        fingerprint, target = self._key()
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE instances SET state = 'stored', reason = NULL, reason_kind = NULL, confirmation = ?, verified = NULL, updated = ?"
                " WHERE medium_fingerprint = ? AND target = ? AND path = ?",
                (json.dumps(dict(confirmation), sort_keys=True), self._now(), fingerprint, target, path),
            ).rowcount
            if changed != 1:
                raise RuntimeError(f"{path}: no journal row to mark stored")

    def mark_found(self, path: str, query: str) -> dict[str, object]:
        """An instance in doubt that the PACS, asked with ``query``, holds: ``stored`` and ``verified`` at once.

        Its confirmation (returned) says it came from the query, not from an answer to the send (one transaction).
        """
        fingerprint, target = self._key()
        confirmation = {"protocol": query, "found": "held by the PACS when asked after an interrupted send"}
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE instances SET state = 'stored', reason = NULL, reason_kind = NULL, confirmation = ?, verified = ?, updated = ?"
                " WHERE medium_fingerprint = ? AND target = ? AND path = ? AND state != 'stored'",
                (json.dumps(confirmation, sort_keys=True), query, self._now(), fingerprint, target, path),
            ).rowcount
            if changed != 1:
                raise RuntimeError(f"{path}: no journal row in doubt to mark found")
        return dict(confirmation)

    def mark_failed(self, path: str, reason: str, kind: ReasonKind | None = None) -> None:
        """The send of ``path`` failed for ``reason`` of ``kind`` (a rerun tries again; asks the PACS first when
        the kind is :attr:`~dcmseal.outcomes.ReasonKind.UNCONFIRMED`)."""
        self.record(path, State.FAILED, reason=reason, kind=kind)

    def mark_not_held(self, path: str, reason: str) -> None:
        """The PACS confirmed ``path`` but, asked afterwards, does not hold it: ``failed`` (a rerun sends it again).

        The only change of state a ``stored`` row takes; the confirmation stays, as the record of what the PACS said.
        """
        fingerprint, target = self._key()
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE instances SET state = 'failed', reason = ?, reason_kind = ?, updated = ?"
                " WHERE medium_fingerprint = ? AND target = ? AND path = ? AND state = 'stored'",
                (reason, ReasonKind.PEER.value, self._now(), fingerprint, target, path),
            ).rowcount
            if changed != 1:
                raise RuntimeError(f"{path}: no stored journal row to mark not held")

    def mark_verified(self, paths: Iterable[str], query: str) -> None:
        """The PACS, asked with ``query`` (QIDO-RS, C-FIND), holds these stored instances (one transaction)."""
        fingerprint, target = self._key()
        rows = [(query, self._now(), fingerprint, target, path) for path in paths]
        with self._transaction() as db:
            db.executemany(
                "UPDATE instances SET verified = ?, updated = ?"
                " WHERE medium_fingerprint = ? AND target = ? AND path = ? AND state = 'stored'",
                rows,
            )

    # --- UIDs made by --uids regenerate ---------------------------------------------------------------------

    def uid_map(self) -> dict[str, str]:
        """Every original UID -> the UID it was given, over all imports of this journal."""
        return {str(a): str(b) for a, b in self._db.execute("SELECT original_uid, new_uid FROM uid_map")}

    def add_uids(self, new: Iterable[tuple[str, str, str]]) -> None:
        """Record ``(original, new, kind)`` triples in one transaction (before anything is sent with them)."""
        fingerprint, _target = self._key()
        moment = self._now()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO uid_map (original_uid, new_uid, kind, medium_fingerprint, created)"
                " VALUES (?, ?, ?, ?, ?)",
                [(old, uid, kind, fingerprint, moment) for old, uid, kind in new],
            )

    # --- reconciliation choices made by a person ---------------------------------------------------------------

    def choices(self, fingerprint: str) -> dict[str, tuple[dict[str, object], str]]:
        """Study Instance UID -> (the chosen local identity as JSON, who chose it), for one medium."""
        rows = self._db.execute(
            "SELECT study_instance_uid, local, chosen_by FROM reconciliation_choices WHERE medium_fingerprint = ?",
            (fingerprint,),
        )
        return {str(uid): (json.loads(local), str(who)) for uid, local, who in rows}

    def record_choice(
        self, fingerprint: str, study_instance_uid: str, local: Mapping[str, object], chosen_by: str
    ) -> None:
        """Keep a person's choice of local identity for one foreign study (replacing an earlier one)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO reconciliation_choices"
                " (medium_fingerprint, study_instance_uid, local, chosen_by, chosen) VALUES (?, ?, ?, ?, ?)",
                (
                    fingerprint,
                    study_instance_uid,
                    json.dumps(dict(local), sort_keys=True),
                    chosen_by,
                    self._now(),
                ),
            )


def _row(values: tuple[Any, ...]) -> JournalRow:
    confirmation = json.loads(values[8]) if values[8] else None
    return JournalRow(
        path=str(values[0]),
        state=State(values[1]),
        reason=values[2],
        source_sha256=values[3],
        sent_sha256=values[4],
        sop_instance_uid=values[5],
        sent_sop_instance_uid=values[6],
        attempts=int(values[7]),
        confirmation=confirmation if isinstance(confirmation, dict) else None,
        updated=str(values[9]),
        sent_study_instance_uid=values[10],
        verified=values[11],
        reason_kind=ReasonKind(values[12]) if values[12] is not None else None,
    )


def _upgrade_from_1(db: sqlite3.Connection) -> None:
    """Version 1 to 2: the study sent and the check (NULL in old rows: not yet checked)."""
    _add_columns(db, _ADDED_IN_2)


def _upgrade_from_2(db: sqlite3.Connection) -> None:
    """Version 2 to 3: the reason kind, filled once for the rows left in doubt from the words version 2 wrote.

    Only a failed row that was sent can be in doubt; every other row keeps no kind (nothing reads one there).
    """
    _add_columns(db, _ADDED_IN_3)
    db.execute(
        "UPDATE instances SET reason_kind = ? WHERE state = 'failed' AND attempts > 0"
        " AND (substr(reason, 1, ?) = ? OR substr(reason, 1, ?) = ?)",
        (
            ReasonKind.UNCONFIRMED.value,
            len(NOT_CONFIRMED),
            NOT_CONFIRMED,
            len(DOUBT_PREFIX),
            DOUBT_PREFIX,
        ),
    )


#: Schema version -> the step to the next one; :func:`_upgrade` runs them in order up to :data:`SCHEMA_VERSION`.
_UPGRADES: dict[str, tuple[Callable[[sqlite3.Connection], None], str]] = {
    "1": (_upgrade_from_1, "2"),
    "2": (_upgrade_from_2, "3"),
}


def _add_columns(db: sqlite3.Connection, columns: Iterable[tuple[str, str]]) -> None:
    # A journal of the old version has none of them; a newer table made by _SCHEMA's IF NOT EXISTS has them all.
    present = {str(column[1]) for column in db.execute("PRAGMA table_info(instances)")}
    for name, kind in columns:
        if name not in present:
            db.execute(f"ALTER TABLE instances ADD COLUMN {name} {kind}")


def _upgrade(db: sqlite3.Connection, version: str) -> None:
    """Bring a journal of an older ``version`` to :data:`SCHEMA_VERSION`, step by step, in one transaction (its
    rows stay as they are, but for the columns each step adds)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        while version != SCHEMA_VERSION:
            step, version = _UPGRADES[version]
            step(db)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
