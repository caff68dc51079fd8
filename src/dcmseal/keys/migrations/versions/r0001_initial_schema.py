"""Initial schema: media with recipients and studies, recoveries, partner certificates, registry meta.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The key of the HMAC-SHA256 that replaces patient IDs (32 bytes, the SHA-256 block size is ample).
PATIENT_ID_HMAC_KEY = "patient_id_hmac_key"


def upgrade() -> None:
    registry_meta = op.create_table(
        "registry_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_registry_meta"),
    )
    op.create_table(
        "media",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("file_set_uid", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("station", sa.String(255), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("escrowed_password", sa.LargeBinary(), nullable=True),
        sa.Column("escrow_fingerprint", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_media"),
    )
    op.create_index("ix_media_created_at", "media", ["created_at"])
    op.create_table(
        "medium_recipients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("medium_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('password', 'certificate')", name="ck_medium_recipients_kind"),
        sa.ForeignKeyConstraint(
            ["medium_id"], ["media.id"], name="fk_medium_recipients_medium_id_media", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_medium_recipients"),
    )
    op.create_index("ix_medium_recipients_medium_id", "medium_recipients", ["medium_id"])
    op.create_table(
        "medium_studies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("medium_id", sa.String(32), nullable=False),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("patient_id_hash", sa.String(64), nullable=False),
        sa.Column("study_date", sa.Date(), nullable=True),
        sa.Column("modalities", sa.String(128), nullable=False),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["medium_id"], ["media.id"], name="fk_medium_studies_medium_id_media", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_medium_studies"),
    )
    op.create_index("ix_medium_studies_medium_id", "medium_studies", ["medium_id"])
    op.create_index("ix_medium_studies_patient_id_hash", "medium_studies", ["patient_id_hash"])
    op.create_index("ix_medium_studies_study_instance_uid", "medium_studies", ["study_instance_uid"])
    op.create_table(
        "recoveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("medium_id", sa.String(32), nullable=False),
        sa.Column("recovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("station", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint("length(trim(reason)) > 0", name="ck_recoveries_reason_not_empty"),
        sa.ForeignKeyConstraint(["medium_id"], ["media.id"], name="fk_recoveries_medium_id_media"),
        sa.PrimaryKeyConstraint("id", name="pk_recoveries"),
    )
    op.create_index("ix_recoveries_medium_id", "recoveries", ["medium_id"])
    op.create_table(
        "partner_certificates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_partner_certificates"),
        sa.UniqueConstraint("name", name="uq_partner_certificates_name"),
    )
    # The key never leaves the database; losing it only stops finding media by patient ID.
    op.bulk_insert(registry_meta, [{"key": PATIENT_ID_HMAC_KEY, "value": secrets.token_bytes(32)}])


def downgrade() -> None:
    op.drop_table("partner_certificates")
    op.drop_index("ix_recoveries_medium_id", table_name="recoveries")
    op.drop_table("recoveries")
    for index in (
        "ix_medium_studies_study_instance_uid",
        "ix_medium_studies_patient_id_hash",
        "ix_medium_studies_medium_id",
    ):
        op.drop_index(index, table_name="medium_studies")
    op.drop_table("medium_studies")
    op.drop_index("ix_medium_recipients_medium_id", table_name="medium_recipients")
    op.drop_table("medium_recipients")
    op.drop_index("ix_media_created_at", table_name="media")
    op.drop_table("media")
    op.drop_table("registry_meta")
