"""Alembic migrations of the key registry, run by :meth:`dcmseal.keys.registry.Registry.open`.

A new revision is written from Python, against a scratch database at head::

    from alembic import command
    from dcmseal.keys.database import alembic_config
    command.revision(alembic_config(), message="...", autogenerate=True, sqlalchemy_url="sqlite:////tmp/x")

Revisions never import :mod:`dcmseal.keys.models` (the models move on; a revision describes one step).
"""
