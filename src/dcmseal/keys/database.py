"""How the registry's database is set up: its default place and private file, SQLite's settings, the migrations."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs
from sqlalchemy import Connection, Engine, event

from dcmseal.errors import PeerError
from dcmseal.fsutil import open_state_file

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "BUSY_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "MIGRATION_LOCK_KEY",
    "SQLITE_BEGIN_OPTION",
    "alembic_config",
    "create_private_file",
    "default_registry_path",
    "install_sqlite_hooks",
]

#: How long a SQLite writer waits for another burn station's transaction (they last milliseconds).
BUSY_TIMEOUT_S = 30
#: How long to wait for a PostgreSQL server before calling it unreachable.
CONNECT_TIMEOUT_S = 10
#: pg_advisory_xact_lock key that serialises schema upgrades from several stations ("dcmseal").
MIGRATION_LOCK_KEY = 0x64636D7365616C
SQLITE_BEGIN_OPTION = "dcmseal_sqlite_begin"
_WAL_RETRY_S = 0.02


def default_registry_path() -> Path:
    """The SQLite registry used when no URL is given: ``<user data dir>/dcmseal/registry.sqlite3``."""
    return platformdirs.user_data_path("dcmseal") / "registry.sqlite3"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config for the registry's migrations (shipped in ``dcmseal.keys.migrations``).

    ``url`` is only for working on migrations by hand; :meth:`Registry.open` hands Alembic its own
    connection instead.
    """
    from alembic.config import Config  # Alembic costs a second to import; only opening needs it

    config = Config()
    config.set_main_option("script_location", "dcmseal.keys:migrations")
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolation
    return config


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """Switch to write-ahead logging: readers never block the writer, nor it them.

    Two connections switching a new file at once can get SQLITE_BUSY at once: SQLite skips the busy
    handler where waiting could deadlock (both hold SHARED, both want EXCLUSIVE). So retry, within
    the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_RETRY_S)


def install_sqlite_hooks(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys, and transactions SQLAlchemy controls (BEGIN IMMEDIATE to write)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN handling is off; see _on_begin
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            _enable_wal(cursor)
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A writer takes the write lock first thing, so it waits (busy_timeout) instead of failing
        # when a read lock cannot be upgraded (SQLITE_BUSY_SNAPSHOT under WAL).
        statement = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN")
        connection.exec_driver_sql(str(statement))


def create_private_file(path: Path, display_url: str) -> None:
    """Create the SQLite file owner-only (group too in a shared station folder) before SQLite does (it would
    use the umask); -wal and -shm follow it."""
    try:
        os.close(open_state_file(path, os.O_RDWR))
    except OSError as error:
        raise PeerError(f"registry {display_url}: {error.strerror}") from None
