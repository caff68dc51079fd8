"""Imports into a real Orthanc over C-STORE and STOW-RS: encrypted, plain and polyglot media, reconciliation,
both UID policies, held studies, and what Orthanc stored (checked through its REST API)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dcmseal.audit import FileSink
from dcmseal.importer import State, Target, UidPolicy, load_reconciliation
from dcmseal.importer.pipeline import ImportRequest, ImportResult, import_medium
from dcmseal.scan import Verdict
from tests.importer.conftest import (
    FAST_RETRY,
    HTTP_PASSWORD,
    HTTP_USER,
    OUR_AET,
    PE_PREAMBLE,
    PEDICOM,
    PLAIN_PATIENTS,
    dimse_target,
    encrypted_medium,
    foreign_study,
    medium_instances,
    plain_mapping,
    plain_medium,
    polyglot_medium,
    sop_uids,
    stow_target,
    write_mapping,
)
from tests.jsondoc import member
from tests.part10.dicomfiles import PASSWORD
from tests.peers.orthanc import OrthancPeer

#: Words of the DOS stub every PE image carries (the PEDICOM payload has one).
DOS_STUB = b"This program cannot be run in DOS mode"

#: Real peers: Orthanc, DCMTK, dicom3tools.
pytestmark = pytest.mark.interop


def _run(
    tmp_path: Path,
    medium: Path,
    target: Target,
    *,
    mapping: Path | None = None,
    uids: UidPolicy = UidPolicy.KEEP,
    password: bool = False,
    journal: Path | None = None,
) -> ImportResult:
    request = ImportRequest(
        medium=medium,
        target=target,
        operator="import-tester",
        journal=journal or tmp_path / "journal.sqlite3",
        quarantine=tmp_path / "quarantine",
        passwords=(PASSWORD.encode(),) if password else (),
        reconciliation=load_reconciliation(mapping) if mapping is not None else None,
        uid_policy=uids,
        calling_aet=OUR_AET,
        username=HTTP_USER,
        http_password=HTTP_PASSWORD,
        retry=FAST_RETRY,
        keep_sent=tmp_path / "sent",
    )
    return import_medium(request, audit=FileSink(tmp_path / "audit.log"))


def _stored(peer: OrthancPeer) -> list[tuple[bytes, Dataset]]:
    """Every instance Orthanc holds: the file it serves (preamble included) and its data set."""
    found: list[tuple[bytes, Dataset]] = []
    for instance_id in peer.ids("/instances"):
        raw = peer.instance_file(instance_id)
        found.append((raw, dcmread(io.BytesIO(raw))))
    return found


def _patients(peer: OrthancPeer) -> dict[str, int]:
    """Orthanc's patients: Patient ID -> number of instances."""
    counts: dict[str, int] = {}
    for patient in peer.ids("/patients"):
        tags = peer.get_json(f"/patients/{patient}")
        instances = peer.get_json(f"/patients/{patient}/instances")
        assert isinstance(tags, dict)
        assert isinstance(instances, list)
        counts[str(tags["MainDicomTags"]["PatientID"])] = len(instances)
    return counts


def _assert_only_zero_preambles(stored: list[tuple[bytes, Dataset]]) -> None:
    for raw, ds in stored:
        assert raw[:128] == bytes(128), ds.SOPInstanceUID
        assert raw[128:132] == b"DICM"
        assert DOS_STUB not in raw


def _details(audit: str) -> str:
    """The ParticipantObjectDetail values (base64 in the A.5 schema) of an audit log, decoded."""
    return " ".join(
        base64.b64decode(v).decode(errors="replace") for v in re.findall(r'value="([A-Za-z0-9+/=]+)"', audit)
    )


