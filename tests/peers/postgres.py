"""A real PostgreSQL server for tests: Debian's binaries, a temporary cluster on 127.0.0.1, stopped by PID.

Use the session fixture from a conftest (``from tests.peers.postgres import postgres_url``), or
:func:`running_postgres` directly. :func:`create_database` gives each test its own empty database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.peers.tools import in_ci

__all__ = [
    "READY_TIMEOUT_S",
    "create_database",
    "find_postgres_bin",
    "free_port",
    "postgres_url",
    "running_postgres",
]

READY_TIMEOUT_S = 30
_STOP_TIMEOUT_S = 30
_INSTALL = "PostgreSQL server binaries not installed: apt-get install postgresql"
_SYSTEM_USER = "postgres"  # created by Debian's postgresql-common; initdb and postgres refuse root


def find_postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb, pg_ctl and postgres.

    Skips the test when there is none, fails it under CI.
    """
    candidates = []
    for bin_dir in Path("/usr/lib/postgresql").glob("*/bin"):
        if all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            with contextlib.suppress(ValueError):
                candidates.append((int(bin_dir.parent.name), bin_dir))
    if candidates:
        return max(candidates)[1]
    if in_ci():
        pytest.fail(f"{_INSTALL} (CI must have every peer; run `make system-deps`)")
    pytest.skip(_INSTALL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(args: list[str]) -> list[str]:
    """Run as the postgres system user when we are root (initdb and postgres refuse to run as root)."""
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root without runuser: cannot start PostgreSQL as the postgres user")
    return [runuser, "-u", _SYSTEM_USER, "--", *args]


def _run(args: list[str], *, cwd: Path, what: str) -> None:
    result = subprocess.run(
        _as_server_user(args), cwd=cwd, capture_output=True, check=False, timeout=120, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def _wait_ready(port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2
            ) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError as error:
            last = error
            time.sleep(0.1)
    raise TimeoutError(f"PostgreSQL on 127.0.0.1:{port} not ready after {timeout} s: {last}")


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(bin_dir: Path, base: Path, data_dir: Path, pid: int | None) -> None:
    """pg_ctl stop -m fast; then SIGKILL the postmaster (by its PID) if it is still there."""
    subprocess.run(
        _as_server_user([str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast", "-w"]),
        cwd=base,
        capture_output=True,
        check=False,
        timeout=_STOP_TIMEOUT_S + 10,
    )
    if pid is None:
        return
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_postgres(*, timeout: float = READY_TIMEOUT_S) -> Iterator[str]:
    """Start a throwaway PostgreSQL cluster; yield ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``.

    The cluster lives in a temporary directory (owned by the postgres user when we are root), accepts
    only TCP on 127.0.0.1 with trust authentication, has fsync off, and is removed afterwards.
    """
    bin_dir = find_postgres_bin()
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="dcmseal-pg-"))
    data_dir = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, user=_SYSTEM_USER, group=_SYSTEM_USER)
    pid: int | None = None
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=base,
            what="initdb",
        )
        port = free_port()
        server_options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(data_dir),
                "-l",
                str(base / "server.log"),
                "-o",
                server_options,
                "-w",
                "-t",
                str(int(timeout)),
            ],
            cwd=base,
            what="pg_ctl start",
        )
        pid = _postmaster_pid(data_dir)
        _wait_ready(port, timeout=timeout)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if data_dir.exists():
            _stop(bin_dir, base, data_dir, pid if pid is not None else _postmaster_pid(data_dir))
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, *, prefix: str = "t") -> str:
    """Create an empty database on the server of ``server_url``; return its URL (same user and host)."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    base = server_url.rsplit("/", 1)[0]
    conninfo = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A running PostgreSQL server for the whole session (its ``postgres`` database; see create_database)."""
    with running_postgres() as url:
        yield url
