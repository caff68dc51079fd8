"""Import reconciliation from a Modality Worklist (IHE RAD Import Reconciliation Workflow), against DCMTK wlmscpfs.

The worklist is DCMTK's ``wlmscpfs`` on a loopback port, serving entries these tests write with ``dump2dcm``; the
PACS is the session's Orthanc. Matching rules and name folding are tested without a network first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dcmseal.audit import AuditEvent
from dcmseal.audit.codes import AuditEventKind, ParticipantObjectRole
from dcmseal.errors import ExitCode, UsageError
from dcmseal.importer import worklist as worklist_module
from dcmseal.importer.pipeline import import_medium
from dcmseal.importer.reconcile import StudyDecision, StudyHeld, reconcile_studies
from dcmseal.importer.send import DimseTarget, RetryPolicy
from dcmseal.importer.worklist import (
    ForeignStudy,
    Held,
    Matched,
    MatchKey,
    WorklistEntry,
    WorklistService,
    WorklistUnavailableError,
    find_local_orders,
    match_entries,
    normalise_date,
    normalise_name,
    parse_match_rules,
    parse_worklist,
)
from tests.cli.runner import DCMSEAL, clean_environment, run_on_terminal
from tests.importer.conftest import (
    FAST_RETRY,
    HTTP_PASSWORD,
    OUR_AET,
    _wait_port,
    dimse_target,
    import_request,
)
from tests.media.conftest import write_instance
from tests.peers.orthanc import OrthancPeer, free_port
from tests.peers.tools import require_tool

WL_AET = "WORKLIST"

#: The hospital's worklist: two orders of two different patients, and two patients who share name and birth date.
ENTRIES: list[dict[str, str]] = [
    {
        "PatientName": "MÜLLER^Hans",
        "PatientID": "LOC-100",
        "IssuerOfPatientID": "HOSP",
        "PatientBirthDate": "19700101",
        "PatientSex": "M",
        "AccessionNumber": "ACC-100",
        "RequestedProcedureID": "RP-100",
        "RequestedProcedureDescription": "Import of outside CT",
        "ScheduledProcedureStepID": "SPS-100",
        "ScheduledStationAETitle": "IMPORT",
        "Modality": "OT",
        "ScheduledProcedureStepStartDate": "20261206",
    },
    {
        "PatientName": "Dupont^Marie",
        "PatientID": "LOC-200",
        "IssuerOfPatientID": "HOSP",
        "PatientBirthDate": "19850512",
        "PatientSex": "F",
        "AccessionNumber": "ACC-200",
        "RequestedProcedureID": "RP-200",
        "ScheduledProcedureStepID": "SPS-200",
        "ScheduledStationAETitle": "IMPORT",
        "Modality": "OT",
        "ScheduledProcedureStepStartDate": "20261207",
    },
    {
        "PatientName": "Smith^John",
        "PatientID": "LOC-301",
        "PatientBirthDate": "19600303",
        "PatientSex": "M",
        "AccessionNumber": "ACC-301",
        "RequestedProcedureID": "RP-301",
        "ScheduledProcedureStepID": "SPS-301",
        "ScheduledStationAETitle": "IMPORT",
        "Modality": "OT",
        "ScheduledProcedureStepStartDate": "20261206",
    },
    {
        "PatientName": "SMITH^JOHN^Q",
        "PatientID": "LOC-302",
        "PatientBirthDate": "19600303",
        "PatientSex": "M",
        "AccessionNumber": "ACC-302",
        "RequestedProcedureID": "RP-302",
        "ScheduledProcedureStepID": "SPS-302",
        "ScheduledStationAETitle": "CT01",
        "Modality": "CT",
        "ScheduledProcedureStepStartDate": "20261206",
    },
]

_TOP = (
    ("0008,0005", "CS", "SpecificCharacterSet"),
    ("0008,0050", "SH", "AccessionNumber"),
    ("0010,0010", "PN", "PatientName"),
    ("0010,0020", "LO", "PatientID"),
    ("0010,0021", "LO", "IssuerOfPatientID"),
    ("0010,0030", "DA", "PatientBirthDate"),
    ("0010,0040", "CS", "PatientSex"),
    ("0020,000d", "UI", "StudyInstanceUID"),
    ("0032,1060", "LO", "RequestedProcedureDescription"),
)
_STEP = (
    ("0008,0060", "CS", "Modality"),
    ("0040,0001", "AE", "ScheduledStationAETitle"),
    ("0040,0002", "DA", "ScheduledProcedureStepStartDate"),
    ("0040,0003", "TM", "ScheduledProcedureStepStartTime"),
    ("0040,0007", "LO", "ScheduledProcedureStepDescription"),
    ("0040,0009", "SH", "ScheduledProcedureStepID"),
)


def write_worklist(directory: Path, entries: list[dict[str, str]]) -> None:
    """One ``.wl`` file per entry (DCMTK ``dump2dcm``), in ``directory`` with the lock file wlmscpfs wants."""
    dump2dcm = require_tool("dump2dcm", "dcmtk")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "lockfile").touch()
    for number, entry in enumerate(entries):
        values = {"SpecificCharacterSet": "ISO_IR 192", "StudyInstanceUID": generate_uid(), **entry}
        # wlmscpfs ignores an entry without these (its "incomplete" check), as strict worklists do.
        values.setdefault("ScheduledProcedureStepStartTime", "0900")
        values.setdefault("ScheduledProcedureStepDescription", "Import of outside images")
        values.setdefault("RequestedProcedureDescription", "Import")
        lines = [f"({tag}) {vr} [{values[kw]}]" for tag, vr, kw in _TOP if values.get(kw)]
        lines += ["(0040,0100) SQ", "(fffe,e000) -"]
        lines += [f"({tag}) {vr} [{values[kw]}]" for tag, vr, kw in _STEP if values.get(kw)]
        lines += ["(fffe,e00d) -", "(fffe,e0dd) -"]
        if values.get("RequestedProcedureID"):
            lines.append(f"(0040,1001) SH [{values['RequestedProcedureID']}]")
        dump = directory / f"entry{number}.dump"
        dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
        subprocess.run([dump2dcm, "-q", str(dump), str(directory / f"entry{number}.wl")], check=True)
        dump.unlink()


@dataclass(frozen=True)
class WorklistScp:
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"dicom://{WL_AET}@127.0.0.1:{self.port}"

    def service(self, retry: RetryPolicy = FAST_RETRY) -> WorklistService:
        return WorklistService(
            target=DimseTarget(called_aet=WL_AET, host="127.0.0.1", port=self.port),
            calling_aet=OUR_AET,
            timeout_s=5.0,
            retry=retry,
        )


@contextlib.contextmanager
def running_worklist(root: Path, entries: list[dict[str, str]]) -> Iterator[WorklistScp]:
    """DCMTK ``wlmscpfs`` serving ``entries`` on a free loopback port; stopped by its PID after."""
    binary = require_tool("wlmscpfs", "dcmtk")
    write_worklist(root / WL_AET, entries)
    for _attempt in range(3):
        port = free_port()
        with open(root / "wlmscpfs.log", "wb") as log:
            process = subprocess.Popen(
                [binary, "--data-files-path", str(root), str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                if _wait_port(port, process):
                    yield WorklistScp(port=port, pid=process.pid)
                    return
            finally:
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGTERM)
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.kill(process.pid, signal.SIGKILL)
                        process.wait(timeout=10)
    pytest.fail("wlmscpfs did not start: " + (root / "wlmscpfs.log").read_text(errors="replace"))


@pytest.fixture(scope="module")
def worklist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorklistScp]:
    with running_worklist(tmp_path_factory.mktemp("worklist"), ENTRIES) as scp:
        yield scp


def _study(**values: str) -> ForeignStudy:
    values.setdefault("study_instance_uid", generate_uid())
    return ForeignStudy(**values)


# --- rules and folding, no network -----------------------------------------------------------------------------


def test_match_rules_parse_required_and_optional_keys() -> None:
    rules = parse_match_rules("name, birth,sex?")
    assert rules.required == {MatchKey.NAME, MatchKey.BIRTH_DATE}
    assert rules.optional == {MatchKey.SEX}
    assert str(rules) == "name,birth,sex?"
    for bad, words in (
        ("name,colour", "unknown key 'colour'"),
        ("name,name", "named twice"),
        ("sex?", "required"),
    ):
        with pytest.raises(UsageError, match=words):
            parse_match_rules(bad)
    with pytest.raises(UsageError, match="--scheduled"):
        parse_match_rules("name", scheduled_dates="last week")


def test_names_fold_case_accents_and_components() -> None:
    assert normalise_name("MÜLLER^Hans Peter^^Dr") == ("muller", "hans")
    assert normalise_name("Muller^HANS") == ("muller", "hans")
    assert normalise_name("Hans Müller") == ("muller", "hans")  # written without component separators
    assert normalise_name("Yamada^Tarou=山田^太郎") == ("yamada", "tarou")  # the alphabetic group only
    assert normalise_name("O'Brien-Smith^Seán") == ("o brien smith", "sean")


def test_dates_of_old_media_are_read() -> None:
    assert normalise_date("1970.01.01") == "19700101"
    assert normalise_date("1970-01-01") == "19700101"
    assert normalise_date("19700101") == "19700101"
    assert normalise_date("") == normalise_date("unknown") == ""


def test_an_optional_key_counts_only_when_both_sides_have_it() -> None:
    entry = WorklistEntry(
        patient_id="L1",
        issuer=None,
        patient_name="Doe^Jane",
        birth_date="19900101",
        sex="F",
        accession="A1",
        requested_procedure_id="RP1",
    )
    rules = parse_match_rules("name,birth,sex?")
    assert match_entries(_study(patient_name="DOE^JANE", birth_date="19900101"), [entry], rules) == [entry]
    assert (
        match_entries(_study(patient_name="DOE^JANE", birth_date="19900101", sex="M"), [entry], rules) == []
    )
    assert match_entries(_study(patient_name="Doe^Janet", birth_date="19900101"), [entry], rules) == []
    assert match_entries(_study(patient_name="Doe^Jane", birth_date="19900102"), [entry], rules) == []


# --- against wlmscpfs ------------------------------------------------------------------------------------------

pytestmark = pytest.mark.interop


def test_a_unique_match_with_other_case_and_no_accents(worklist: WorklistScp) -> None:
    study = _study(patient_id="EXT-9", patient_name="Muller^HANS", birth_date="1970-01-01", sex="M")
    answer = find_local_orders(worklist.service(), [study], parse_match_rules())[study.study_instance_uid]
    assert isinstance(answer, Matched), answer
    entry = answer.entry
    assert (entry.patient_id, entry.patient_name, entry.birth_date, entry.sex) == (
        "LOC-100",
        "MÜLLER^Hans",  # decoded right although wlmscpfs sends no Specific Character Set
        "19700101",
        "M",
    )
    assert (entry.accession, entry.requested_procedure_id, entry.scheduled_step_id) == (
        "ACC-100",
        "RP-100",
        "SPS-100",
    )
    assert entry.issuer == "HOSP"


def test_no_match_and_two_candidates_are_held(worklist: WorklistScp) -> None:
    nobody = _study(patient_name="Nobody^Here", birth_date="19700101")
    twins = _study(patient_name="smith^john", birth_date="19600303", sex="M")
    answers = find_local_orders(worklist.service(), [nobody, twins], parse_match_rules())
    held = answers[nobody.study_instance_uid]
    assert isinstance(held, Held)
    assert "no worklist entry matches" in held.reason
    assert held.candidates == ()
    two = answers[twins.study_instance_uid]
    assert isinstance(two, Held)
    assert "2 worklist entries match (patients)" in two.reason
    assert {c.patient_id for c in two.candidates} == {"LOC-301", "LOC-302"}


def test_the_slice_asked_narrows_the_candidates(worklist: WorklistScp) -> None:
    twins = _study(patient_name="Smith^John", birth_date="19600303")
    rules = parse_match_rules(station_aet="IMPORT", modality="OT", scheduled_dates="20261201-20261210")
    answer = find_local_orders(worklist.service(), [twins], rules)[twins.study_instance_uid]
    assert isinstance(answer, Matched)
    assert answer.entry.patient_id == "LOC-301"


def test_a_missing_birth_date_is_held_without_a_query(
    worklist: WorklistScp, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[object] = []
    original = worklist_module._Association.find

    def counted(self: worklist_module._Association, identifier: Dataset) -> list[Dataset]:
        asked.append(identifier)
        return original(self, identifier)

    monkeypatch.setattr(worklist_module._Association, "find", counted)
    study = _study(patient_name="Dupont^Marie", sex="F")
    answer = find_local_orders(worklist.service(), [study], parse_match_rules())[study.study_instance_uid]
    assert isinstance(answer, Held)
    assert "no Patient's Birth Date on the medium" in answer.reason
    assert asked == []
    # Without birth in the rules, name and sex find her.
    answer = find_local_orders(worklist.service(), [study], parse_match_rules("name,sex"))[
        study.study_instance_uid
    ]
    assert isinstance(answer, Matched)
    assert answer.entry.patient_id == "LOC-200"
    assert len(asked) == 1


def test_one_association_and_one_query_per_study(
    worklist: WorklistScp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pynetdicom import AE

    associations: list[object] = []
    queries: list[object] = []
    real_associate, real_find = AE.associate, worklist_module._Association.find

    def associate(self: AE, *args: Any, **kwargs: Any) -> Any:
        associations.append(args)
        return real_associate(self, *args, **kwargs)

    def find(self: worklist_module._Association, identifier: Dataset) -> list[Dataset]:
        queries.append(identifier)
        return real_find(self, identifier)

    monkeypatch.setattr(AE, "associate", associate)
    monkeypatch.setattr(worklist_module._Association, "find", find)
    uid = generate_uid()
    instances = [  # three instances of one study and one of another: two queries
        _study(study_instance_uid=uid, patient_name="Muller^Hans", birth_date="19700101") for _ in range(3)
    ]
    instances.append(_study(patient_name="Dupont^Marie", birth_date="19850512"))
    answers = find_local_orders(worklist.service(), instances, parse_match_rules())
    assert len(answers) == 2
    assert len(queries) == 2
    assert len(associations) == 1


def test_a_worklist_that_is_down_fails_after_the_retries(tmp_path: Path) -> None:
    service = WorklistService(
        target=DimseTarget(called_aet=WL_AET, host="127.0.0.1", port=free_port()),
        timeout_s=1.0,
        retry=RetryPolicy(attempts=2, initial_delay_s=0.01, max_total_s=1.0),
    )
    slept: list[float] = []
    with pytest.raises(WorklistUnavailableError, match="cannot connect") as caught:
        find_local_orders(
            service,
            [_study(patient_name="A^B", birth_date="19700101")],
            parse_match_rules(),
            sleep=slept.append,
        )
    assert caught.value.exit_code is ExitCode.PEER
    assert len(slept) == 1  # two attempts, one pause between them


def test_the_map_first_then_the_worklist(worklist: WorklistScp, tmp_path: Path) -> None:
    from dcmseal.importer import load_reconciliation
    from tests.importer.conftest import write_mapping

    mapping = load_reconciliation(
        write_mapping(
            tmp_path / "m.csv",
            [{"foreign_patient_id": "EXT-1", "patient_id": "MAP-1", "patient_name": "Mapped^One"}],
        )
    )
    mapped = _study(patient_id="EXT-1", patient_name="Muller^Hans", birth_date="19700101")
    asked = _study(patient_id="EXT-2", patient_name="Muller^Hans", birth_date="19700101")
    decided = reconcile_studies(
        [mapped, asked], mapping=mapping, worklist=worklist.service(), rules=parse_match_rules()
    )
    first, second = decided[mapped.study_instance_uid], decided[asked.study_instance_uid]
    assert isinstance(first, StudyDecision)
    assert first.patient.patient_id == "MAP-1"
    assert first.source == "m.csv line 2"
    assert isinstance(second, StudyDecision)
    assert second.patient.patient_id == "LOC-100"
    assert second.request_attributes == {
        "AccessionNumber": "ACC-100",
        "RequestedProcedureID": "RP-100",
        "RequestedProcedureDescription": "Import of outside CT",
        "ScheduledProcedureStepID": "SPS-100",
        "ScheduledProcedureStepDescription": "Import of outside images",
    }


def test_the_worklist_url_is_checked() -> None:
    with pytest.raises(UsageError, match="over DIMSE"):
        parse_worklist("http://ris.example/worklist")
    service, rules = parse_worklist("dicom://RIS@127.0.0.1:11112", scheduled="today", modality="OT")
    assert service.target.port == 11112
    assert rules.scheduled_dates is not None
    assert len(rules.scheduled_dates) == 8


# --- the import into Orthanc -----------------------------------------------------------------------------------


def foreign_medium(root: Path, patients: list[dict[str, str]], per_study: int = 2) -> dict[str, list[Path]]:
    """A plain medium with one study of ``per_study`` instances per foreign patient (keys of the data set)."""
    made: dict[str, list[Path]] = {}
    for number, patient in enumerate(patients):
        study, series = generate_uid(), generate_uid()
        paths = []
        for n in range(per_study):
            path = write_instance(
                root / f"PAT{number}" / f"IM{n:04d}",
                study_uid=study,
                series_uid=series,
                number=n + 1,
                patient_id=patient["PatientID"],
            )
            ds = dcmread(path)
            ds.SpecificCharacterSet = "ISO_IR 100"
            for keyword, value in patient.items():
                setattr(ds, keyword, value)
            ds.InstitutionName = "Elsewhere General"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        made[patient["PatientID"]] = paths
    return made


class _Recording:
    """An audit sink that keeps the events."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)


