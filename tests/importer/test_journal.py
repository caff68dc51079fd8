"""The import journal: states, transactions, the lock, the UID map, and what a rerun sees."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dcmseal.errors import InputError, UsageError
from dcmseal.importer import Journal, State

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
        journal.mark_sending(["DICOM/I1"], {"DICOM/I1": ("11" * 32, "1.2.3")})
        journal.mark_sending(["DICOM/I1"], {"DICOM/I1": ("11" * 32, "1.2.3")})
        journal.mark_stored("DICOM/I1", {"protocol": "C-STORE", "status": "0x0000"})
        row = journal.rows()["DICOM/I1"]
    assert row.state is State.STORED
    assert row.attempts == 2
    assert row.confirmation == {"protocol": "C-STORE", "status": "0x0000"}
    assert (row.source_sha256, row.sent_sha256, row.sent_sop_instance_uid) == ("00" * 32, "11" * 32, "1.2.3")


def test_a_stored_row_is_never_changed_by_a_later_record(tmp_path: Path) -> None:
    with _journal(tmp_path / "j.sqlite3") as journal:
        journal.record("I1", State.PENDING)
        journal.mark_sending(["I1"], {"I1": ("aa", "1.2")})
        journal.mark_stored("I1", {"status": "0x0000"})
        journal.record("I1", State.FAILED, reason="held: whatever")
        journal.mark_sending(["I1"], {"I1": ("bb", "1.3")})
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
