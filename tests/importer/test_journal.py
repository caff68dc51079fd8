"""The import journal: states, transactions, the lock, the UID map, and what a rerun sees."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dcmseal.errors import InputError, UsageError
from dcmseal.importer import Journal, State
from dcmseal.importer.journal import SCHEMA_VERSION
from dcmseal.outcomes import ReasonKind

FP = "sha256:" + "ab" * 32
TARGET = "dicom://PACS@127.0.0.1:104"


def _journal(path: Path, *, policy: str = "keep", fingerprint: str = FP, target: str = TARGET) -> Journal:
    journal = Journal.open(path)
    try:
        journal.begin_import(fingerprint=fingerprint, target=target, medium="/media/cd", uid_policy=policy)
    except BaseException:
        journal.close()
        raise
    return journal


def test_a_row_goes_pending_then_stored_with_the_confirmation(tmp_path: Path) -> None:
    with _journal(tmp_path / "j.sqlite3") as journal:
        journal.record("DICOM/I1", State.PENDING, source_sha256="00" * 32, sop_instance_uid="1.2.3")
        journal.mark_sending(["DICOM/I1"], {"DICOM/I1": ("11" * 32, "1.2.3", "1.2")})
        journal.mark_sending(["DICOM/I1"], {"DICOM/I1": ("11" * 32, "1.2.3", "1.2")})
        journal.mark_stored("DICOM/I1", {"protocol": "C-STORE", "status": "0x0000"})
        row = journal.rows()["DICOM/I1"]
    assert row.state is State.STORED
    assert row.attempts == 2
    assert row.confirmation == {"protocol": "C-STORE", "status": "0x0000"}
    assert (row.source_sha256, row.sent_sha256, row.sent_sop_instance_uid) == ("00" * 32, "11" * 32, "1.2.3")
    assert row.sent_study_instance_uid == "1.2"
    assert row.verified is None  # confirmed, not yet checked


def test_verified_is_set_for_stored_rows_only_and_cleared_by_a_new_confirmation(tmp_path: Path) -> None:
    with _journal(tmp_path / "j.sqlite3") as journal:
        for path in ("I1", "I2", "I3"):
            journal.record(path, State.PENDING)
            journal.mark_sending([path], {path: ("aa", f"1.2.{path[-1]}", "1.2")})
        journal.mark_stored("I1", {"status": "0x0000"})
        journal.mark_stored("I2", {"status": "0x0000"})
        journal.mark_verified(["I1", "I2", "I3"], "C-FIND")  # I3 is pending: not verified
        assert {p: r.verified for p, r in journal.rows().items()} == {
            "I1": "C-FIND",
            "I2": "C-FIND",
            "I3": None,
        }
        journal.mark_not_held("I2", "not held")
        journal.mark_sending(["I2"], {"I2": ("aa", "1.2.2", "1.2")})
        journal.mark_stored("I2", {"status": "0x0000"})
        row = journal.row("I2")
    assert row is not None
    assert (row.state, row.verified) == (State.STORED, None)  # stored again: to be checked again


#: The schema of version 1, as dcmseal wrote it before the journal recorded the study sent and the check.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE imports (
    medium_fingerprint TEXT NOT NULL, target TEXT NOT NULL, medium TEXT NOT NULL, uid_policy TEXT NOT NULL,
    started TEXT NOT NULL, updated TEXT NOT NULL, runs INTEGER NOT NULL, PRIMARY KEY (medium_fingerprint, target)
);
CREATE TABLE instances (
    medium_fingerprint TEXT NOT NULL, target TEXT NOT NULL, path TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'stored', 'quarantined', 'failed', 'skipped')),
    reason TEXT, source_sha256 TEXT, sent_sha256 TEXT, sop_instance_uid TEXT, sent_sop_instance_uid TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, confirmation TEXT, updated TEXT NOT NULL,
    PRIMARY KEY (medium_fingerprint, target, path)
);
CREATE TABLE uid_map (
    original_uid TEXT PRIMARY KEY, new_uid TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    medium_fingerprint TEXT NOT NULL, created TEXT NOT NULL
);
INSERT INTO meta VALUES ('schema', '1');
"""


