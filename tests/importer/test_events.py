"""The events open and import emit to the handlers of their request (issue 17 item 3), counted against the result.

Real media and real peers: a plain medium with a few files sealed and one file that is no Secure DICOM File
for all its envelope-like name; an import into DCMTK's storescp, with a study reconciliation holds.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path

from dcmseal import cms
from dcmseal.audit import FileSink
from dcmseal.events import Event, FileFailed, FileOpened, FileQuarantined, InstanceStored, Progress, StudyHeld
from dcmseal.importer import State, load_reconciliation
from dcmseal.importer.pipeline import import_medium
from dcmseal.media.open import OpenRequest, open_medium
from dcmseal.part10 import seal_file
from tests.importer.conftest import (
    StoreScp,
    foreign_study,
    import_request,
    plain_medium,
    polyglot_medium,
    write_mapping,
)
from tests.part10.dicomfiles import PASSWORD, fast_kdf


def _sealed_medium(root: Path) -> tuple[Path, list[str]]:
    """pydicom's dicomdirtests with every tenth instance sealed with PASSWORD; the sealed files' paths."""
    medium = plain_medium(root)
    files = sorted(p for p in medium.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    recipient = cms.PasswordRecipient(password=PASSWORD.encode(), kdf=fast_kdf())
    chosen = files[::10]
    for path in chosen:
        sealed = path.with_name(path.name + ".sealed")
        seal_file(path, sealed, recipients=[recipient])
        sealed.replace(path)
    # Cut one sealed file short: it is a Secure DICOM File that does not open (a FileFailed).
    broken = chosen[-1]
    broken.write_bytes(broken.read_bytes()[:-100])
    return medium, sorted(p.relative_to(medium).as_posix() for p in chosen)


def test_open_emits_progress_and_one_event_per_file_opened_or_failed(tmp_path: Path) -> None:
    medium, sealed = _sealed_medium(tmp_path / "medium")
    seen: list[Event] = []
    request = OpenRequest(
        medium=medium,
        out=tmp_path / "opened",
        operator="events-tester",
        passwords=(PASSWORD.encode(),),
        handlers=[(Event, seen.append)],
    )

    result = open_medium(request, audit=FileSink(tmp_path / "audit.log"))

    opened = [e for e in seen if isinstance(e, FileOpened)]
    failed = [e for e in seen if isinstance(e, FileFailed)]
    assert sorted(str(e.path) for e in opened) == [f.path for f in result.files if f.status == "opened"]
    assert sorted(str(e.path) for e in failed) == [f.path for f in result.files if f.status == "failed"]
    assert len(opened) == len(sealed) - 1
    assert [str(e.path) for e in failed] == [sealed[-1]]
    for event in opened:  # each names where its plaintext is in the File-set written
        assert event.output is not None
        assert event.output.is_file()
        assert event.output.is_relative_to(tmp_path / "opened")
    # The reading-in stages report every file they go through, once each, and end complete.
    stages = Counter(e.stage for e in seen if isinstance(e, Progress))
    assert stages["read"] == len(result.files)  # a plain folder: every file is read
    assert stages["open"] == len(sealed)
    last = {e.stage: e for e in seen if isinstance(e, Progress)}
    assert all(e.done == e.total for e in last.values())


def test_import_emits_instances_stored_and_studies_held(tmp_path: Path, storescp: StoreScp) -> None:
    medium = tmp_path / "medium"
    foreign_study(medium / "KNOWN", 3, patient_id="EXT-KNOWN")
    foreign_study(medium / "UNKNOWN", 2, patient_id="EXT-UNKNOWN")
    mapping = write_mapping(
        tmp_path / "map.csv",
        [{"foreign_patient_id": "EXT-KNOWN", "patient_id": "LOC-1", "patient_name": "A^B"}],
    )
    seen: list[Event] = []
    request = replace(
        import_request(tmp_path, medium, storescp.target, verify=False),
        reconciliation=load_reconciliation(mapping),
        handlers=[(Event, seen.append)],
    )

    result = import_medium(request, audit=FileSink(tmp_path / "audit.log"))

    stored = [e for e in seen if isinstance(e, InstanceStored)]
    held = [e for e in seen if isinstance(e, StudyHeld)]
    assert len(stored) == result.count(State.STORED) == 3
    assert {e.sop_instance_uid for e in stored} == {
        f.sent_sop_instance_uid for f in result.files if f.status is State.STORED
    }
    assert len(held) == 1  # the unknown patient's study, once for its two instances
    assert result.held == 2
    assert [r.foreign.study_instance_uid for r in result.reconciliation if r.held] == [
        held[0].study_instance_uid
    ]
    assert not [e for e in seen if isinstance(e, FileFailed)]  # held is not failed
    sent = [e for e in seen if isinstance(e, Progress) and e.stage == "send"]
    assert sent[-1].done == sent[-1].total == 3


def test_import_tells_each_file_as_it_ends_not_once_the_run_is_over(
    tmp_path: Path, storescp: StoreScp
) -> None:
    medium = polyglot_medium(tmp_path / "medium")
    request = import_request(tmp_path, medium, storescp.target, verify=False)
    seen: list[Event] = []
    states_when_told: dict[str, str] = {}
    quarantined_when_told: list[int] = []

    def stored(event: InstanceStored) -> None:
        # Read as a second process would: the confirmation is committed before the handlers hear of it.
        db = sqlite3.connect(f"file:{request.journal}?mode=ro", uri=True)
        try:
            (state,) = db.execute("SELECT state FROM instances WHERE path = ?", (str(event.path),)).fetchone()
        finally:
            db.close()
        states_when_told[str(event.path)] = state

    def quarantined(_event: FileQuarantined) -> None:
        quarantined_when_told.append(sum(1 for p in request.quarantine.rglob("*") if p.is_file()))

    result = import_medium(
        replace(
            request, handlers=[(Event, seen.append), (InstanceStored, stored), (FileQuarantined, quarantined)]
        ),
        audit=FileSink(tmp_path / "audit.log"),
    )

    told_stored = [e for e in seen if isinstance(e, InstanceStored)]
    told_quarantined = [e for e in seen if isinstance(e, FileQuarantined)]
    assert len(told_stored) == result.count(State.STORED) > 0
    assert len(told_quarantined) == result.count(State.QUARANTINED) > 0
    assert set(states_when_told.values()) == {"stored"}
    assert all(n > 0 for n in quarantined_when_told)  # the file was set aside before it was told
    # Each is told in its stage: a quarantine before anything is prepared, a store before the send ends.
    position = {id(e): n for n, e in enumerate(seen)}
    first_prepare = min(position[id(e)] for e in seen if isinstance(e, Progress) and e.stage == "prepare")
    last_send = max(position[id(e)] for e in seen if isinstance(e, Progress) and e.stage == "send")
    assert all(position[id(e)] < first_prepare for e in told_quarantined)
    assert all(position[id(e)] < last_send for e in told_stored)
