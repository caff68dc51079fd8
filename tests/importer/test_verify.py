"""After the send, the import asks the PACS what it holds: real Orthanc (QIDO-RS, C-FIND) and DCMTK storescp.

Orthanc 1.10 answers C-STORE with status 0x0000 for an instance its Lua ``ReceivedInstanceFilter`` discards
(returns ``false``): the confirmation alone would record it as stored. The STOW-RS side of the same loss is in
``test_stow_refusals.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.audit import FileSink
from dcmseal.importer import DicomWebTarget, DimseTarget, State, Target, UidPolicy
from dcmseal.importer.dicomweb import StowSender
from dcmseal.importer.dimse import DimseSender
from dcmseal.importer.pipeline import ImportRequest, ImportResult, import_medium
from dcmseal.importer.send import Delivery, Outgoing, Sender
from tests.importer.conftest import (
    FAST_RETRY,
    HTTP_PASSWORD,
    HTTP_USER,
    OUR_AET,
    PACS_AET,
    StoreScp,
    dimse_target,
    foreign_study,
    import_request,
    orthanc_config,
    sop_uids,
    stow_target,
)
from tests.jsondoc import member
from tests.peers.orthanc import OrthancPeer, running_orthanc

#: Real peers: Orthanc (C-STORE, C-FIND, STOW-RS, QIDO-RS) and DCMTK storescp.
pytestmark = pytest.mark.interop


def _import(tmp_path: Path, medium: Path, target: Target, *, verify: bool = True) -> ImportResult:
    request = import_request(tmp_path, medium, target, verify=verify)
    return import_medium(request, audit=FileSink(tmp_path / "audit.log"))


def _pacs(
    workdir: Path, *, drop: str | None = None, ports: tuple[int, int] | None = None
) -> AbstractContextManager[OrthancPeer]:
    """Orthanc storing under ``workdir``; with ``drop`` (a Lua condition on ``dicom``), a ReceivedInstanceFilter
    that discards the instances it matches (after C-STORE success, or listed as stored by STOW-RS)."""
    config = orthanc_config()
    if drop is not None:
        lua = workdir.with_name(workdir.name + "-drop.lua")
        lua.write_text(
            "function ReceivedInstanceFilter(dicom, origin, info)\n"
            f"  if {drop} then return false end\n"
            "  return true\n"
            "end\n",
            encoding="utf-8",
        )
        config |= {"LuaScripts": [str(lua)]}
    return running_orthanc(
        workdir, aet=PACS_AET, extra_config=config, users={HTTP_USER: HTTP_PASSWORD}, ports=ports
    )


@pytest.fixture
def dropping(tmp_path: Path) -> Iterator[tuple[OrthancPeer, Path, str]]:
    """An Orthanc whose Lua filter discards one instance of a 3-instance medium: (peer, medium, its path)."""
    medium = tmp_path / "medium"
    paths = foreign_study(medium / "DICOM", 3, patient_id="EXT-SILENT")
    dropped = str(dcmread(paths[1], stop_before_pixels=True).SOPInstanceUID)
    with _pacs(tmp_path / "pacs", drop=f'dicom.SOPInstanceUID == "{dropped}"') as peer:
        yield peer, medium, paths[1].relative_to(medium).as_posix()


def test_an_instance_dropped_after_a_c_store_success_is_failed_by_c_find(
    tmp_path: Path, dropping: tuple[OrthancPeer, Path, str]
) -> None:
    peer, medium, dropped = dropping
    result = _import(tmp_path, medium, dimse_target(peer))
    states = {f.path: f for f in result.files}
    # Orthanc said success for it (the confirmation is kept), yet does not hold it.
    confirmation = states[dropped].confirmation
    assert confirmation is not None
    assert confirmation["status"] == "0x0000"
    assert states[dropped].status is State.FAILED
    assert (
        states[dropped].reason == "the PACS confirmed it but does not hold it (C-FIND found no such instance)"
    )
    stored = {rel for rel, f in states.items() if f.status is State.STORED}
    assert len(stored) == 2
    assert dropped not in stored
    assert peer.sop_instance_uids() == {states[rel].sent_sop_instance_uid for rel in stored}
    assert result.verification is not None
    assert result.verification.queries == 1
    assert not result.ok
    assert result.peer_error is None


def test_no_verify_keeps_the_confirmations_as_they_are(
    tmp_path: Path, dropping: tuple[OrthancPeer, Path, str]
) -> None:
    peer, medium, _dropped = dropping
    result = _import(tmp_path, medium, DicomWebTarget(url=peer.dicomweb_url), verify=False)
    # Today's behaviour, the reason --verify is the default: the discarded instance is recorded as stored.
    assert all(f.status is State.STORED for f in result.files)
    assert result.ok
    assert result.verification is None
    assert result.to_json()["verification"] is None
    assert len(peer.sop_instance_uids()) == 2


def test_a_peer_without_c_find_keeps_the_confirmations_with_a_note(
    tmp_path: Path, storescp: StoreScp
) -> None:
    medium = tmp_path / "medium"
    paths = foreign_study(medium / "DICOM", 3, patient_id="EXT-STORESCP")
    result = _import(tmp_path, medium, storescp.target)
    assert result.ok, [f.reason for f in result.files]
    assert all(f.status is State.STORED for f in result.files)
    assert sop_uids(storescp.received()) == sop_uids(paths)
    notes = [n for n in result.notes if n.startswith("not verified: ")]
    assert len(notes) == 1, result.notes
    assert str(storescp.target) in notes[0], notes
    assert "no query SCP" in notes[0], notes
    assert "3 instance(s) remain unverified" in notes[0], notes
    assert result.to_json()["notes"] == list(result.notes)
    assert result.verification is not None
    assert result.verification.studies_checked == 0
    assert result.verification.not_held == ()
    assert _verified(tmp_path) == dict.fromkeys(_verified(tmp_path), None)  # stored, still not checked
    # A rerun sends nothing, asks again (in case the peer can be asked now), and still cannot.
    again = _import(tmp_path, medium, storescp.target)
    assert again.ok
    assert all(f.earlier_run for f in again.files)
    assert again.verification is not None
    assert (again.verification.unverified, again.verification.carried_over) == (3, 0)
    (note,) = [n for n in again.notes if n.startswith("not verified: ")]
    assert "3 instance(s) remain unverified" in note
    assert len(storescp.received()) == 3  # nothing sent twice


def _verified(tmp_path: Path) -> dict[str, str | None]:
    """path -> the journal's ``verified`` (the query that found it held, or None) of every stored row."""
    db = sqlite3.connect(f"file:{tmp_path / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT path, verified FROM instances WHERE state = 'stored'").fetchall()
    finally:
        db.close()
    return {str(p): v for p, v in rows}


