"""STOW-RS when a real Orthanc refuses some instances of a request: what is recorded, what is stored, the rerun.

Orthanc 1.10 with its DICOMweb plugin 1.7 (Debian 12) refuses in two ways we can provoke:

- an instance without a mandatory attribute: the plugin answers HTTP 400 with a FailedSOPSequence item
  (Failure Reason 0xC000) and stores the other instances of the request; the body has no Content-Type;
- a Lua ``ReceivedInstanceFilter`` that raises an error: the store fails inside Orthanc, and the plugin drops
  that instance and the rest of the request from its answer (HTTP 200, neither sequence names them).

A filter that returns ``false`` is no refusal: Orthanc discards the instance ("FilteredOut"), but the DICOMweb
plugin 1.7 still lists it in the ReferencedSOPSequence, as stored. The import's verification (QIDO-RS after the
send) finds it missing and fails it, and a rerun sends it again (the last test).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.audit import FileSink
from dcmseal.importer import DicomWebTarget, State
from dcmseal.importer.dicomweb import StowSender
from dcmseal.importer.pipeline import ImportResult, import_medium
from tests.importer.conftest import (
    FAST_RETRY,
    HTTP_PASSWORD,
    HTTP_USER,
    PACS_AET,
    foreign_study,
    import_request,
    orthanc_config,
    outgoing,
    sop_uids,
    stow_target,
)
from tests.jsondoc import member
from tests.peers.orthanc import OrthancPeer, running_orthanc

#: Real peers: Orthanc with its DICOMweb plugin.
pytestmark = pytest.mark.interop

REFUSAL = "refused by the dcmseal test filter"


@pytest.fixture
def sender(orthanc: OrthancPeer) -> Iterator[StowSender]:
    stow = StowSender(stow_target(orthanc), username=HTTP_USER, password=HTTP_PASSWORD)
    yield stow
    stow.close()


def test_a_failed_sop_sequence_refuses_that_instance_and_confirms_the_others(
    tmp_path: Path, orthanc: OrthancPeer, sender: StowSender
) -> None:
    paths = foreign_study(tmp_path / "src", 3, patient_id="EXT-FAILED")
    ds = dcmread(paths[1])
    del ds.SeriesInstanceUID  # the plugin's Failure Reason 0xC000 "cannot understand"
    ds.save_as(paths[1], enforce_file_format=True)
    items = outgoing(paths)

    answers = sender.store(items)

    by_key = {a.key: a for a in answers}
    refused = by_key[paths[1].name]
    assert not refused.stored
    assert refused.reason == "STOW-RS refused: Failure Reason 0xC000"
    assert refused.confirmation == {"protocol": "STOW-RS", "failure_reason": "0xC000"}
    assert not refused.retryable  # not a condition that clears: the instance itself is refused
    for kept in (paths[0], paths[2]):
        answer = by_key[kept.name]
        assert answer.stored, answer.reason
        assert str(answer.confirmation["retrieve_url"]).endswith(items[paths.index(kept)].sop_instance_uid)
    # What Orthanc holds is what the answers say: the two others, stored in spite of the HTTP 400.
    assert orthanc.sop_instance_uids() == {items[0].sop_instance_uid, items[2].sop_instance_uid}


def _filter_script(path: Path, refused: set[str], *, error: bool) -> Path:
    uids = ", ".join(f'["{uid}"] = true' for uid in sorted(refused))
    action = f'error("{REFUSAL}")' if error else "return false"
    path.write_text(
        f"local refused = {{ {uids} }}\n"
        "function ReceivedInstanceFilter(dicom, origin, info)\n"
        f"  if refused[dicom.SOPInstanceUID] then {action} end\n"
        "  return true\n"
        "end\n",
        encoding="utf-8",
    )
    return path


def _pacs(
    workdir: Path, *, lua: Path | None = None, ports: tuple[int, int] | None = None
) -> AbstractContextManager[OrthancPeer]:
    config = orthanc_config() | ({"LuaScripts": [str(lua)]} if lua is not None else {})
    return running_orthanc(
        workdir, aet=PACS_AET, extra_config=config, users={HTTP_USER: HTTP_PASSWORD}, ports=ports
    )


def _import(tmp_path: Path, medium: Path, peer: OrthancPeer) -> ImportResult:
    request = import_request(tmp_path, medium, DicomWebTarget(url=peer.dicomweb_url))
    return import_medium(request, audit=FileSink(tmp_path / "audit.log"))


def _journal(path: Path) -> dict[str, tuple[str, str | None, int]]:
    """path -> (state, reason, attempts), read as a second process would."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT path, state, reason, attempts FROM instances").fetchall()
    finally:
        db.close()
    return {str(p): (str(s), r, int(a)) for p, s, r, a in rows}