def _states(result: ImportResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in result.files:
        counts[f.status.value] = counts.get(f.status.value, 0) + 1
    return counts


@pytest.mark.parametrize(("protocol", "uids"), [("dimse", UidPolicy.REGENERATE), ("stow", UidPolicy.KEEP)])
def test_an_encrypted_medium_lands_under_the_local_patient_with_its_original_values_kept(
    protocol: str, uids: UidPolicy, tmp_path: Path, orthanc: OrthancPeer
) -> None:
    sources = foreign_study(tmp_path / "src", 4, patient_id="EXT-7731")
    medium = encrypted_medium(tmp_path, sources)
    mapping = write_mapping(
        tmp_path / "map.csv",
        [
            {
                "foreign_patient_id": "EXT-7731",
                "patient_id": "LOC-0001",
                "patient_name": "Local^Patient",
                "birth_date": "19700101",
                "sex": "F",
            }
        ],
    )
    target = dimse_target(orthanc) if protocol == "dimse" else stow_target(orthanc)
    result = _run(tmp_path, medium, target, mapping=mapping, uids=uids, password=True)

    assert result.ok, result.to_json()
    assert _states(result)["stored"] == 4
    assert set(_states(result)) == {"stored", "skipped"}  # the DICOMDIR, README.TXT, the viewer page
    assert all(f.reason for f in result.files if f.status is State.SKIPPED)
    stored = _stored(orthanc)
    assert _patients(orthanc) == {"LOC-0001": 4}
    _assert_only_zero_preambles(stored)
    originals = sop_uids(sources)
    sent = {str(ds.SOPInstanceUID) for _raw, ds in stored}
    assert (sent == originals) is (uids is UidPolicy.KEEP)
    assert sent == {f.sent_sop_instance_uid for f in result.files if f.status is State.STORED}
    for _raw, ds in stored:
        assert (str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex) == ("Local^Patient", "19700101", "F")
        item = ds.OriginalAttributesSequence[0]
        assert item.ReasonForTheAttributeModification == "COERCE"
        assert item.ModifyingSystem == OUR_AET
        old = item.ModifiedAttributesSequence[0]
        assert (old.PatientID, str(old.PatientName)) == ("EXT-7731", "Synthetic^Tester")
        assert ("SOPInstanceUID" in old) is (uids is UidPolicy.REGENERATE)
        if uids is UidPolicy.REGENERATE:
            assert old.SOPInstanceUID in originals
            assert ds.SOPInstanceUID not in originals
        assert ds.OtherPatientIDsSequence[0].PatientID == "EXT-7731"
    audit = (tmp_path / "audit.log").read_text()
    assert "LOC-0001" in audit
    assert '<EventID csd-code="110107"' in audit
    # The offline viewer burn put on the medium is dcmseal's own bundle: a note, and no Security Alert.
    assert "medium.viewer" in {f.code for f in result.medium_findings}
    assert all(f.severity is Verdict.CLEAN for f in result.medium_findings)
    assert 'csd-code="110113"' not in audit


@pytest.mark.parametrize(("protocol", "uids"), [("stow", UidPolicy.REGENERATE), ("dimse", UidPolicy.KEEP)])
def test_a_plain_medium_is_reconciled_per_patient_and_accession(
    protocol: str, uids: UidPolicy, tmp_path: Path, orthanc: OrthancPeer, dcentvfy_bin: str
) -> None:
    medium = plain_medium(tmp_path / "plain")
    target = dimse_target(orthanc) if protocol == "dimse" else stow_target(orthanc)
    result = _run(tmp_path, medium, target, mapping=plain_mapping(tmp_path / "map.csv"), uids=uids)

    assert result.ok, [f.to_json() for f in result.files if f.status is not State.STORED]
    assert _states(result) == {"stored": 31, "skipped": 1}
    assert _patients(orthanc) == {"LOC-A1": 7, "LOC-B2": 24}
    stored = _stored(orthanc)
    _assert_only_zero_preambles(stored)  # 10 of these files carry a stray preamble byte on the medium
    originals = {
        str(getattr(ds, kw))
        for ds in (dcmread(p, stop_before_pixels=True) for p in medium_instances(medium))
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    }
    accessions = {}
    for _raw, ds in stored:
        old = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence[0]
        local_id, name, birth, sex = PLAIN_PATIENTS[str(old.PatientID)]
        assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex) == (
            local_id,
            name,
            birth,
            sex,
        )
        accessions[(str(old.PatientID), str(old.get("AccessionNumber", ds.AccessionNumber)))] = (
            ds.AccessionNumber
        )
        if uids is UidPolicy.REGENERATE:
            # No UI value anywhere (sequences included) still names a study, series or instance of the medium.
            assert not originals.intersection(
                str(e.value) for e in ds.iterall() if e.VR == "UI" and e.VM == 1 and _outside_oas(ds, e)
            )
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert accessions == {
        ("77654033", "2"): "ACC-A-2",
        ("98890234", "2"): "ACC-B-2",
        ("98890234", "428"): "ACC-B-428",
        ("98890234", "134"): "134",  # not in the map: left as it was
    }
    # dicom3tools' cross-file check on exactly what was sent: one identity per patient and study.
    from tests.peers.tools import run_tool

    checked = run_tool([dcentvfy_bin, *map(str, sorted((tmp_path / "sent").iterdir()))])
    report = (checked.stdout + checked.stderr).decode(errors="replace")
    assert len(list((tmp_path / "sent").iterdir())) == 31
    assert checked.returncode == 0, report
    assert "Error" not in report, report


