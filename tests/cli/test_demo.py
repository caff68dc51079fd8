"""Tests of `dcmseal demo`: the whole tour runs and checks itself."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Subprocess


def test_demo_completes(dcmseal: Subprocess, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    run = dcmseal("demo", "--workdir", workdir)
    assert run.code == 0, run.stderr
    assert "demo complete" in run.stderr_flat
    assert "Traceback" not in run.stderr
    stdout = " ".join(run.stdout.split())
    assert "5/5 files identical to the originals" in stdout
    passphrase = next(
        line.split(":", 1)[1].strip() for line in run.stdout.splitlines() if line.startswith("passphrase:")
    )
    assert len(passphrase.split("-")) >= 7
    # The wrong-password step left nothing behind.
    assert not (workdir / "wrong" / "IM000001").exists()
    assert sorted(p.name for p in (workdir / "opened-password").iterdir()) == [
        f"IM00000{i}" for i in range(1, 6)
    ]


def test_demo_in_a_temporary_folder_cleans_up(dcmseal: Subprocess, tmp_path: Path) -> None:
    run = dcmseal("demo", env={"TMPDIR": str(tmp_path)})
    assert run.code == 0, run.stderr
    assert "demo complete" in run.stderr_flat
    assert list(tmp_path.glob("dcmseal-demo-*")) == []