def test_instances_orthanc_refuses_are_journaled_failed_and_a_rerun_sends_only_them(tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    paths = foreign_study(medium / "DICOM", 6, patient_id="EXT-REFUSED")
    uids = {p.relative_to(medium).as_posix(): str(dcmread(p).SOPInstanceUID) for p in paths}
    # The second and the fifth of one STOW-RS request (STOW_BATCH is 8): the first refusal would take the
    # rest of the request down with it if the sender did not then send the others one by one.
    refused = {rel for n, rel in enumerate(sorted(uids)) if n in (1, 4)}
    lua = _filter_script(tmp_path / "refuse.lua", {uids[rel] for rel in refused}, error=True)
    workdir = tmp_path / "pacs"

    with _pacs(workdir, lua=lua) as peer:
        ports = (peer.http_port, peer.dicom_port)
        first = _import(tmp_path, medium, peer)
        held = peer.sop_instance_uids()
        log = peer.log_tail(400)

    assert REFUSAL in log  # Orthanc itself refused them (the Lua filter ran on the STOW-RS path)
    states = {f.path: f for f in first.files}
    assert {rel for rel, f in states.items() if f.status is State.FAILED} == refused
    assert held == {uids[rel] for rel in uids if rel not in refused}
    journal = _journal(tmp_path / "journal.sqlite3")
    for rel in uids:
        state, reason, attempts = journal[rel]
        if rel in refused:
            assert state == "failed"
            assert reason == f"STOW-RS response does not confirm it (after {FAST_RETRY.attempts} attempt(s))"
            assert states[rel].reason == reason
            assert attempts == FAST_RETRY.attempts
        else:
            assert (state, reason) == ("stored", None)
            assert states[rel].confirmation is not None
    assert not first.ok

    # The filter removed (same storage, same ports): the rerun sends the two refused instances and nothing else.
    with _pacs(workdir, ports=ports) as peer:
        again = _import(tmp_path, medium, peer)
        assert peer.sop_instance_uids() == set(uids.values())
        assert len(peer.ids("/instances")) == len(uids)
    assert again.ok, again.peer_error
    assert member(again.to_json(), "summary", "sent_now") == len(refused)
    rerun = _journal(tmp_path / "journal.sqlite3")
    for rel in uids:
        state, reason, attempts = rerun[rel]
        assert (state, reason) == ("stored", None)
        # One more attempt for the refused ones only: the others were not sent again.
        assert attempts == journal[rel][2] + (1 if rel in refused else 0), rel
    earlier = {f.path for f in again.files if f.earlier_run}
    assert earlier == set(uids) - refused


def test_an_instance_the_pacs_discards_silently_is_not_recorded_as_stored(tmp_path: Path) -> None:
    """Confirmed by STOW-RS, not held: QIDO-RS finds it missing, the journal says failed, a rerun stores it."""
    medium = tmp_path / "medium"
    paths = foreign_study(medium / "DICOM", 3, patient_id="EXT-DROPPED")
    dropped_rel = paths[1].relative_to(medium).as_posix()
    dropped = str(dcmread(paths[1]).SOPInstanceUID)
    lua = _filter_script(tmp_path / "drop.lua", {dropped}, error=False)
    workdir = tmp_path / "pacs"
    with _pacs(workdir, lua=lua) as peer:
        ports = (peer.http_port, peer.dicom_port)
        result = _import(tmp_path, medium, peer)
        held = peer.sop_instance_uids()
    assert held == sop_uids([paths[0], paths[2]])  # Orthanc did discard it
    states = {f.path: f for f in result.files}
    reason = "the PACS confirmed it but does not hold it (QIDO-RS found no such instance)"
    assert states[dropped_rel].status is State.FAILED
    assert states[dropped_rel].reason == reason
    assert states[dropped_rel].confirmation is not None  # what the PACS said is kept
    assert {rel for rel, f in states.items() if f.status is State.STORED} == {
        p.relative_to(medium).as_posix() for p in (paths[0], paths[2])
    }
    journal = _journal(tmp_path / "journal.sqlite3")
    assert journal[dropped_rel][:2] == ("failed", reason)
    assert not result.ok
    assert result.peer_error is None
    report = result.to_json()
    assert member(report, "summary", "stored") == 2
    assert member(report, "summary", "failed") == 1
    assert report["verification"] == {  # one study, one query
        "query": "QIDO-RS",
        "studies": 1,
        "studies_checked": 1,
        "queries": 1,
        "held": 2,
        "not_held": 1,
        "carried_over": 0,  # everything asked about was confirmed in this run
        "unverified": 0,
        "note": None,
    }
    assert not any(n.startswith("not verified") for n in result.notes)
    # The audit message counts the two the PACS holds, not the one it discarded.
    audit = (tmp_path / "audit.log").read_text(encoding="utf-8")
    assert "2 stored into" in audit
    assert "1 failed or held" in audit

    # The filter removed (same storage, same ports): the rerun sends the discarded instance, and only it.
    with _pacs(workdir, ports=ports) as peer:
        again = _import(tmp_path, medium, peer)
        assert peer.sop_instance_uids() == sop_uids(paths)
    assert again.ok, (again.peer_error, [f.reason for f in again.files])
    assert member(again.to_json(), "summary", "sent_now") == 1
    assert _journal(tmp_path / "journal.sqlite3")[dropped_rel][:2] == ("stored", None)
