"""The registry's tables as SQLAlchemy declarative models (the Alembic migrations create them)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "Medium",
    "MediumRecipient",
    "MediumStudy",
    "PartnerCertificate",
    "Recovery",
    "RegistryMeta",
    "UtcDateTime",
]

#: Constraint names are part of the schema: migrations refer to them, so they must not depend on the backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite keeps no offset: values are stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RegistryMeta(Base):
    """Per-registry values, such as the HMAC key for patient IDs (created by the first migration)."""

    __tablename__ = "registry_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Medium(Base):
    """A burned medium. Patient data is kept to what finds the medium again: see :class:`MediumStudy`."""

    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    file_set_uid: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
    operator: Mapped[str] = mapped_column(String(128), nullable=False)
    station: Mapped[str] = mapped_column(String(255), nullable=False)
    profile: Mapped[str] = mapped_column(String(64), nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    label: Mapped[str | None] = mapped_column(String(64))
    file_count: Mapped[int] = mapped_column(Integer, nullable=False)
    total_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: ContentInfo(EnvelopedData) DER addressed to the escrow certificate; NULL when no password.
    escrowed_password: Mapped[bytes | None] = mapped_column(LargeBinary)
    escrow_fingerprint: Mapped[str | None] = mapped_column(String(64))

    recipients: Mapped[list[MediumRecipient]] = relationship(
        back_populates="medium", cascade="all, delete-orphan", order_by="MediumRecipient.id"
    )
    studies: Mapped[list[MediumStudy]] = relationship(
        back_populates="medium", cascade="all, delete-orphan", order_by="MediumStudy.id"
    )


class MediumRecipient(Base):
    """Who can open a medium: the password, or a certificate by fingerprint."""

    __tablename__ = "medium_recipients"
    __table_args__ = (CheckConstraint("kind IN ('password', 'certificate')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    medium_id: Mapped[str] = mapped_column(
        ForeignKey("media.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(Text)

    medium: Mapped[Medium] = relationship(back_populates="recipients")


class MediumStudy(Base):
    """A study on a medium: UIDs, date, modalities, counts, and the patient ID only as an HMAC."""

    __tablename__ = "medium_studies"
    __table_args__ = (
        Index("ix_medium_studies_patient_id_hash", "patient_id_hash"),
        Index("ix_medium_studies_study_instance_uid", "study_instance_uid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    medium_id: Mapped[str] = mapped_column(
        ForeignKey("media.id", ondelete="CASCADE"), nullable=False, index=True
    )
    study_instance_uid: Mapped[str] = mapped_column(String(64), nullable=False)
    patient_id_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    study_date: Mapped[date | None] = mapped_column(Date)
    modalities: Mapped[str] = mapped_column(String(128), nullable=False)  # DICOM multi-value: CT\PT
    instance_count: Mapped[int] = mapped_column(Integer, nullable=False)

    medium: Mapped[Medium] = relationship(back_populates="studies")


class Recovery(Base):
    """One password recovery with the escrow key: who, when, from where, why."""

    __tablename__ = "recoveries"
    __table_args__ = (CheckConstraint("length(trim(reason)) > 0", name="reason_not_empty"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    medium_id: Mapped[str] = mapped_column(ForeignKey("media.id"), nullable=False, index=True)
    recovered_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    operator: Mapped[str] = mapped_column(String(128), nullable=False)
    station: Mapped[str] = mapped_column(String(255), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)


class PartnerCertificate(Base):
    """The address book: a partner's certificate under a short name (``burn --to NAME``)."""

    __tablename__ = "partner_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    certificate: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # DER
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
