"""Alembic revisions of the key registry, oldest first by ``down_revision``."""
