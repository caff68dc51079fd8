"""Exactly once after a crash: imports killed (SIGKILL) at many points, every instance received once.

The receivers count what they *receive*, not what they end up holding (Orthanc keeps one copy of a SOP Instance
UID however often it is sent, so its instance count cannot show a second send):

* Orthanc runs a Lua ``ReceivedInstanceFilter`` that appends each received SOP Instance UID to a file; a few
  chosen instances make it pause, so that a kill lands while the PACS holds the instance and the importer has
  not had its answer (the journal row in doubt);
* DCMTK ``storescp --unique-filenames`` writes one file per received instance, and runs a pause after each
  reception before it answers (``--exec-on-reception`` with ``--exec-sync``), for the same window.

Orthanc can be asked (C-FIND): the rerun finds what the killed run left in doubt and does not send it again.
storescp cannot: the rerun leaves it in doubt (failed, not sent) and only ``--resend-in-doubt`` sends it, which
is when, and only when, storescp receives it twice.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.cli.runner import clean_environment
from tests.importer.conftest import (
    PACS_AET,
    StoreScp,
    foreign_study,
    import_argv,
    orthanc_config,
    running_storescp,
    sop_uids,
)
from tests.peers.orthanc import OrthancPeer, running_orthanc

#: Real peers: Orthanc, DCMTK; each test kills several imports.
pytestmark = [pytest.mark.interop, pytest.mark.slow]

#: Instances on the medium, and the number stored at which each successive run is killed.
COUNT = 24
KILL_POINTS = (0, 3, 8, 14, 19)
#: How long a receiver holds an instance it received before it answers (the window of doubt).
PAUSE_S = 0.4
#: storescp: the receptions at which the import is killed, and how long storescp holds each of those.
SCP_KILL_POINTS = (3, 6)
SCP_PAUSE_S = 3


def _rows(journal: Path) -> dict[str, tuple[str, int]]:
    """path -> (state, attempts), read as a second process would."""
    if not journal.exists():
        return {}
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    try:
        return {
            str(p): (str(s), int(a)) for p, s, a in db.execute("SELECT path, state, attempts FROM instances")
        }
    except sqlite3.OperationalError:  # the schema is not there yet
        return {}
    finally:
        db.close()


def _argv(medium: Path, to: str, tmp_path: Path) -> list[str]:
    return import_argv(medium, to, tmp_path, "--retries", "2", "--retry-delay", "0.1")


def _kill_when(
    argv: list[str], env: dict[str, str], ready: Callable[[dict[str, tuple[str, int]]], bool]
) -> bool:
    """Run the import; SIGKILL it as soon as the journal satisfies ``ready``. False if it finished first."""
    journal = Path(argv[argv.index("--journal") + 1])
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline and not ready(_rows(journal)):
            time.sleep(0.002)
        killed = process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    return killed


def _has(received: Path, uid: str, _rows: object) -> bool:
    return received.exists() and uid in received.read_text().split()


def _run(argv: list[str], env: dict[str, str]) -> tuple[int, dict[str, object]]:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    return done.returncode, json.loads(done.stdout)


def _medium(tmp_path: Path) -> tuple[Path, set[str], list[str]]:
    """The medium, its SOP Instance UIDs, and those that make the receiver pause (one per kill point)."""
    medium = tmp_path / "medium"
    paths = foreign_study(medium / "DICOM", COUNT, patient_id="EXT-DOUBT")
    slow = [str(dcmread(paths[k], stop_before_pixels=True).SOPInstanceUID) for k in KILL_POINTS]
    return medium, sop_uids(paths), slow


def _counting_orthanc(workdir: Path, received: Path, slow: list[str]) -> AbstractContextManager[OrthancPeer]:
    lua = workdir.with_name("count.lua")
    pauses = ", ".join(f'["{uid}"] = true' for uid in slow)
    lua.write_text(
        f"local slow = {{ {pauses} }}\n"
        "function ReceivedInstanceFilter(dicom, origin, info)\n"
        f'  local log = io.open("{received}", "a")\n'
        '  log:write(dicom.SOPInstanceUID .. "\\n")\n'
        "  log:close()\n"
        f'  if slow[dicom.SOPInstanceUID] then os.execute("sleep {PAUSE_S}") end\n'
        "  return true\n"
        "end\n",
        encoding="utf-8",
    )
    return running_orthanc(workdir, aet=PACS_AET, extra_config=orthanc_config() | {"LuaScripts": [str(lua)]})


@pytest.mark.parametrize("protocol", ["C-STORE", "STOW-RS"])
def test_imports_killed_at_many_points_store_every_instance_in_orthanc_exactly_once(
    tmp_path: Path, protocol: str
) -> None:
    medium, originals, slow = _medium(tmp_path)
    received = tmp_path / "received.txt"
    env = clean_environment(tmp_path / "config", XDG_DATA_HOME=str(tmp_path / "data"))
    with _counting_orthanc(tmp_path / "pacs", received, slow) as peer:
        to = f"dicom://{peer.aet}@127.0.0.1:{peer.dicom_port}" if protocol == "C-STORE" else peer.dicomweb_url
        argv = _argv(medium, to, tmp_path)
        kills = 0
        for uid in slow:
            # Killed once Orthanc has received the instance and pauses before it answers.
            kills += _kill_when(argv, env, partial(_has, received, uid))
        assert kills == len(KILL_POINTS)  # every run was killed midway, none finished
        code, document = _run(argv, env)
        assert code == 0, document
        receipts = Counter(received.read_text().split())
        # Every instance received exactly once, over all the killed runs and the last one.
        assert set(receipts) == originals
        assert max(receipts.values()) == 1, receipts.most_common(3)
        assert peer.sop_instance_uids() == originals
        assert _by(document, "status") == {"stored": COUNT}
        # The runs were killed in the window of doubt (the receiver pausing on the instance at each kill point):
        # a later run asked (C-FIND, QIDO-RS), found the instance held, and recorded it stored without sending it
        # again. A STOW-RS request carries several instances: Orthanc stores the whole request it has received.
        found = [c for f in _files(document) if isinstance(c := f["confirmation"], dict) and "found" in c]
        assert len(found) >= len(KILL_POINTS)
        assert {c["protocol"] for c in found} == {"C-FIND" if protocol == "C-STORE" else "QIDO-RS"}


def _files(document: dict[str, object]) -> list[dict[str, object]]:
    files = document["files"]
    assert isinstance(files, list)
    return files


def _notes(document: dict[str, object]) -> list[str]:
    notes = document["notes"]
    assert isinstance(notes, list)
    return [str(n) for n in notes]


def _by(document: dict[str, object], key: str) -> dict[str, int]:
    return dict(Counter(str(f[key]) for f in _files(document)))


@pytest.fixture
def counting_storescp(tmp_path: Path) -> Iterator[StoreScp]:
    """storescp writing one file per received instance (unique names), and after each, a line to marks.txt and a
    pause before it answers."""
    marks = tmp_path / "marks.txt"
    # After each instance is received in full and written: mark it; at each kill point (the 3rd and 6th
    # reception) hold the answer for SCP_PAUSE_S, long enough that the kill lands inside the window of doubt
    # however late the poller runs on a loaded machine (a 0.4 s pause after every instance sometimes let the
    # next instance go out before the kill, and that one, in doubt but never received, was missing).
    pause_at = " ".join(str(n) for n in SCP_KILL_POINTS)
    script = f'echo #f >> {marks}; n=$(wc -l < {marks}); for k in {pause_at}; do [ "$n" -eq "$k" ] && sleep {SCP_PAUSE_S}; done; true'
    with running_storescp(
        tmp_path, "--unique-filenames", "--exec-on-reception", script, "--exec-sync"
    ) as peer:
        yield peer


def _at_least(marks: Path, count: int, _rows: object) -> bool:
    """storescp has received ``count`` instances in full (it marks each before its pause)."""
    return marks.exists() and len(marks.read_text().split()) >= count


def _receipts(directory: Path) -> Counter[str]:
    return Counter(
        str(dcmread(p, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
        for p in directory.rglob("*")
        if p.is_file()
    )


def test_storescp_cannot_be_asked_so_what_is_in_doubt_is_never_resent_unless_asked(
    tmp_path: Path, counting_storescp: StoreScp
) -> None:
    port, directory = counting_storescp.port, counting_storescp.directory
    marks = tmp_path / "marks.txt"
    medium = tmp_path / "medium"
    originals = sop_uids(foreign_study(medium / "DICOM", 8, patient_id="EXT-DOUBT-SCP"))
    env = clean_environment(tmp_path / "config", XDG_DATA_HOME=str(tmp_path / "data"))
    argv = _argv(medium, f"dicom://STORESCP@127.0.0.1:{port}", tmp_path)
    for received in SCP_KILL_POINTS:
        # Killed while storescp pauses after receiving an instance (the file written): received, not answered.
        assert _kill_when(argv, env, partial(_at_least, marks, received))
        doubtful = {
            p for p, (state, a) in _rows(tmp_path / "journal.sqlite3").items() if state == "pending" and a
        }
        assert len(doubtful) == 1  # C-STORE sends one instance at a time

    code, document = _run(argv, env)
    assert code == 1  # the instances in doubt are failed, not sent
    in_doubt = [f for f in _files(document) if str(f["reason"]).startswith("in doubt: ")]
    assert len(in_doubt) == 2
    assert all("--resend-in-doubt" in str(f["reason"]) for f in in_doubt)
    receipts = _receipts(directory)
    assert set(receipts) == originals  # the others were sent; the two in doubt had arrived before the kills
    assert max(receipts.values()) == 1  # nothing twice

    code, document = _run([*argv, "--resend-in-doubt"], env)
    assert code == 0, document
    assert _by(document, "status") == {"stored": 8}
    receipts = _receipts(directory)
    # Asked to, the importer sends the two again: storescp, which had them, now has each twice; nothing else is.
    assert sorted(receipts.values()) == [1] * 6 + [2] * 2
    assert {f["sent_sop_instance_uid"] for f in in_doubt} == {u for u, n in receipts.items() if n == 2}