class _Counting:
    """The real sender, with the studies it was asked about written down."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.batch_size = sender.batch_size
        self.query = sender.query
        self.asked: list[tuple[str, frozenset[str]]] = []

    def store(self, items: Sequence[Outgoing]) -> list[Delivery]:
        return self.sender.store(items)

    def held(self, study_instance_uid: str, wanted: Collection[str]) -> set[str]:
        self.asked.append((study_instance_uid, frozenset(wanted)))
        return self.sender.held(study_instance_uid, wanted)

    def close(self) -> None:
        self.sender.close()


def _counting_factory(counting: list[_Counting]) -> Callable[[Target, Sequence[tuple[str, str]]], Sender]:
    """A sender factory that makes the real sender and writes down, in ``counting``, what each one was asked."""

    def factory(target: Target, pairs: Sequence[tuple[str, str]]) -> Sender:
        real: Sender
        if isinstance(target, DimseTarget):
            real = DimseSender(target, calling_aet=OUR_AET, pairs=pairs)
        else:
            real = StowSender(target, username=HTTP_USER, password=HTTP_PASSWORD)
        counting.append(_Counting(real))
        return counting[-1]

    return factory


@pytest.mark.parametrize("protocol", ["dimse", "stow"])
def test_one_query_per_study_for_the_uids_sent(tmp_path: Path, orthanc: OrthancPeer, protocol: str) -> None:
    medium = tmp_path / "medium"
    first = foreign_study(medium / "A", 4, patient_id="EXT-TWO")
    second = foreign_study(medium / "B", 3, patient_id="EXT-TWO")
    original_studies = {str(dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in first + second}
    target = dimse_target(orthanc) if protocol == "dimse" else stow_target(orthanc)
    counting: list[_Counting] = []
    factory = _counting_factory(counting)
    request = import_request(tmp_path, medium, target, uid_policy=UidPolicy.REGENERATE)
    result = import_medium(request, audit=FileSink(tmp_path / "audit.log"), sender_factory=factory)

    assert result.ok, [f.reason for f in result.files]
    (sender,) = counting
    # One query per study, asked by the UIDs that were sent (regenerated), for exactly the instances sent.
    assert len(sender.asked) == 2
    sent_studies = {study for study, _wanted in sender.asked}
    assert not sent_studies & original_studies
    assert frozenset().union(*(w for _s, w in sender.asked)) == {
        f.sent_sop_instance_uid for f in result.files
    }
    assert sorted(len(w) for _s, w in sender.asked) == [3, 4]
    assert result.verification is not None
    assert (result.verification.studies, result.verification.queries) == (2, 2)
    assert orthanc.sop_instance_uids() == {f.sent_sop_instance_uid for f in result.files}
    assert set(_verified(tmp_path).values()) == {sender.query}
    # A rerun sends nothing and asks nothing: every instance was verified, and is not asked about again.
    again = import_medium(request, audit=FileSink(tmp_path / "audit.log"), sender_factory=factory)
    assert again.ok
    assert again.verification is None
    assert len(counting) == 1


def test_a_dicomweb_root_without_qido_keeps_the_confirmations_with_a_note(
    tmp_path: Path, orthanc: OrthancPeer
) -> None:
    """Orthanc's plugin with QIDO-RS answered 404 (a root that only stores): not verified, not failed."""
    medium = tmp_path / "medium"
    foreign_study(medium, 2, patient_id="EXT-NOQIDO")

    class StoreOnly(StowSender):
        def held(self, study_instance_uid: str, wanted: Collection[str]) -> set[str]:
            # The real QIDO-RS request, to a path under the root that Orthanc does not serve (HTTP 404).
            self._web._client.qido_url_prefix = "no-such-service"
            return super().held(study_instance_uid, wanted)

    def factory(target: Target, pairs: Sequence[tuple[str, str]]) -> Sender:
        assert isinstance(target, DicomWebTarget)
        return StoreOnly(target, username=HTTP_USER, password=HTTP_PASSWORD)

    request = ImportRequest(
        medium=medium,
        target=stow_target(orthanc),
        operator="import-tester",
        journal=tmp_path / "journal.sqlite3",
        quarantine=tmp_path / "quarantine",
        retry=FAST_RETRY,
    )
    result = import_medium(request, audit=FileSink(tmp_path / "audit.log"), sender_factory=factory)
    assert result.ok, [f.reason for f in result.files]
    assert all(f.status is State.STORED for f in result.files)
    (note,) = [n for n in result.notes if n.startswith("not verified: ")]
    assert "QIDO-RS: HTTP 404" in note