def _stored(orthanc: OrthancPeer) -> list[Dataset]:
    from io import BytesIO

    return [dcmread(BytesIO(orthanc.instance_file(i))) for i in orthanc.ids("/instances")]


def test_an_import_coerces_from_the_worklist_and_holds_what_it_cannot_decide(
    tmp_path: Path, worklist: WorklistScp, orthanc: OrthancPeer
) -> None:
    medium = tmp_path / "medium"
    foreign_medium(
        medium,
        [
            {
                "PatientID": "EXT-77",
                "PatientName": "Müller^Hans",
                "PatientBirthDate": "19700101",
                "PatientSex": "M",
                "AccessionNumber": "FOREIGN-1",
            },
            {
                "PatientID": "EXT-88",
                "PatientName": "Smith^John",
                "PatientBirthDate": "19600303",
                "PatientSex": "M",
            },
        ],
    )
    request = import_request(tmp_path, medium, dimse_target(orthanc))
    from dataclasses import replace

    request = replace(request, worklist=worklist.service(), match_rules=parse_match_rules())
    sink = _Recording()
    result = import_medium(request, audit=sink)

    by_outcome = {r.foreign.patient_id: r for r in result.reconciliation}
    assert not by_outcome["EXT-77"].held
    assert by_outcome["EXT-88"].held
    held = by_outcome["EXT-88"].decision
    assert isinstance(held, StudyHeld)
    assert {c.patient_id for c in held.candidates} == {"LOC-301", "LOC-302"}
    assert result.held == 2
    assert not result.ok
    stored = _stored(orthanc)
    assert len(stored) == 2  # the held study's two instances were not sent
    for ds in stored:
        assert ds.PatientID == "LOC-100"
        assert str(ds.PatientName) == "MÜLLER^Hans"
        assert ds.SpecificCharacterSet == "ISO_IR 192"  # the local name needs it
        assert (ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber, ds.IssuerOfPatientID) == (
            "19700101",
            "M",
            "ACC-100",
            "HOSP",
        )
        request_item = ds.RequestAttributesSequence[0]
        assert (request_item.RequestedProcedureID, request_item.ScheduledProcedureStepID) == (
            "RP-100",
            "SPS-100",
        )
        assert [(i.PatientID, i.TypeOfPatientID) for i in ds.OtherPatientIDsSequence] == [("EXT-77", "TEXT")]
        old = ds.OriginalAttributesSequence[0]
        kept = old.ModifiedAttributesSequence[0]
        assert (kept.PatientID, str(kept.PatientName), kept.AccessionNumber) == (
            "EXT-77",
            "Müller^Hans",
            "FOREIGN-1",
        )
        assert kept.SpecificCharacterSet == "ISO_IR 100"
        assert old.ReasonForTheAttributeModification == "COERCE"
        assert old.SourceOfPreviousValues == "Elsewhere General"
    imports = [e for e in sink.events if e.kind is AuditEventKind.IMPORT]
    assert len(imports) == 1
    patients = {
        o.object_id
        for o in imports[0].participant_objects
        if o.type_code_role is ParticipantObjectRole.PATIENT
    }
    assert {"LOC-100", "EXT-77"} <= patients