def _outside_oas(ds: Dataset, element: object) -> bool:
    """True unless ``element`` is one of the original values kept in the Original Attributes Sequence."""
    kept = {id(e) for item in ds.get("OriginalAttributesSequence", []) for e in item.iterall()}
    return id(element) not in kept


def test_a_rerun_sends_nothing_twice_and_reuses_the_regenerated_uids(
    tmp_path: Path, orthanc: OrthancPeer
) -> None:
    medium = plain_medium(tmp_path / "plain")
    mapping = plain_mapping(tmp_path / "map.csv")
    first = _run(tmp_path, medium, stow_target(orthanc), mapping=mapping, uids=UidPolicy.REGENERATE)
    before = {str(ds.SOPInstanceUID) for _raw, ds in _stored(orthanc)}
    second = _run(tmp_path, medium, stow_target(orthanc), mapping=mapping, uids=UidPolicy.REGENERATE)
    assert second.run == 2
    assert all(f.earlier_run for f in second.files if f.status is State.STORED)
    assert member(second.to_json(), "summary", "sent_now") == 0
    assert {str(ds.SOPInstanceUID) for _raw, ds in _stored(orthanc)} == before
    assert {f.sent_sop_instance_uid for f in second.files} == {f.sent_sop_instance_uid for f in first.files}


@pytest.mark.parametrize("protocol", ["stow", "dimse"])
def test_a_polyglot_medium_reaches_the_pacs_only_sanitized(
    protocol: str, tmp_path: Path, orthanc: OrthancPeer
) -> None:
    """STOW-RS is the dangerous path: Orthanc keeps whatever preamble it is given (peers.md §3.3)."""
    medium = polyglot_medium(tmp_path / "poly")
    target = dimse_target(orthanc) if protocol == "dimse" else stow_target(orthanc)
    result = _run(tmp_path, medium, target)

    by_path = {f.path: f for f in result.files}
    assert by_path["DICOM/I0000"].verdict == "malicious"
    assert "preamble.pe" in by_path["DICOM/I0000"].findings
    assert by_path["DICOM/I0000"].status is State.STORED
    assert by_path["DICOM/I0000"].changes
    assert by_path["AUTORUN.INF"].status is State.SKIPPED
    assert by_path["VIEWER.EXE"].status is State.SKIPPED
    assert {"medium.autorun", "medium.executable"} <= {f.code for f in result.medium_findings}
    expected = 3
    if PEDICOM.is_file():
        pedicom = by_path["DICOM/PEDICOM"]
        assert pedicom.verdict == "malicious"
        # Sanitized (payload element removed) or, if that were refused, quarantined: never sent as it was.
        assert pedicom.status in (State.STORED, State.QUARANTINED)
        expected += pedicom.status is State.STORED
    report = by_path["DICOM/REPORT"]
    assert report.status is State.QUARANTINED
    assert "pdf.javascript" in report.findings
    sha = hashlib.sha256((medium / "DICOM" / "REPORT").read_bytes()).hexdigest()
    kept = tmp_path / "quarantine" / f"{sha}.bin"
    assert kept.read_bytes() == (medium / "DICOM" / "REPORT").read_bytes()  # the untouched bytes
    assert (kept.stat().st_mode & 0o111) == 0
    assert json.loads((tmp_path / "quarantine" / f"{sha}.json").read_text())["sha256"] == sha
    stored = _stored(orthanc)
    assert len(stored) == expected
    _assert_only_zero_preambles(stored)
    assert not any(b"/JavaScript" in raw for raw, _ds in stored)
    audit = (tmp_path / "audit.log").read_text()
    assert "quarantined on import" in audit or "quarantined on import" in _details(audit)
    assert 'csd-code="110113"' in audit  # a Security Alert (DCM 110113) ...
    assert "medium.autorun" in _details(audit)  # ... for active content beside the File-set