def test_a_rerun_checks_what_an_interrupted_run_confirmed_and_left_unchecked(tmp_path: Path) -> None:
    """The crash window, without a crash: a run that stops after the confirmations (``verify=False`` leaves the
    journal as SIGKILL between the confirmation and the query would) and a rerun on the same journal."""
    medium = tmp_path / "medium"
    paths = foreign_study(medium / "DICOM", 3, patient_id="EXT-CRASH")
    rels = [p.relative_to(medium).as_posix() for p in paths]
    uids = {
        rel: str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for rel, p in zip(rels, paths, strict=True)
    }
    study = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    dropped = rels[1]
    counting: list[_Counting] = []
    factory = _counting_factory(counting)
    with _pacs(tmp_path / "pacs", drop=f'dicom.SOPInstanceUID == "{uids[dropped]}"') as peer:
        ports = (peer.http_port, peer.dicom_port)
        target = dimse_target(peer)
        first = import_medium(
            import_request(tmp_path, medium, target, verify=False), audit=FileSink(tmp_path / "audit.log")
        )
        assert first.ok  # all three confirmed...
        assert _verified(tmp_path) == dict.fromkeys(rels, None)  # ...journaled stored, none checked
        assert peer.sop_instance_uids() == {uids[rels[0]], uids[rels[2]]}

        second = import_medium(
            import_request(tmp_path, medium, target),
            audit=FileSink(tmp_path / "audit.log"),
            sender_factory=factory,
        )
    (sender,) = counting  # made for the query alone: nothing was left to send
    assert sender.asked == [(study, frozenset(uids.values()))]  # one query for the study
    states = {f.path: f for f in second.files}
    reason = "the PACS confirmed it but does not hold it (C-FIND found no such instance)"
    assert (states[dropped].status, states[dropped].reason) == (State.FAILED, reason)
    assert all(states[rel].status is State.STORED and states[rel].earlier_run for rel in (rels[0], rels[2]))
    assert not second.ok
    assert second.peer_error is None
    assert member(second.to_json(), "verification") == {
        "query": "C-FIND",
        "studies": 1,
        "studies_checked": 1,
        "queries": 1,
        "held": 2,
        "not_held": 1,
        "carried_over": 3,
        "unverified": 0,
        "note": None,
    }
    assert _verified(tmp_path) == {rels[0]: "C-FIND", rels[2]: "C-FIND"}  # the dropped one is failed now

    # The filter removed (same storage, same ports): the third run sends the dropped instance, and asks about
    # it alone: the two verified by the second run are not asked about again.
    with _pacs(tmp_path / "pacs", ports=ports) as peer:
        third = import_medium(
            import_request(tmp_path, medium, dimse_target(peer)),
            audit=FileSink(tmp_path / "audit.log"),
            sender_factory=factory,
        )
        assert peer.sop_instance_uids() == set(uids.values())
    assert third.ok, [(f.path, f.reason) for f in third.files]
    assert member(third.to_json(), "summary", "sent_now") == 1
    assert counting[-1].asked == [(study, frozenset({uids[dropped]}))]
    assert third.verification is not None
    assert third.verification.carried_over == 0
    assert _verified(tmp_path) == dict.fromkeys(rels, "C-FIND")