# --- the command line --------------------------------------------------------------------------------------------


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = clean_environment(home, XDG_DATA_HOME=str(home / "data"))
    return subprocess.run(
        [str(DCMSEAL), *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_reconcile_shows_the_plan_and_sends_nothing(tmp_path: Path, worklist: WorklistScp) -> None:
    import json

    medium = tmp_path / "medium"
    foreign_medium(
        medium,
        [
            {
                "PatientID": "EXT-1",
                "PatientName": "DUPONT^MARIE",
                "PatientBirthDate": "19850512",
                "PatientSex": "",
            },
            {
                "PatientID": "EXT-2",
                "PatientName": "Smith^John",
                "PatientBirthDate": "19600303",
                "PatientSex": "M",
            },
        ],
    )
    journal = tmp_path / "journal.sqlite3"
    run = _run(
        ["reconcile", str(medium), "--worklist", worklist.url, "--journal", str(journal), "--json"], tmp_path
    )
    assert run.returncode == 1, run.stderr
    document = json.loads(run.stdout)
    assert document["schema"] == "dcmseal.reconcile/1"
    assert document["summary"] == {"studies": 2, "coerced": 1, "held": 1}
    studies = {s["foreign"]["patient_id"]: s for s in document["studies"]}
    assert studies["EXT-1"]["local"]["patient_id"] == "LOC-200"
    assert studies["EXT-1"]["instances"] == 2
    assert {c["patient_id"] for c in studies["EXT-2"]["candidates"]} == {"LOC-301", "LOC-302"}
    human = _run(["reconcile", str(medium), "--worklist", worklist.url, "--journal", str(journal)], tmp_path)
    assert "-> Dupont^Marie (LOC-200), accession ACC-200" in human.stdout
    assert "candidate 1:" in human.stdout
    assert "nothing was sent" in human.stderr


def test_a_worklist_that_is_down_fails_the_import_before_anything_is_sent(
    tmp_path: Path, orthanc: OrthancPeer
) -> None:
    medium = tmp_path / "medium"
    foreign_medium(medium, [{"PatientID": "EXT-1", "PatientName": "A^B", "PatientBirthDate": "19700101"}])
    run = _run(
        [
            "import",
            str(medium),
            "--to",
            f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}",
            "--aet",
            OUR_AET,
            "--worklist",
            f"dicom://{WL_AET}@127.0.0.1:{free_port()}",
            "--worklist-timeout",
            "1",
            "--journal",
            str(tmp_path / "j.sqlite3"),
            "--quarantine",
            str(tmp_path / "q"),
        ],
        tmp_path,
    )
    assert run.returncode == ExitCode.PEER, run.stderr
    assert "worklist dicom://WORKLIST@127.0.0.1" in run.stderr
    assert "Traceback" not in run.stderr
    assert orthanc.ids("/instances") == []


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal")
def test_an_interactive_choice_is_kept_and_the_import_uses_it(
    tmp_path: Path, worklist: WorklistScp, orthanc: OrthancPeer
) -> None:
    medium = tmp_path / "medium"
    foreign_medium(
        medium,
        [
            {
                "PatientID": "EXT-2",
                "PatientName": "Smith^John",
                "PatientBirthDate": "19600303",
                "PatientSex": "M",
            }
        ],
    )
    journal = tmp_path / "journal.sqlite3"
    args = ["reconcile", str(medium), "--worklist", worklist.url, "--journal", str(journal), "--interactive"]

    def choose_the_second(screen: str) -> str | None:
        if "leave the study held" not in screen:
            return None
        return "2" if "candidate 2: Smith^John (LOC-301)" in screen or "candidate 2:" in screen else None

    code, screen = run_on_terminal(args, tmp_path, choose_the_second)
    assert code == 0, screen
    chosen = "LOC-302" if "candidate 2: SMITH^JOHN^Q (LOC-302)" in screen else "LOC-301"
    assert f"({chosen})" in screen.split("choose 1-2")[-1]
    # A rerun does not ask again: the choice is in the journal.
    again = _run(
        ["reconcile", str(medium), "--worklist", worklist.url, "--journal", str(journal), "--json"], tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert '"source": "chosen by ' in again.stdout
    # And the import sends the study as that patient.
    run = _run(
        [
            "import",
            str(medium),
            "--to",
            f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}",
            "--aet",
            OUR_AET,
            "--worklist",
            worklist.url,
            "--journal",
            str(journal),
            "--quarantine",
            str(tmp_path / "q"),
        ],
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert {str(ds.PatientID) for ds in _stored(orthanc)} == {chosen}
    assert HTTP_PASSWORD not in run.stdout + run.stderr
