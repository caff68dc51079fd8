"""Tests of batch durability: temporary files, one syncfs per batch, renames only after it, nothing left on failure."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dcmseal import fsutil
from dcmseal.fsutil import BatchCommit, atomic_write
from dcmseal.part10 import FileOutcome, SealPlan, UnsealPlan, seal_tree, unseal_tree
from tests.part10.dicomfiles import PASSWORD, fast_kdf, leftovers, write_part10

PW = PASSWORD.encode()


def _study(root: Path, count: int) -> Path:
    for index in range(count):
        write_part10(root / f"IM{index:05d}", pixel_bytes=2048)
    return root


class _Counter:
    """Counts calls of a real function and still calls it (a spy, not a mock)."""

    def __init__(self, function: Callable[..., object]) -> None:
        self.function = function
        self.calls = 0

    def __call__(self, *args: object) -> object:
        self.calls += 1
        return self.function(*args)


# -- BatchCommit on its own ----------------------------------------------------------------------------------
def test_nothing_is_named_before_the_batch_commits(tmp_path: Path) -> None:
    if not fsutil._unnamed_files_possible():  # pragma: no cover - no O_TMPFILE here
        pytest.skip("no unnamed files (O_TMPFILE) on this system")
    batch = BatchCommit()
    for name in ("a", "b", "c"):
        with atomic_write(tmp_path / name, batch=batch) as out:
            out.write(name.encode() * 100)
    # Written, not yet durable: nothing has a name (unnamed files), yet the bytes can be read.
    assert leftovers(tmp_path) == []
    assert batch.readable_path(tmp_path / "b").read_bytes() == b"b" * 100
    assert batch.commit() == {}
    assert sorted(p.name for p in leftovers(tmp_path)) == ["a", "b", "c"]
    assert (tmp_path / "b").read_bytes() == b"b" * 100
    if fsutil._syncfs is not None:
        assert batch.syncfs_calls == 1
        assert batch.fsync_calls == 1  # the one folder
    else:  # pragma: no cover - only where libc has no syncfs
        assert batch.fsync_calls == 4


def test_without_syncfs_each_file_is_fsynced_before_any_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsutil, "_syncfs", None)  # as on a libc without syncfs(2)
    batch = BatchCommit()
    for name in ("a", "b"):
        with atomic_write(tmp_path / name, batch=batch) as out:
            out.write(b"x")
    batch.commit()
    assert batch.syncfs_calls == 0
    assert batch.fsync_calls == 3  # two files, one folder
    assert sorted(p.name for p in leftovers(tmp_path)) == ["a", "b"]


def test_a_failed_write_inside_a_batch_leaves_nothing(tmp_path: Path) -> None:
    batch = BatchCommit()
    with atomic_write(tmp_path / "kept", batch=batch) as out:
        out.write(b"kept")

    def fail_midway() -> None:
        with atomic_write(tmp_path / "broken", batch=batch) as out:
            out.write(b"partial plaintext")
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert not any("broken" in p.name for p in leftovers(tmp_path))
    batch.commit()
    assert [p.name for p in leftovers(tmp_path)] == ["kept"]


def test_a_destination_that_appears_before_the_commit_is_not_replaced(tmp_path: Path) -> None:
    batch = BatchCommit()
    with atomic_write(tmp_path / "a", batch=batch) as out:
        out.write(b"ours")
    (tmp_path / "a").write_bytes(b"someone else's")
    failed = batch.commit()
    assert list(failed) == [tmp_path / "a"]
    assert isinstance(failed[tmp_path / "a"], FileExistsError)
    assert (tmp_path / "a").read_bytes() == b"someone else's"
    assert [p.name for p in leftovers(tmp_path)] == ["a"]


def test_abort_drops_every_pending_file(tmp_path: Path) -> None:
    batch = BatchCommit()
    for name in ("a", "b"):
        with atomic_write(tmp_path / name, batch=batch) as out:
            out.write(b"plaintext")
    (tmp_path / "unrelated").write_bytes(b"not ours")
    batch.abort()
    assert batch.commit() == {}
    assert [p.name for p in leftovers(tmp_path)] == ["unrelated"]


# -- the batches of seal_tree / unseal_tree -----------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_one_syncfs_per_commit_and_no_fsync_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    study = _study(tmp_path / "in", 20)
    sync = _Counter(fsutil._sync_filesystem)
    monkeypatch.setattr(fsutil, "_sync_filesystem", sync)
    fsyncs = _Counter(os.fsync)
    monkeypatch.setattr(os, "fsync", fsyncs)
    report = seal_tree([study], tmp_path / "sealed", SealPlan(password=PW, kdf=fast_kdf()), workers=workers)
    assert not report.failed
    # In one process, 20 files are one commit: one syncfs, one folder fsync. With a pool each worker commits
    # its own tasks (the counters here see this process only: it sealed nothing).
    has_syncfs = fsutil._syncfs is not None
    if workers == 1:
        assert sync.calls == (1 if has_syncfs else 0)
        assert fsyncs.calls == (1 if has_syncfs else 21)
    else:
        assert sync.calls == fsyncs.calls == 0
    assert sorted(p.name for p in leftovers(tmp_path / "sealed")) == sorted(p.name for p in study.iterdir())

    sync.calls = fsyncs.calls = 0
    opened = unseal_tree(
        [tmp_path / "sealed"], tmp_path / "opened", UnsealPlan(passwords=(PW,)), workers=workers
    )
    assert not opened.failed
    # With a pool this process opens the first file itself (its key then reaches every worker).
    assert sync.calls == (1 if has_syncfs else 0)
    for source in study.iterdir():
        assert (tmp_path / "opened" / source.name).read_bytes() == source.read_bytes()
    assert all(o.result is not None and o.result.sop_instance_uid for o in opened.outcomes)


def test_a_large_batch_commits_every_few_dozen_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pending file holds a descriptor: a batch commits when it holds MAX_PENDING_FILES."""
    study = _study(tmp_path / "in", fsutil.MAX_PENDING_FILES + 5)
    sync = _Counter(fsutil._sync_filesystem)
    monkeypatch.setattr(fsutil, "_sync_filesystem", sync)
    report = seal_tree([study], tmp_path / "sealed", SealPlan(password=PW, kdf=fast_kdf()), workers=1)
    assert not report.failed
    assert sync.calls == (2 if fsutil._syncfs is not None else 0)
    assert len(leftovers(tmp_path / "sealed")) == fsutil.MAX_PENDING_FILES + 5


