"""Killed with SIGKILL mid-run, no command leaves plaintext behind; a rerun completes (issue 12 §4).

Each test runs the real console script, waits until the run is where the kill should land (read from the
file system and /proc, never from a timer), kills it with SIGKILL, then counts what is on disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dcmseal import fsutil
from dcmseal.part10 import SealPlan, seal_tree
from tests.cli.runner import DCMSEAL, clean_environment
from tests.media.conftest import MediaCli, write_series
from tests.part10.dicomfiles import PASSWORD, fast_kdf

#: Enough files that the run is still busy when the kill lands (a batch names its files every 32).
_FILES = 200
_PIXEL_BYTES = 60_000


def _watchdogs(pid: int) -> list[int]:
    """The staging watchdogs started by process ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fp:
                parent = int(fp.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fp:
                tagged = fsutil.WATCHDOG_TAG.encode() in fp.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and tagged:
            found.append(int(entry))
    return found


def _run_and_kill(
    cli: MediaCli, args: list[str | Path], ready: Callable[[int], bool], *, watchdogs_too: bool = False
) -> None:
    """Start ``dcmseal *args``, SIGKILL it as soon as ``ready(pid)`` holds, and reap it.

    ``watchdogs_too``: its staging watchdogs are killed first, as a power cut or the end of the session would.
    """
    env = clean_environment(cli.config_home, **cli.env(PW=PASSWORD))
    process = subprocess.Popen(
        [str(DCMSEAL), *map(str, args)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while process.poll() is None and not ready(process.pid):
            time.sleep(0.002)  # polling only; nothing is asserted about time
        if process.poll() is None:
            if watchdogs_too:
                watchdogs = _watchdogs(process.pid)
                assert watchdogs, "a staging folder without its watchdog"
                for watchdog in watchdogs:
                    os.kill(watchdog, signal.SIGKILL)
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before the kill: the input is too small"


def _unnamed_files_open(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` has an unnamed (O_TMPFILE) file open in ``folder``: a file being written."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link.startswith(f"{folder}/#") and link.endswith("(deleted)") for link in links)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _staging_folders(root: Path) -> list[Path]:
    """The staging folders below ``root``; one that a watchdog removes while it is being listed is not listed."""
    for _ in range(100):
        try:
            return sorted(root.rglob(".dcmseal.*.staging"))
        except FileNotFoundError:
            continue  # a folder went away while the walk was inside it: list again
    return sorted(root.rglob(".dcmseal.*.staging"))


def _wait_for_the_watchdogs(root: Path) -> None:
    """Until no staging folder is left below ``root`` (a killed run's watchdog removes its own at once, but
    concurrently with what the test does next), for about 30 s at most; nothing is asserted about time."""
    for _ in range(3000):
        if not _staging_folders(root):
            return
        time.sleep(0.01)


def _sealed_study(tmp_path: Path) -> tuple[Path, Path]:
    study = tmp_path / "study"
    write_series(study, _FILES, pixel_bytes=_PIXEL_BYTES)
    sealed = tmp_path / "sealed"
    assert not seal_tree([study], sealed, SealPlan(password=PASSWORD.encode(), kdf=fast_kdf())).failed
    return study, sealed


def _burn_args(tmp_path: Path, out: Path) -> list[str | Path]:
    """A study of many files under tmp_path/study, and the arguments that burn it to a folder ``out``."""
    study = tmp_path / "study"
    write_series(study, _FILES, pixel_bytes=_PIXEL_BYTES // 4)
    return ["burn", study, "--out", out, "--format", "dir", "--password-env", "PW", "--iterations", "1000"]


def _only_complete_outputs(out: Path, study: Path, tmp_path: Path) -> int:
    """Every file under ``out`` is a complete, verified output; nothing else was written beside it."""
    outputs = _files(out)
    for path in outputs:
        assert (study / path.relative_to(out)).read_bytes() == path.read_bytes(), f"{path} is incomplete"
    assert {p.name for p in tmp_path.iterdir()} <= {"study", "sealed", "out", "data-home", "config-home"}
    assert _staging_folders(tmp_path) == []
    return len(outputs)


@pytest.mark.skipif(not fsutil._unnamed_files_possible(), reason="no unnamed files (O_TMPFILE) here")
@pytest.mark.parametrize("point", ["writing the first file", "after some files are in place"])
def test_unseal_killed_leaves_only_complete_files_and_a_rerun_completes(
    media_cli: MediaCli, tmp_path: Path, point: str
) -> None:
    study, sealed = _sealed_study(tmp_path)
    out = tmp_path / "out"

    def ready(pid: int) -> bool:
        if point == "writing the first file":
            return _unnamed_files_open(pid, out)
        return len(_files(out)) >= 1 and _unnamed_files_open(pid, out)

    # The poller sees a file being written only while it is open; on a loaded machine it can miss the first
    # file's short window and kill during a later one. Every attempt's outputs are checked; only a kill that
    # landed where this case wants it ends the attempts (a fresh output folder each time).
    for _attempt in range(5):
        _run_and_kill(
            media_cli, ["unseal", sealed, "--out", out, "--password-env", "PW", "--workers", "1"], ready
        )
        done = _only_complete_outputs(out, study, tmp_path)
        assert done < _FILES
        if point != "writing the first file" or done == 0:
            break
        shutil.rmtree(out)
    if point == "writing the first file":
        assert done == 0

    rerun = media_cli.fresh(
        "unseal", sealed, "--out", out, "--password-env", "PW", "--json", env={"PW": PASSWORD}
    )
    assert rerun.code == 0, rerun.stderr
    summary = rerun.json()["summary"]
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (_FILES, done, 0)
    assert _only_complete_outputs(out, study, tmp_path) == _FILES


@pytest.mark.parametrize("command", ["open", "rekey"])
def test_a_killed_open_or_rekey_leaves_a_staging_folder_the_next_command_removes(
    media_cli: MediaCli, tmp_path: Path, command: str
) -> None:
    medium = tmp_path / "sealed"
    burned = media_cli.fresh(*_burn_args(tmp_path, medium), env={"PW": PASSWORD})
    assert burned.code == 0, burned.stderr
    out = tmp_path / "out"
    args: list[str | Path] = [command, medium, "--out", out, "--password-env", "PW"]
    if command == "rekey":
        args += ["--new-password-env", "PW", "--iterations", "1000"]

    def ready(_pid: int) -> bool:  # decrypted files in the staging folder
        return any(len(_files(folder)) >= 20 for folder in _staging_folders(tmp_path))

    _run_and_kill(media_cli, args, ready, watchdogs_too=True)
    [left] = _staging_folders(tmp_path)  # the kill left plaintext in the staging folder, marked as dcmseal's
    assert (left / fsutil.STAGING_MARKER).is_file()
    assert not out.exists()

    unrelated = tmp_path / "study" / ".dcmseal.mine.staging"  # named alike but not dcmseal's: never removed
    unrelated.mkdir()
    (unrelated / "keep.txt").write_text("mine")
    any_command = media_cli.fresh("password", "new")
    assert any_command.code == 0, any_command.stderr
    assert not left.exists()
    assert (unrelated / "keep.txt").read_text() == "mine"
    unrelated.joinpath("keep.txt").unlink()
    unrelated.rmdir()

    rerun = media_cli.fresh(*args, env={"PW": PASSWORD})
    assert rerun.code == 0, rerun.stderr
    assert _staging_folders(tmp_path) == []
    instances = [p for p in _files(out) if p.parent != out and "VIEWER" not in p.parts]
    assert len(instances) == _FILES


def test_open_into_an_existing_folder_killed_leaves_temporaries_the_next_command_removes(
    media_cli: MediaCli, tmp_path: Path
) -> None:
    """Into an existing (empty) folder the files are written in place under temporary names, renamed at the end;
    a kill leaves those (plaintext) and the next command removes exactly them."""
    medium = tmp_path / "sealed"
    burned = media_cli.fresh(*_burn_args(tmp_path, medium), env={"PW": PASSWORD})
    assert burned.code == 0, burned.stderr
    out = tmp_path / "out"
    out.mkdir()

    def temporaries() -> list[Path]:
        return [p for p in _files(out) if p.name.endswith(".dcmseal-part")]

    args: list[str | Path] = ["open", medium, "--out", out, "--password-env", "PW"]
    _run_and_kill(media_cli, args, lambda _pid: len(temporaries()) >= 5)
    assert temporaries()
    (out / ".mine.dcmseal-part").write_text("a user's file, however it is named")

    assert media_cli.fresh("password", "new").code == 0
    assert temporaries() == [out / ".mine.dcmseal-part"]
    _wait_for_the_watchdogs(
        tmp_path
    )  # open stages its output beside the folder too (the killed run's watchdog's)
    assert _staging_folders(tmp_path) == []
    (out / ".mine.dcmseal-part").unlink()

    rerun = media_cli.fresh(*args, "--force", env={"PW": PASSWORD})
    assert rerun.code == 0, rerun.stderr
    assert temporaries() == []
    assert len([p for p in _files(out) if p.parent != out]) == _FILES


@pytest.mark.usefixtures("viewer_bundle")  # its output is discarded: it cannot say why it failed
def test_burn_killed_leaves_a_staging_folder_the_next_command_removes(
    media_cli: MediaCli, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = _burn_args(tmp_path, out)

    def ready(_pid: int) -> bool:
        return any(len(_files(folder)) >= 20 for folder in _staging_folders(tmp_path))

    _run_and_kill(media_cli, args, ready, watchdogs_too=True)
    assert len(_staging_folders(tmp_path)) == 1
    assert not out.exists()

    assert media_cli.fresh("password", "new").code == 0
    assert _staging_folders(tmp_path) == []
    rerun = media_cli.fresh(*args, env={"PW": PASSWORD})
    assert rerun.code == 0, rerun.stderr
    assert _staging_folders(tmp_path) == []


@pytest.mark.usefixtures("viewer_bundle")  # its output is discarded: it cannot say why it failed
def test_the_watchdog_removes_the_staging_folder_of_a_killed_run_at_once(
    media_cli: MediaCli, tmp_path: Path
) -> None:
    """Only the run is killed (kill -9 of its process): its watchdog removes the staging folder, no next run needed."""
    out = tmp_path / "out"
    args = _burn_args(tmp_path, out)

    def ready(_pid: int) -> bool:
        return any(len(_files(folder)) >= 20 for folder in _staging_folders(tmp_path))

    _run_and_kill(media_cli, args, ready)
    _wait_for_the_watchdogs(tmp_path)
    assert _staging_folders(tmp_path) == []
    assert not out.exists()
    assert {p.name for p in tmp_path.iterdir()} <= {"study", "data-home", "config-home"}
