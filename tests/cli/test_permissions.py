"""Under ``umask 000``, what dcmseal creates is still private: folders 0700, files 0600, except a medium made to
be handed out (folders 0755, files 0644) and the public escrow certificate (issue 12 §5)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.cli.runner import DCMSEAL, clean_environment
from tests.media.conftest import write_series
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD

_ESCROW_PASSPHRASE = "Escrow-Passphrase-1"


def _dcmseal_umask_000(tmp_path: Path, *args: str | Path) -> None:
    env = clean_environment(
        tmp_path / "config",
        XDG_DATA_HOME=str(tmp_path / "data"),
        PW=PASSWORD,
        EP=_ESCROW_PASSPHRASE,
    )
    completed = subprocess.run(
        [str(DCMSEAL), *map(str, args)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: os.umask(0),  # the point of the test (no threads run here yet)
    )
    assert completed.returncode == 0, completed.stderr


def _modes(root: Path) -> dict[str, int]:
    """The permission bits of ``root`` and of everything under it, by path relative to ``root``'s parent."""
    entries = [root, *root.rglob("*")] if root.is_dir() else [root]
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.lstat().st_mode) for p in entries}


def _wrong(modes: dict[str, int], root: Path, *, dir_mode: int, file_mode: int) -> dict[str, str]:
    wrong = {}
    for name, mode in modes.items():
        expected = dir_mode if (root.parent / name).is_dir() else file_mode
        if mode != expected:
            wrong[name] = oct(mode)
    return wrong


def test_everything_created_under_umask_000_is_private_except_media(tmp_path: Path) -> None:
    study = tmp_path / "study"
    write_series(study, 1)
    write_series(study / "series", 2)
    fast = ("--iterations", str(FAST_ITERATIONS))
    _dcmseal_umask_000(tmp_path, "keys", "init", "--org", "Umask Hospital", "--passphrase-env", "EP")
    _dcmseal_umask_000(
        tmp_path, "seal", study, "--out", tmp_path / "sealed" / "deep", "--password-env", "PW", *fast
    )
    _dcmseal_umask_000(
        tmp_path, "unseal", tmp_path / "sealed", "--out", tmp_path / "unsealed", "--password-env", "PW"
    )
    _dcmseal_umask_000(
        tmp_path,
        "burn",
        study,
        "--out",
        tmp_path / "media" / "stick",
        "--format",
        "dir",
        "--password-env",
        "PW",
        *fast,
    )
    _dcmseal_umask_000(tmp_path, "burn", study, "--out", tmp_path / "disc.iso", "--password-env", "PW", *fast)
    _dcmseal_umask_000(
        tmp_path, "open", tmp_path / "media" / "stick", "--out", tmp_path / "opened", "--password-env", "PW"
    )

    # dcmseal's own state: the escrow folder above all (another user must not replace the certificate there).
    data = tmp_path / "data"
    state = {k: v for k, v in _modes(data).items() if not k.endswith("escrow-cert.pem")}
    assert _wrong(state, data, dir_mode=0o700, file_mode=0o600) == {}
    assert stat.S_IMODE((data / "dcmseal" / "escrow").stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "dcmseal" / "escrow" / "escrow-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "dcmseal" / "escrow" / "escrow-cert.pem").stat().st_mode) == 0o644  # public

    # Sealed files, unsealed and opened plaintext: the owner's alone (the parents dcmseal made too).
    for root in (tmp_path / "sealed", tmp_path / "unsealed", tmp_path / "opened"):
        modes = _modes(root)
        assert len(modes) > 2
        assert _wrong(modes, root, dir_mode=0o700, file_mode=0o600) == {}

    # A medium is made to be handed out: readable by all, writable by its owner only; its new parent is private.
    stick = tmp_path / "media" / "stick"
    assert _wrong(_modes(stick), stick, dir_mode=0o755, file_mode=0o644) == {}
    assert stat.S_IMODE((tmp_path / "media").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "disc.iso").stat().st_mode) == 0o644

    # Nothing anywhere is writable by group or others.
    everything = _modes(tmp_path)
    writable = {
        k: oct(v) for k, v in everything.items() if v & 0o022 and not k.startswith(tmp_path.name + "/study")
    }
    assert writable == {}
