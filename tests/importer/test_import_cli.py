"""`dcmseal import`: exit codes, the one-line errors, JSON, credentials kept off argv, a second receiver."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from typer.testing import CliRunner

from tests.cli.conftest import Outcome
from tests.importer.conftest import (
    HTTP_PASSWORD,
    HTTP_USER,
    OUR_AET,
    StoreScp,
    foreign_study,
    plain_mapping,
    plain_medium,
    polyglot_medium,
    sop_uids,
    write_mapping,
)
from tests.peers.orthanc import OrthancPeer
from tests.peers.tools import run_tool

Invoke = Callable[..., Outcome]

#: Real peers: Orthanc, DCMTK, dicom3tools.
pytestmark = pytest.mark.interop


@pytest.fixture
def dcmseal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """``dcmseal(*args)`` in this process, with its own data and config folders and fast retries."""
    import logging

    for name in list(os.environ):
        if name.startswith("DCMSEAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("PACS_PASSWORD", HTTP_PASSWORD)
    logger = logging.getLogger("dcmseal")
    handlers, level = list(logger.handlers), logger.level

    def invoke(*args: str | Path) -> Outcome:
        from dcmseal.cli.main import app

        argv = [
            *map(str, args),
            "--journal",
            str(tmp_path / "journal.sqlite3"),
            "--quarantine",
            str(tmp_path / "q"),
        ]
        argv += ["--retries", "2", "--retry-delay", "0.1", "--retry-time", "3"]
        result = CliRunner().invoke(app, argv, catch_exceptions=False)
        return Outcome(result.exit_code, result.stdout, result.stderr)

    yield invoke
    logger.handlers = handlers
    logger.setLevel(level)


def _dimse(peer: OrthancPeer) -> str:
    return f"dicom://{peer.aet}@127.0.0.1:{peer.dicom_port}"


def test_stow_with_basic_auth_and_json(tmp_path: Path, orthanc: OrthancPeer, dcmseal: Invoke) -> None:
    medium = plain_medium(tmp_path / "plain")
    outcome = dcmseal(
        "import",
        medium,
        "--to",
        orthanc.dicomweb_url,
        "--user",
        HTTP_USER,
        "--user-password-env",
        "PACS_PASSWORD",
        "--reconcile",
        plain_mapping(tmp_path / "map.csv"),
        "--uids",
        "regenerate",
        "--json",
    )
    assert outcome.code == 0, outcome.stderr
    document = outcome.json()
    assert document["schema"] == "dcmseal.import/1"
    assert document["summary"]["stored"] == 31
    assert document["summary"]["failed"] == 0
    assert len(orthanc.ids("/instances")) == 31
    assert HTTP_PASSWORD not in outcome.everything


def test_the_human_summary_and_a_held_study_exit_1(
    tmp_path: Path, orthanc: OrthancPeer, dcmseal: Invoke
) -> None:
    medium = plain_medium(tmp_path / "plain")
    mapping = write_mapping(
        tmp_path / "map.csv",
        [{"foreign_patient_id": "98890234", "patient_id": "LOC-B2", "patient_name": "Local^Beta"}],
    )
    outcome = dcmseal("import", medium, "--to", _dimse(orthanc), "--aet", OUR_AET, "--reconcile", mapping)
    assert outcome.code == 1
    assert "held: no reconciliation for patient '77654033'" in outcome.stdout
    assert "24 stored (0 by an earlier run), 7 failed (7 held for reconciliation)" in outcome.stderr_flat
    assert "verified with C-FIND: 24 held, 0 not held (" in outcome.stderr_flat


def test_a_malformed_mapping_file_is_one_line_naming_file_and_line(tmp_path: Path, dcmseal: Invoke) -> None:
    mapping = tmp_path / "map.csv"
    mapping.write_text("foreign_patient_id,patient_id,patient_name,sex\nE1,L1,A^B,F\nE2,L2,C^D,female\n")
    outcome = dcmseal(
        "import", plain_medium(tmp_path / "plain"), "--to", "dicom://X@127.0.0.1:1", "--reconcile", mapping
    )
    assert outcome.code == 1
    assert outcome.stderr.strip() == f"error: {mapping}: line 3: sex 'female' must be M, F or O"


def test_a_calling_aet_the_pacs_does_not_know_is_a_clear_peer_failure(
    tmp_path: Path, orthanc: OrthancPeer, dcmseal: Invoke
) -> None:
    medium = tmp_path / "m"
    foreign_study(medium, 2)
    outcome = dcmseal("import", medium, "--to", _dimse(orthanc), "--aet", "STRANGER")
    assert outcome.code == 3
    assert (
        f"error: {_dimse(orthanc)}: the association ended without a C-STORE response" in outcome.stderr_flat
    )
    assert "calling AE title 'STRANGER'" in outcome.stderr_flat
    assert orthanc.get_json("/instances") == []


def test_a_wrong_http_password_is_a_clear_peer_failure(
    tmp_path: Path, orthanc: OrthancPeer, dcmseal: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACS_PASSWORD", "not-the-password")
    medium = tmp_path / "m"
    foreign_study(medium, 1)
    outcome = dcmseal(
        "import",
        medium,
        "--to",
        orthanc.dicomweb_url,
        "--user",
        HTTP_USER,
        "--user-password-env",
        "PACS_PASSWORD",
    )
    assert outcome.code == 3
    assert "HTTP 401: authentication refused" in outcome.stderr_flat
    assert "not-the-password" not in outcome.everything


def test_passwords_never_on_the_command_line(tmp_path: Path, dcmseal: Invoke) -> None:
    outcome = dcmseal("import", tmp_path, "--to", "https://user:secret@pacs.example/dicom-web")
    assert outcome.code == 2
    assert "no credentials in the URL" in outcome.stderr
    assert "secret" not in outcome.everything
    outcome = dcmseal("import", tmp_path, "--to", "dicom://A@h:1", "--password", "Kestrel-amber-Lantern")
    assert outcome.code == 2
    assert "visible to other users" in outcome.stderr


def test_quarantined_files_exit_4(tmp_path: Path, orthanc: OrthancPeer, dcmseal: Invoke) -> None:
    medium = polyglot_medium(tmp_path / "poly")
    outcome = dcmseal("import", medium, "--to", _dimse(orthanc), "--aet", OUR_AET, "--json")
    assert outcome.code == 4, outcome.stderr
    assert outcome.json()["summary"]["quarantined"] == 1


def test_storescp_receives_the_reconciled_instances(
    tmp_path: Path, storescp: StoreScp, dcmseal: Invoke, dcentvfy_bin: str
) -> None:
    medium = plain_medium(tmp_path / "plain")
    outcome = dcmseal(
        "import",
        medium,
        "--to",
        str(storescp.target),
        "--aet",
        OUR_AET,
        "--reconcile",
        plain_mapping(tmp_path / "map.csv"),
        "--json",
    )
    assert outcome.code == 0, outcome.stderr
    received = storescp.received()
    assert sop_uids(received) == {
        f["sent_sop_instance_uid"] for f in outcome.json()["files"] if f["status"] == "stored"
    }
    assert {str(dcmread(p, stop_before_pixels=True).PatientID) for p in received} == {"LOC-A1", "LOC-B2"}
    checked = run_tool([dcentvfy_bin, *map(str, received)])
    report = (checked.stdout + checked.stderr).decode(errors="replace")
    assert checked.returncode == 0, report
    assert "Error" not in report, report


def test_verify_is_the_default_and_no_verify_turns_it_off(
    tmp_path: Path, storescp: StoreScp, dcmseal: Invoke
) -> None:
    medium = tmp_path / "m"
    foreign_study(medium, 2)
    verified = dcmseal("import", medium, "--to", str(storescp.target), "--aet", OUR_AET, "--json")
    assert verified.code == 0, verified.stderr  # storescp has no C-FIND: a note, not a failure
    document = verified.json()
    assert document["verification"]["query"] == "C-FIND"
    assert [n for n in document["notes"] if n.startswith("not verified: ")]
    medium2 = tmp_path / "m2"
    foreign_study(medium2, 2)
    trusted = dcmseal("import", medium2, "--to", str(storescp.target), "--aet", OUR_AET, "--no-verify")
    assert trusted.code == 0, trusted.stderr
    assert "not verified" not in trusted.stderr_flat
    assert "verified with" not in trusted.stderr_flat
    assert "2 stored (0 by an earlier run), 0 failed" in trusted.stderr_flat
    medium3 = tmp_path / "m3"
    foreign_study(medium3, 2)
    unchecked = dcmseal("import", medium3, "--to", str(storescp.target), "--aet", OUR_AET)
    assert unchecked.code == 0, unchecked.stderr
    assert "verified with C-FIND: 0 held, 0 not held" in unchecked.stderr_flat
    assert "2 left unchecked (a rerun asks again)" in unchecked.stderr_flat
