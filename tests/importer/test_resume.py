"""Nothing lost, nothing twice: an import killed midway (SIGKILL) and a PACS stopped midway, then the rerun."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from dcmseal.audit import FileSink
from dcmseal.events import on_progress
from dcmseal.importer import State
from dcmseal.importer.pipeline import ImportRequest, import_medium
from tests.cli.runner import clean_environment
from tests.importer.conftest import (
    FAST_RETRY,
    OUR_AET,
    dimse_target,
    foreign_study,
    import_argv,
    sop_uids,
    start_pacs,
)
from tests.jsondoc import member
from tests.peers.orthanc import OrthancPeer

#: Enough instances that the import is still sending when the poller sees the first ones stored.
MANY = 60
KILL_AFTER = 5

#: Real peers: Orthanc, DCMTK, dicom3tools.
pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _stored_rows(journal: Path) -> dict[str, str]:
    """path -> SOP Instance UID sent, for every row the journal says is stored (read as a second process would)."""
    if not journal.exists():
        return {}
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    try:
        return dict(
            db.execute("SELECT path, sent_sop_instance_uid FROM instances WHERE state = 'stored'").fetchall()
        )
    except sqlite3.OperationalError:  # the schema is not there yet
        return {}
    finally:
        db.close()


def test_an_import_killed_midway_resumes_and_stores_every_instance_exactly_once(
    tmp_path: Path, orthanc: OrthancPeer
) -> None:
    medium = tmp_path / "medium"
    originals = sop_uids(foreign_study(medium / "DICOM", MANY, patient_id="EXT-KILL"))
    journal = tmp_path / "journal.sqlite3"
    env = clean_environment(tmp_path / "config", XDG_DATA_HOME=str(tmp_path / "data"))
    process = subprocess.Popen(
        import_argv(medium, f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", tmp_path),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while (
            len(_stored_rows(journal)) < KILL_AFTER and process.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        still_running = process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()
    assert still_running, "the import finished before it could be killed"
    assert process.returncode == -signal.SIGKILL
    killed_at = _stored_rows(journal)
    assert KILL_AFTER <= len(killed_at) < MANY
    # Whatever the journal calls stored, Orthanc has (a row is stored only after the peer confirmed it).
    assert set(killed_at.values()) <= orthanc.sop_instance_uids()

    rerun = subprocess.run(
        import_argv(medium, f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    import json

    document = json.loads(rerun.stdout)
    assert document["run"] == 2
    assert document["summary"]["stored"] == MANY
    earlier = {f["path"]: f for f in document["files"] if f["earlier_run"]}
    # The journal's stored rows, and at most the one in flight at the kill if C-FIND found Orthanc holds it.
    assert set(killed_at) <= set(earlier)
    found = set(earlier) - set(killed_at)
    assert len(found) <= 1
    assert all("found held by C-FIND" in earlier[p]["reason"] for p in found)
    assert document["summary"]["sent_now"] == MANY - len(earlier)
    # Exactly once: as many instances as the medium holds, each SOP Instance UID once.
    assert len(orthanc.ids("/instances")) == MANY
    assert orthanc.sop_instance_uids() == originals


def _refuses(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return False
    return True


def test_a_pacs_stopped_midway_gets_retries_then_a_clear_failure_and_nothing_false_is_stored(
    tmp_path: Path,
) -> None:
    medium = tmp_path / "medium"
    originals = sop_uids(foreign_study(medium / "DICOM", 12, patient_id="EXT-STOP"))
    workdir = tmp_path / "pacs"
    journal = tmp_path / "journal.sqlite3"

    def request(peer: OrthancPeer) -> ImportRequest:
        return ImportRequest(
            medium=medium,
            target=dimse_target(peer),
            operator="import-tester",
            journal=journal,
            quarantine=tmp_path / "quarantine",
            calling_aet=OUR_AET,
            retry=FAST_RETRY,
        )

    with start_pacs(workdir) as peer:
        ports = (peer.http_port, peer.dicom_port)

        def stop_after_three(stage: str, done: int, _total: int) -> None:
            if stage == "send" and done == 3:
                os.kill(peer.pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while not _refuses(peer.dicom_port) and time.monotonic() < deadline:
                    time.sleep(0.05)

        result = import_medium(
            replace(request(peer), handlers=[on_progress(stop_after_three)]),
            audit=FileSink(tmp_path / "audit.log"),
        )

    assert result.peer_error is not None
    assert result.peer_error.startswith(f"dicom://{peer.aet}@127.0.0.1:{ports[1]}: ")
    assert f"gave up after {FAST_RETRY.attempts} attempt(s)" in result.peer_error
    stored = {f.sent_sop_instance_uid for f in result.files if f.status is State.STORED}
    assert len(stored) == 3
    failed = [f for f in result.files if f.status is State.FAILED]
    assert len(failed) == 9
    assert all(f.reason and ("not confirmed" in f.reason or "not sent" in f.reason) for f in failed)
    assert [f.reason for f in failed].count(
        next(f.reason for f in failed if "not confirmed" in (f.reason or ""))
    ) == 1

    # Orthanc back where it was (same storage, same ports): it holds exactly what the journal says is stored.
    with start_pacs(workdir, ports=ports) as peer:
        assert peer.sop_instance_uids() == stored
        again = import_medium(request(peer), audit=FileSink(tmp_path / "audit.log"))
        assert again.ok, again.peer_error
        assert member(again.to_json(), "summary", "sent_now") == 9
        assert len(peer.ids("/instances")) == 12
        assert peer.sop_instance_uids() == originals
