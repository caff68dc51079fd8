"""Run the installed ``dcmseal`` console script in a fresh process, stdout and stderr kept apart."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DCMSEAL", "Run", "clean_environment", "run_dcmseal", "run_on_terminal"]

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


def run_on_terminal(
    args: list[str], home: Path, answers: Callable[[str], str | None], timeout_s: float = 60
) -> tuple[int, str]:
    """Run ``dcmseal`` on a pseudo-terminal; ``answers(screen_so_far)`` returns a line to type or None."""
    env = clean_environment(home, XDG_DATA_HOME=str(home / "data"))
    master, slave = pty.openpty()
    # Its own session with the pseudo-terminal as controlling terminal: getpass (a prompt without echo) reads
    # /dev/tty, which must be this terminal, not the one pytest was started from (if any).
    process = subprocess.Popen(
        [str(DCMSEAL), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(slave)
    screen = ""
    typed = 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                screen += chunk.decode(errors="replace")
                line = answers(screen[typed:])
                if line is not None:
                    os.write(master, line.encode() + b"\r")
                    typed = len(screen)
            elif process.poll() is not None:
                break
        return process.wait(timeout=10), screen
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