def test_a_journal_of_version_1_opens_and_its_stored_rows_are_not_yet_checked(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    try:
        db.executescript(V1_SCHEMA)
        db.execute(
            "INSERT INTO imports VALUES (?, ?, '/media/cd', 'keep', '2026-01-01', '2026-01-01', 1)",
            (FP, TARGET),
        )
        db.execute(
            "INSERT INTO instances (medium_fingerprint, target, path, state, sent_sop_instance_uid, attempts,"
            " confirmation, updated) VALUES (?, ?, 'DICOM/I1', 'stored', '1.2.3', 1, '{\"status\": \"0x0000\"}',"
            " '2026-01-01')",
            (FP, TARGET),
        )
        db.commit()
    finally:
        db.close()
    with _journal(path) as journal:
        row = journal.row("DICOM/I1")
        assert row is not None
        assert (row.state, row.confirmation, row.attempts) == (State.STORED, {"status": "0x0000"}, 1)
        assert (row.sent_study_instance_uid, row.verified) == (
            None,
            None,
        )  # not recorded then: not yet checked
        journal.mark_verified(["DICOM/I1"], "QIDO-RS")
        journal.record("DICOM/I2", State.PENDING)
        journal.mark_sending(["DICOM/I2"], {"DICOM/I2": ("bb", "1.2.4", "1.2")})
        journal.mark_stored("DICOM/I2", {"status": "0x0000"})
    with _journal(path) as journal:  # upgraded once: opens as version 2 from now on
        rows = journal.rows()
    assert rows["DICOM/I1"].verified == "QIDO-RS"
    assert (rows["DICOM/I2"].state, rows["DICOM/I2"].sent_study_instance_uid) == (State.STORED, "1.2")
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (SCHEMA_VERSION,)
    finally:
        db.close()


#: Version 2 (before the reason kind): version 1 with the study sent and the check.
V2_SCHEMA = V1_SCHEMA.replace(
    "confirmation TEXT, updated TEXT NOT NULL,",
    "confirmation TEXT, updated TEXT NOT NULL, sent_study_instance_uid TEXT, verified TEXT,",
).replace("('schema', '1')", "('schema', '2')")


def test_a_journal_of_version_2_tells_its_rows_in_doubt_by_kind_once_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    db = sqlite3.connect(path)
    try:
        db.executescript(V2_SCHEMA)
        db.execute(
            "INSERT INTO imports VALUES (?, ?, '/media/cd', 'keep', '2026-01-01', '2026-01-01', 1)",
            (FP, TARGET),
        )
        rows = [  # path, state, reason, attempts, sent SOP Instance UID, as version 2 wrote them
            ("BROKEN", "failed", "not confirmed: association aborted", 1, "1.2.1"),
            (
                "DOUBT",
                "failed",
                "in doubt: an earlier run sent it and stopped before it answered",
                2,
                "1.2.2",
            ),
            ("PENDING", "pending", None, 1, "1.2.3"),
            ("REFUSED", "failed", "refused: status 0xA700", 1, "1.2.4"),
            ("HELD", "failed", "held: no local identity", 0, None),
            ("NEVER", "failed", "not confirmed: but never sent", 0, None),
        ]
        db.executemany(
            "INSERT INTO instances (medium_fingerprint, target, path, state, reason, attempts,"
            " sent_sop_instance_uid, updated) VALUES (?, ?, ?, ?, ?, ?, ?, '2026-01-01')",
            [(FP, TARGET, *row) for row in rows],
        )
        db.commit()
    finally:
        db.close()
    with _journal(path) as journal:
        found = journal.rows()
        assert {p for p, row in found.items() if row.in_doubt} == {"BROKEN", "DOUBT", "PENDING"}
        assert {p for p, row in found.items() if row.reason_kind is ReasonKind.UNCONFIRMED} == {
            "BROKEN",
            "DOUBT",
        }
        assert found["BROKEN"].reason == "not confirmed: association aborted"  # the words stay, for a person
        journal.mark_failed("REFUSED", "in doubt: words alone say nothing now")
        journal.mark_failed("HELD", "refused again", ReasonKind.UNCONFIRMED)
    with _journal(path) as journal:
        found = journal.rows()
    assert not found["REFUSED"].in_doubt  # the kind decides, not the words
    assert found["HELD"].reason_kind is ReasonKind.UNCONFIRMED
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (SCHEMA_VERSION,)
    finally:
        db.close()


def test_a_journal_of_an_unknown_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    Journal.open(path).close()
    db = sqlite3.connect(path)
    try:
        db.execute("UPDATE meta SET value = '9' WHERE key = 'schema'")
        db.commit()
    finally:
        db.close()
    with pytest.raises(InputError, match="journal schema 9"):
        Journal.open(path)


def test_a_stored_row_is_never_changed_by_a_later_record(tmp_path: Path) -> None:
    with _journal(tmp_path / "j.sqlite3") as journal:
        journal.record("I1", State.PENDING)
        journal.mark_sending(["I1"], {"I1": ("aa", "1.2", "1")})
        journal.mark_stored("I1", {"status": "0x0000"})
        journal.record("I1", State.FAILED, reason="held: whatever")
        journal.mark_sending(["I1"], {"I1": ("bb", "1.3", "1")})
        row = journal.row("I1")
    assert row is not None
    assert (row.state, row.attempts, row.sent_sha256) == (State.STORED, 1, "aa")


def test_only_mark_stored_can_store(tmp_path: Path) -> None:
    with _journal(tmp_path / "j.sqlite3") as journal, pytest.raises(ValueError, match="confirmation"):
        journal.record("I1", State.STORED)


def test_rows_are_per_medium_and_target(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with _journal(path) as journal:
        journal.record("I1", State.PENDING)
    with _journal(path, target="https://pacs.example/dicom-web") as journal:
        assert journal.rows() == {}
    with _journal(path) as journal:
        assert list(journal.rows()) == ["I1"]


def test_a_second_import_on_the_same_journal_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal.open(path), pytest.raises(UsageError, match="another import is using this journal"):
        Journal.open(path)
    Journal.open(path).close()  # released on close


def test_the_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    """flock is released by the kernel when the holder is SIGKILLed: a rerun is never locked out."""
    path = tmp_path / "j.sqlite3"
    code = f"from dcmseal.importer import Journal; import os, signal; Journal.open({str(path)!r}); os.kill(os.getpid(), signal.SIGKILL)"
    result = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert result.returncode == -9
    Journal.open(path).close()


def test_changing_the_uid_policy_after_something_was_stored_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with _journal(path) as journal:
        journal.record("I1", State.PENDING)
        journal.mark_stored("I1", {"status": "0x0000"})
    with pytest.raises(UsageError, match="--uids keep"):
        _journal(path, policy="regenerate")
    with _journal(path, policy="keep") as journal:
        assert journal.rows()["I1"].state is State.STORED


def test_the_uid_map_persists(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with _journal(path) as journal:
        journal.add_uids([("1.2.3", "2.25.1", "study"), ("1.2.3.4", "2.25.2", "instance")])
    with _journal(path) as journal:
        assert journal.uid_map() == {"1.2.3": "2.25.1", "1.2.3.4": "2.25.2"}


def test_a_file_that_is_not_a_journal_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(InputError, match="not an import journal") as caught:
        Journal.open(path)
    assert str(path) in str(caught.value)


def test_a_reader_sees_committed_states_while_the_writer_holds_the_journal(tmp_path: Path) -> None:
    """What the SIGKILL test relies on: a poller reads committed rows (WAL) while the import runs."""
    path = tmp_path / "j.sqlite3"
    with _journal(path) as journal:
        journal.record("I1", State.PENDING)
        journal.mark_stored("I1", {"status": "0x0000"})
        reader = sqlite3.connect(path)
        try:
            assert reader.execute("SELECT state FROM instances").fetchall() == [("stored",)]
        finally:
            reader.close()
