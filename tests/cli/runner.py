"""Run the installed ``dcmseal`` console script in a fresh process, stdout and stderr kept apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DCMSEAL", "Run", "clean_environment", "run_dcmseal"]

#: The console script of the virtual environment running the tests.
DCMSEAL = Path(sys.executable).with_name("dcmseal")


@dataclass(frozen=True, slots=True)
class Run:
    """One finished ``dcmseal`` process."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_flat(self) -> str:
        """stderr with line breaks and runs of spaces collapsed (rich wraps long lines)."""
        return " ".join(self.stderr.split())

    def json(self) -> dict[str, Any]:
        """stdout as exactly one JSON document."""
        document: dict[str, Any] = json.loads(self.stdout)
        return document


def clean_environment(home: Path, **extra: str) -> dict[str, str]:
    """The current environment without DCMSEAL_* settings, with a private config dir and wide columns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCMSEAL_")}
    env["XDG_CONFIG_HOME"] = str(home)
    env["COLUMNS"] = "400"
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(extra)
    return env


def run_dcmseal(
    *args: str | Path,
    home: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    columns: int | None = 400,
    timeout: float = 120,
) -> Run:
    """Run ``dcmseal *args``; stdin is ``stdin`` or /dev/null (never a terminal)."""
    environment = clean_environment(home, **(env or {}))
    if columns is None:
        environment.pop("COLUMNS", None)
    else:
        environment["COLUMNS"] = str(columns)
    argv = [str(DCMSEAL), *(str(a) for a in args)]
    completed = subprocess.run(
        argv,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
    return Run(tuple(argv[1:]), completed.returncode, completed.stdout, completed.stderr)