def test_a_study_of_an_unmapped_patient_is_held_not_guessed(tmp_path: Path, orthanc: OrthancPeer) -> None:
    medium = plain_medium(tmp_path / "plain")
    mapping = write_mapping(
        tmp_path / "map.csv",
        [{"foreign_patient_id": "77654033", "patient_id": "LOC-A1", "patient_name": "Local^Alpha"}],
    )
    result = _run(tmp_path, medium, dimse_target(orthanc), mapping=mapping)
    assert not result.ok
    assert result.held == 24
    held = [f for f in result.files if f.status is State.FAILED]
    assert {f.reason for f in held} == {f"held: no reconciliation for patient '98890234' in {mapping}"}
    assert _patients(orthanc) == {"LOC-A1": 7}
    # The person writes the mapping; the rerun sends the held studies, and only them.
    plain_mapping(mapping)
    again = _run(tmp_path, medium, dimse_target(orthanc), mapping=mapping)
    assert again.ok
    assert member(again.to_json(), "summary", "sent_now") == 24
    assert _patients(orthanc) == {"LOC-A1": 7, "LOC-B2": 24}


def test_the_result_json_accounts_for_every_file_of_the_medium(tmp_path: Path, orthanc: OrthancPeer) -> None:
    medium = polyglot_medium(tmp_path / "poly")
    result = _run(tmp_path, medium, stow_target(orthanc))
    document = json.loads(json.dumps(result.to_json()))
    on_medium = sorted(p.relative_to(medium).as_posix() for p in medium.rglob("*") if p.is_file())
    assert sorted(f["path"] for f in document["files"]) == on_medium
    assert document["schema"] == "dcmseal.import/1"


@pytest.mark.parametrize("protocol", ["stow", "dimse"])
def test_resending_what_the_pacs_holds_is_confirmed_and_stores_nothing_twice(
    protocol: str, tmp_path: Path, orthanc: OrthancPeer
) -> None:
    """What a rerun does with a row killed between the send and the commit: the same bytes and UIDs again."""
    medium = tmp_path / "m"
    originals = sop_uids(foreign_study(medium, 5))
    target = dimse_target(orthanc) if protocol == "dimse" else stow_target(orthanc)
    assert _run(tmp_path, medium, target).ok
    again = _run(tmp_path, medium, target, journal=tmp_path / "another-journal.sqlite3")
    assert again.ok, [f.reason for f in again.files]
    assert member(again.to_json(), "summary", "sent_now") == 5
    assert len(orthanc.ids("/instances")) == 5
    assert orthanc.sop_instance_uids() == originals


def test_a_wrong_password_stops_before_anything_is_sent(tmp_path: Path, orthanc: OrthancPeer) -> None:
    from dcmseal.errors import DecryptionError

    medium = encrypted_medium(tmp_path, foreign_study(tmp_path / "src", 2))
    request = ImportRequest(
        medium=medium,
        target=dimse_target(orthanc),
        operator="import-tester",
        journal=tmp_path / "journal.sqlite3",
        quarantine=tmp_path / "quarantine",
        passwords=(b"Quartz-meadow-Falcon-ribbon-tundra",),
        calling_aet=OUR_AET,
    )
    with pytest.raises(DecryptionError):
        import_medium(request, audit=FileSink(tmp_path / "audit.log"))
    assert orthanc.get_json("/instances") == []


def test_logs_name_files_and_uids_never_patients(
    tmp_path: Path, orthanc: OrthancPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dcmseal")
    medium = plain_medium(tmp_path / "plain")
    (medium / "77654033" / "CT2" / "17106").write_bytes(
        PE_PREAMBLE + (medium / "77654033" / "CT2" / "17106").read_bytes()[128:]
    )
    result = _run(tmp_path, medium, stow_target(orthanc), mapping=plain_mapping(tmp_path / "map.csv"))
    assert result.ok
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("dcmseal"))
    assert "77654033/CT2/17106" in ours  # the log does speak (the sanitized file is named) ...
    for identifier in ("77654033", "98890234", "LOC-A1", "Local^Alpha", "19600101"):
        assert identifier not in ours.replace("77654033/", "")  # ... but of files, never of patients
