"""After the send, the import asks the PACS what it holds: real Orthanc (QIDO-RS, C-FIND) and DCMTK storescp.

Orthanc 1.10 answers C-STORE with status 0x0000 for an instance its Lua ``ReceivedInstanceFilter`` discards
(returns ``false``): the confirmation alone would record it as stored. The STOW-RS side of the same loss is in
``test_stow_refusals.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
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
from tests.peers.orthanc import OrthancPeer, running_orthanc

#: Real peers: Orthanc (C-STORE, C-FIND, STOW-RS, QIDO-RS) and DCMTK storescp.
pytestmark = pytest.mark.interop


def _import(tmp_path: Path, medium: Path, target: Target, *, verify: bool = True) -> ImportResult:
    request = import_request(tmp_path, medium, target, verify=verify)
    return import_medium(request, audit=FileSink(tmp_path / "audit.log"))


@pytest.fixture
def dropping(tmp_path: Path) -> Iterator[tuple[OrthancPeer, Path, str]]:
    """An Orthanc whose Lua filter discards one instance of a 3-instance medium: (peer, medium, its path)."""
    medium = tmp_path / "medium"
    paths = foreign_study(medium / "DICOM", 3, patient_id="EXT-SILENT")
    dropped = str(dcmread(paths[1], stop_before_pixels=True).SOPInstanceUID)
    lua = tmp_path / "drop.lua"
    lua.write_text(
        "function ReceivedInstanceFilter(dicom, origin, info)\n"
        f'  if dicom.SOPInstanceUID == "{dropped}" then return false end\n'
        "  return true\n"
        "end\n",
        encoding="utf-8",
    )
    config = orthanc_config() | {"LuaScripts": [str(lua)]}
    with running_orthanc(
        tmp_path / "pacs", aet=PACS_AET, extra_config=config, users={HTTP_USER: HTTP_PASSWORD}
    ) as peer:
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
    assert result.to_json()["notes"] == list(result.notes)
    assert result.verification is not None
    assert result.verification.studies_checked == 0
    assert result.verification.not_held == ()


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


@pytest.mark.parametrize("protocol", ["dimse", "stow"])
def test_one_query_per_study_for_the_uids_sent(tmp_path: Path, orthanc: OrthancPeer, protocol: str) -> None:
    medium = tmp_path / "medium"
    first = foreign_study(medium / "A", 4, patient_id="EXT-TWO")
    second = foreign_study(medium / "B", 3, patient_id="EXT-TWO")
    original_studies = {str(dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in first + second}
    target = dimse_target(orthanc) if protocol == "dimse" else stow_target(orthanc)
    counting: list[_Counting] = []

    def factory(target: Target, pairs: Sequence[tuple[str, str]]) -> Sender:
        real: Sender
        if isinstance(target, DimseTarget):
            real = DimseSender(target, calling_aet=OUR_AET, pairs=pairs)
        else:
            real = StowSender(target, username=HTTP_USER, password=HTTP_PASSWORD)
        counting.append(_Counting(real))
        return counting[-1]

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
    # A rerun sends nothing and so asks nothing: only instances confirmed in this run are verified.
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
            self._client.qido_url_prefix = "no-such-service"
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