@pytest.mark.parametrize("workers", [1, 2])
def test_a_batch_that_fails_midway_leaves_only_complete_outputs(tmp_path: Path, workers: int) -> None:
    """Interrupted, a batch leaves the files it committed (each complete) and nothing else: no temporary file."""
    study = _study(tmp_path / "in", 40)
    out = tmp_path / "sealed"
    seen: list[FileOutcome] = []

    def interrupt(outcome: FileOutcome) -> None:
        seen.append(outcome)
        if len(seen) == 25:
            raise KeyboardInterrupt  # the user pressed Ctrl-C with files written and more in flight

    with pytest.raises(KeyboardInterrupt):
        seal_tree([study], out, SealPlan(password=PW, kdf=fast_kdf()), workers=workers, on_outcome=interrupt)
    written = leftovers(out)
    assert len(written) < 40
    assert {p.name for p in written} <= {p.name for p in study.iterdir()}  # no temporary or hidden file
    if written:
        opened = unseal_tree([out], tmp_path / "check", UnsealPlan(passwords=(PW,)), workers=1)
        assert not opened.failed
        for path in written:
            assert (tmp_path / "check" / path.name).read_bytes() == (study / path.name).read_bytes()


def test_an_output_that_appears_during_the_batch_is_reported_and_kept(tmp_path: Path) -> None:
    study = _study(tmp_path / "in", 5)
    out = tmp_path / "sealed"

    def squat(outcome: FileOutcome) -> None:
        if outcome.source.name == "IM00001":
            (out / "IM00001").write_bytes(b"someone else's")

    report = seal_tree([study], out, SealPlan(password=PW, kdf=fast_kdf()), workers=1, on_outcome=squat)
    [failed] = report.failed
    assert failed.source.name == "IM00001"
    assert failed.reason is not None
    assert "already exists" in failed.reason
    assert (out / "IM00001").read_bytes() == b"someone else's"
    assert sorted(p.name for p in leftovers(out)) == [f"IM{i:05d}" for i in range(5)]


def test_a_single_file_is_written_as_ever(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One file: temporary file, fsync, rename (no batch), with early write-back for a large file."""
    source = write_part10(tmp_path / "in" / "IM1", pixel_bytes=60_000)
    monkeypatch.setattr(fsutil, "WRITEBACK_BYTES", 16 * 1024)
    writeback = _Counter(fsutil.start_writeback)
    monkeypatch.setattr(fsutil, "start_writeback", writeback)
    sync = _Counter(fsutil._sync_filesystem)
    monkeypatch.setattr(fsutil, "_sync_filesystem", sync)
    report = seal_tree([source], tmp_path / "sealed", SealPlan(password=PW, kdf=fast_kdf()), workers=1)
    assert not report.failed
    assert sync.calls == 0
    assert writeback.calls >= 1  # 60 KB written: write-back started before the final fsync
    opened = unseal_tree([tmp_path / "sealed"], tmp_path / "opened", UnsealPlan(passwords=(PW,)), workers=1)
    assert not opened.failed
    assert (tmp_path / "opened" / "IM1").read_bytes() == source.read_bytes()


def test_a_file_system_that_cannot_link_an_unnamed_file_gets_a_staged_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_TMPFILE worked but linkat is refused (no hard links there): the bytes are staged and renamed instead."""
    if not fsutil._unnamed_files_possible():  # pragma: no cover - no O_TMPFILE here
        pytest.skip("no unnamed files (O_TMPFILE) on this system")
    refused: list[Path] = []

    def no_links(fd: int, dst: Path) -> None:
        refused.append(dst)
        raise OSError(errno.EPERM, "Operation not permitted", str(dst))

    monkeypatch.setattr(fsutil, "_link_unnamed", no_links)
    with atomic_write(tmp_path / "single") as out:
        out.write(b"one" * 1000)
    batch = BatchCommit()
    for name in ("a", "b"):
        with atomic_write(tmp_path / name, batch=batch) as out:
            out.write(name.encode() * 1000)
    assert batch.commit() == {}
    assert refused == [tmp_path / "single", tmp_path / "a", tmp_path / "b"]
    assert sorted(p.name for p in leftovers(tmp_path)) == ["a", "b", "single"]  # no staging folder left
    assert (tmp_path / "single").read_bytes() == b"one" * 1000
    assert (tmp_path / "b").read_bytes() == b"b" * 1000
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o600
