"""Tests of batch durability: temporary files, one syncfs per batch, renames only after it, nothing left on failure."""

from __future__ import annotations

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
def test_nothing_is_renamed_before_the_batch_commits(tmp_path: Path) -> None:
    batch = BatchCommit()
    for name in ("a", "b", "c"):
        with atomic_write(tmp_path / name, batch=batch) as out:
            out.write(name.encode() * 100)
    # Written, not yet durable: only temporary names exist.
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))
    assert len(leftovers(tmp_path)) == 3
    assert batch.commit() == {}
    assert sorted(p.name for p in leftovers(tmp_path)) == ["a", "b", "c"]
    assert (tmp_path / "b").read_bytes() == b"b" * 100
    if fsutil._syncfs is not None:
        assert batch.syncfs_calls == 1
        assert batch.fsync_calls == 1  # the one folder
    else:  # pragma: no cover - only where libc has no syncfs
        assert batch.fsync_calls == 4


def test_without_syncfs_each_file_is_fsynced_before_any_rename(
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


def test_a_failed_write_inside_a_batch_leaves_no_temporary_file(tmp_path: Path) -> None:
    batch = BatchCommit()
    with atomic_write(tmp_path / "kept", batch=batch) as out:
        out.write(b"kept")

    def fail_midway() -> None:
        with atomic_write(tmp_path / "broken", batch=batch) as out:
            out.write(b"partial plaintext")
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert [p.name for p in leftovers(tmp_path)] == [batch.temp_path(tmp_path / "kept").name]
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


def test_abort_also_removes_what_a_dead_worker_could_not_report(tmp_path: Path) -> None:
    batch = BatchCommit()
    with atomic_write(tmp_path / "reported", batch=batch) as out:
        out.write(b"x")
    # A worker process killed after writing: its temporary file exists, but the parent never heard of it.
    batch.temp_path(tmp_path / "orphan").write_bytes(b"plaintext")
    (tmp_path / "unrelated").write_bytes(b"not ours")
    batch.abort({tmp_path})
    assert [p.name for p in leftovers(tmp_path)] == ["unrelated"]


# -- the batches of seal_tree / unseal_tree -----------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_one_syncfs_for_a_whole_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    study = _study(tmp_path / "in", 20)
    sync = _Counter(fsutil._sync_filesystem)
    monkeypatch.setattr(fsutil, "_sync_filesystem", sync)
    fsyncs = _Counter(os.fsync)
    monkeypatch.setattr(os, "fsync", fsyncs)
    report = seal_tree([study], tmp_path / "sealed", SealPlan(password=PW, kdf=fast_kdf()), workers=workers)
    assert not report.failed
    # syncfs runs in this process (the commit), whatever ran the crypto; no fsync per file.
    assert sync.calls == (1 if fsutil._syncfs is not None else 0)
    assert fsyncs.calls == (1 if fsutil._syncfs is not None else 21)
    assert sorted(p.name for p in leftovers(tmp_path / "sealed")) == sorted(p.name for p in study.iterdir())

    sync.calls = 0
    opened = unseal_tree(
        [tmp_path / "sealed"], tmp_path / "opened", UnsealPlan(passwords=(PW,)), workers=workers
    )
    assert not opened.failed
    assert sync.calls == (1 if fsutil._syncfs is not None else 0)
    for source in study.iterdir():
        assert (tmp_path / "opened" / source.name).read_bytes() == source.read_bytes()
    assert all(o.result is not None and o.result.sop_instance_uid for o in opened.outcomes)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_batch_that_fails_midway_leaves_no_temporary_file_and_no_output(
    tmp_path: Path, workers: int
) -> None:
    study = _study(tmp_path / "in", 40)
    out = tmp_path / "sealed"
    seen: list[FileOutcome] = []

    def interrupt(outcome: FileOutcome) -> None:
        seen.append(outcome)
        if len(seen) == 25:
            raise KeyboardInterrupt  # the user pressed Ctrl-C with files written and more in flight

    with pytest.raises(KeyboardInterrupt):
        seal_tree([study], out, SealPlan(password=PW, kdf=fast_kdf()), workers=workers, on_outcome=interrupt)
    assert leftovers(out) == []


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
