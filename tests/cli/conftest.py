"""Fixtures of the command-line tests: a clean environment, an in-process runner, a small study."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from dcmseal.cli.main import app
from tests.cli.runner import Run, run_dcmseal
from tests.part10.dicomfiles import PASSWORD, copy_ct_small, write_part10


@dataclass(frozen=True, slots=True)
class Outcome:
    """One in-process invocation: exit code, stdout and stderr apart (click >= 8.2 keeps them apart)."""

    code: int
    stdout: str
    stderr: str

    @property
    def stderr_flat(self) -> str:
        return " ".join(self.stderr.split())

    @property
    def everything(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> dict[str, Any]:
        import json

        document: dict[str, Any] = json.loads(self.stdout)
        return document


Invoke = Callable[..., Outcome]
Subprocess = Callable[..., Run]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DCMSEAL_* settings or user config leak in; the CLI's logging setup does not leak out."""
    for name in list(os.environ):
        if name.startswith("DCMSEAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.setenv("COLUMNS", "400")
    logger = logging.getLogger("dcmseal")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers = handlers
    logger.setLevel(level)


@pytest.fixture
def invoke() -> Invoke:
    """``invoke("seal", path, ..., input=None, env=None)``: run the typer app in this process."""
    runner = CliRunner()

    def run(*args: str | Path, input: str | None = None, env: dict[str, str] | None = None) -> Outcome:
        result: Result = runner.invoke(
            app, [str(a) for a in args], input=input, env=env, catch_exceptions=False
        )
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def dcmseal(tmp_path: Path) -> Subprocess:
    """``dcmseal(*args, env=None, stdin=None, columns=400)``: run the console script in a fresh process."""

    def run(*args: str | Path, **kwargs: Any) -> Run:
        return run_dcmseal(*args, home=tmp_path / "config-home", **kwargs)

    return run


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "password.txt"
    path.parent.mkdir()
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """CT_small (TIFF preamble) at the top, a synthetic file and one with an MZ preamble in a sub-folder."""
    root = tmp_path / "study"
    copy_ct_small(root / "IM0001")
    write_part10(root / "series2" / "IM0002")
    write_part10(root / "series2" / "IM0003", preamble=b"MZ" + bytes(126))
    return root
