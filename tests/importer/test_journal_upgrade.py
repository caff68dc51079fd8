"""An import resumed on a journal an earlier dcmseal wrote (schema version 2, before the reason kind).

Version 2 told a row in doubt by the first words of its reason; version 3 by a column of its own, which the
upgrade fills from those words once. The resume must still see what the old journal left in doubt: DCMTK's
storescp cannot be asked whether it holds an instance, so a row in doubt is left failed and not sent again
(storescp receives nothing twice); a row the upgrade missed would be sent a second time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dcmseal.audit import FileSink
from dcmseal.importer import State
from dcmseal.importer.journal import SCHEMA_VERSION
from dcmseal.importer.pipeline import import_medium
from dcmseal.outcomes import ReasonKind
from tests.importer.conftest import StoreScp, foreign_study, import_request


def _as_version_2(journal: Path, broken_off: list[str]) -> None:
    """Make ``journal`` what version 2 left after sends the peer broke off: those rows failed, 'not confirmed'."""
    db = sqlite3.connect(journal)
    try:
        db.executemany(
            "UPDATE instances SET state = 'failed', reason = 'not confirmed: association aborted',"
            " confirmation = NULL, verified = NULL WHERE path = ?",
            [(path,) for path in broken_off],
        )
        db.execute("ALTER TABLE instances DROP COLUMN reason_kind")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
        db.commit()
    finally:
        db.close()


def test_a_resume_on_a_version_2_journal_does_not_send_what_it_left_in_doubt(
    tmp_path: Path, storescp: StoreScp
) -> None:
    medium = tmp_path / "medium"
    foreign_study(medium / "DICOM", 4, patient_id="EXT-UPGRADE")
    request = import_request(tmp_path, medium, storescp.target, verify=False)
    first = import_medium(request, audit=FileSink(tmp_path / "audit.log"))
    assert first.count(State.STORED) == 4
    assert len(storescp.received()) == 4
    broken_off = sorted(f.path for f in first.files)[:2]
    _as_version_2(request.journal, broken_off)

    resumed = import_medium(request, audit=FileSink(tmp_path / "audit.log"))

    in_doubt = {f.path: f for f in resumed.files if f.status is State.FAILED}
    assert sorted(in_doubt) == broken_off
    assert all(f.kind is ReasonKind.UNCONFIRMED for f in in_doubt.values())
    assert all(
        (f.reason or "").startswith("in doubt: ") for f in in_doubt.values()
    )  # the words, for a person
    assert len(storescp.received()) == 4  # nothing sent twice
    db = sqlite3.connect(request.journal)
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (SCHEMA_VERSION,)
        kinds = dict(db.execute("SELECT path, reason_kind FROM instances"))
    finally:
        db.close()
    assert {p: k for p, k in kinds.items() if k is not None} == dict.fromkeys(broken_off, "unconfirmed")
