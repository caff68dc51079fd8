"""Alembic environment of the key registry: runs revisions on the connection the registry hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from dcmseal.keys.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copy-and-move
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use ``config.attributes["connection"]`` (the registry's, in its transaction), else ``sqlalchemy.url``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: build the Config with alembic_config()")
    engine = create_engine(url)
    try:
        with engine.connect() as new_connection:
            _run(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    # The first revision writes a random HMAC key: a SQL script would carry it in clear text.
    raise RuntimeError("the key registry is migrated online only (Registry.open does it)")
run_migrations_online()