def test_a_journal_of_the_previous_version_is_checked_on_the_next_run(tmp_path: Path) -> None:
    """A journal written before the journal recorded the study sent and the check (schema 1), with instances
    stored under --uids regenerate and never checked: the rerun reads their studies from the medium, maps them
    to the UIDs sent, and asks the PACS about them (STOW-RS, QIDO-RS)."""
    medium = tmp_path / "medium"
    paths = foreign_study(medium / "DICOM", 3, patient_id="EXT-OLD")
    rels = [p.relative_to(medium).as_posix() for p in paths]
    original_study = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    journal = tmp_path / "journal.sqlite3"
    counting: list[_Counting] = []
    # The second instance (Instance Number 2) is discarded: its regenerated SOP Instance UID is not known yet.
    with _pacs(tmp_path / "pacs", drop="tonumber(dicom.InstanceNumber) == 2") as peer:
        target = stow_target(peer)
        request = import_request(tmp_path, medium, target, uid_policy=UidPolicy.REGENERATE)
        first = import_medium(replace(request, verify=False), audit=FileSink(tmp_path / "audit.log"))
        assert first.ok
        assert len(peer.sop_instance_uids()) == 2
        db = sqlite3.connect(journal)
        try:  # back to version 1: the columns it did not have, gone
            db.execute("ALTER TABLE instances DROP COLUMN verified")
            db.execute("ALTER TABLE instances DROP COLUMN sent_study_instance_uid")
            db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
            db.commit()
            columns = [str(c[1]) for c in db.execute("PRAGMA table_info(instances)")]
            sent_study = db.execute(
                "SELECT new_uid FROM uid_map WHERE original_uid = ?", (original_study,)
            ).fetchone()[0]
        finally:
            db.close()
        assert "verified" not in columns

        second = import_medium(
            request, audit=FileSink(tmp_path / "audit.log"), sender_factory=_counting_factory(counting)
        )
    (sender,) = counting
    assert [study for study, _wanted in sender.asked] == [
        sent_study
    ]  # the study as sent, not as on the medium
    assert sender.asked[0][1] == {f.sent_sop_instance_uid for f in first.files}
    states = {f.path: f for f in second.files}
    assert states[rels[1]].status is State.FAILED
    assert (
        states[rels[1]].reason
        == "the PACS confirmed it but does not hold it (QIDO-RS found no such instance)"
    )
    assert second.verification is not None
    assert (second.verification.carried_over, len(second.verification.held)) == (3, 2)
    assert _verified(tmp_path) == {rels[0]: "QIDO-RS", rels[2]: "QIDO-RS"}
