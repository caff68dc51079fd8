"""The plain records the registry takes and gives back: media, studies, recipients, recoveries, partners."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from cryptography import x509

from dcmseal.keys.escrow import certificate_fingerprint
from dcmseal.keys.medium_id import MEDIUM_ID_RE

__all__ = [
    "MAX_OPERATOR_CHARS",
    "MAX_STATION_CHARS",
    "MediumDetails",
    "MediumRecord",
    "MediumSummary",
    "PartnerSummary",
    "RecipientRecord",
    "RecoveryRecord",
    "StudyRecord",
    "StudySummary",
]

_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")
_RECIPIENT_KINDS = ("password", "certificate")
MAX_OPERATOR_CHARS = 128
MAX_STATION_CHARS = 255


def _iso(moment: datetime | date | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _check_lengths(**values: tuple[str, int]) -> None:
    """The column sizes (PostgreSQL enforces them; SQLite would not): a longer value is a caller's bug."""
    for name, (value, limit) in values.items():
        if len(value) > limit:
            raise ValueError(f"{name} is longer than {limit} characters")


# -- what a burn station records --------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientRecord:
    """One recipient of a medium: the password, or a certificate named by its SHA-256 fingerprint."""

    kind: str  # "password" or "certificate"
    fingerprint: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _RECIPIENT_KINDS:
            raise ValueError(f"recipient kind must be one of {_RECIPIENT_KINDS}, not {self.kind!r}")
        if self.kind == "certificate" and (
            self.fingerprint is None or not _FINGERPRINT_RE.fullmatch(self.fingerprint)
        ):
            raise ValueError(
                "a certificate recipient needs its SHA-256 fingerprint (64 lowercase hex digits)"
            )
        if self.kind == "password" and (self.fingerprint is not None or self.subject is not None):
            raise ValueError("a password recipient has no fingerprint or subject")

    @classmethod
    def for_password(cls) -> RecipientRecord:
        return cls(kind="password")

    @classmethod
    def for_certificate(cls, certificate: x509.Certificate) -> RecipientRecord:
        return cls(
            kind="certificate",
            fingerprint=certificate_fingerprint(certificate),
            subject=certificate.subject.rfc4514_string(),
        )

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "fingerprint": self.fingerprint, "subject": self.subject}


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyRecord:
    """A study on a medium as a burn station knows it; the registry keeps the patient ID only as an HMAC."""

    study_instance_uid: str
    patient_id: str = field(repr=False)
    study_date: date | None = None
    modalities: tuple[str, ...] = ()
    instance_count: int = 0

    def __post_init__(self) -> None:
        if not self.study_instance_uid:
            raise ValueError("a study needs its Study Instance UID")
        if any(not m or "\\" in m for m in self.modalities):
            raise ValueError("modalities are non-empty DICOM CS values without backslashes")
        if self.instance_count < 0:
            raise ValueError("instance_count must not be negative")
        _check_lengths(
            study_instance_uid=(self.study_instance_uid, 64), modalities=("\\".join(self.modalities), 128)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MediumRecord:
    """Everything the registry keeps about one burned medium (the input of :meth:`Registry.record_medium`)."""

    medium_id: str
    file_set_uid: str
    created_at: datetime
    operator: str
    profile: str
    format: str
    file_count: int
    total_bytes: int
    station: str | None = None  # None: this host's name
    label: str | None = None
    recipients: tuple[RecipientRecord, ...] = ()
    studies: tuple[StudyRecord, ...] = ()
    #: ContentInfo(EnvelopedData) DER from :func:`~dcmseal.keys.escrow.seal_password_for_escrow`.
    escrowed_password: bytes | None = field(default=None, repr=False)
    escrow_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if not MEDIUM_ID_RE.fullmatch(self.medium_id):
            raise ValueError(f"{self.medium_id!r} is not a medium ID (Registry.new_medium_id makes them)")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        if self.file_count < 0 or self.total_bytes < 0:
            raise ValueError("file_count and total_bytes must not be negative")
        if (self.escrowed_password is None) != (self.escrow_fingerprint is None):
            raise ValueError("escrowed_password and escrow_fingerprint go together")
        if self.escrow_fingerprint is not None and not _FINGERPRINT_RE.fullmatch(self.escrow_fingerprint):
            raise ValueError("escrow_fingerprint is a SHA-256 fingerprint (64 lowercase hex digits)")
        if not self.operator.strip():
            raise ValueError("a medium needs its operator")
        _check_lengths(
            file_set_uid=(self.file_set_uid, 64),  # UI
            operator=(self.operator, MAX_OPERATOR_CHARS),
            station=(self.station or "", MAX_STATION_CHARS),
            profile=(self.profile, 64),
            format=(self.format, 16),
            label=(self.label or "", 64),
        )


# -- what the registry answers ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class StudySummary:
    """A study on a medium as the registry keeps it."""

    study_instance_uid: str
    patient_id_hash: str  # HMAC-SHA256 with the registry's key, hex
    study_date: date | None
    modalities: tuple[str, ...]
    instance_count: int

    def to_json(self) -> dict[str, object]:
        return {
            "study_instance_uid": self.study_instance_uid,
            "patient_id_hash": self.patient_id_hash,
            "study_date": _iso(self.study_date),
            "modalities": list(self.modalities),
            "instance_count": self.instance_count,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MediumSummary:
    """One line of ``keys list``."""

    medium_id: str
    created_at: datetime
    operator: str
    station: str
    profile: str
    format: str
    label: str | None
    file_count: int
    total_bytes: int
    has_escrowed_password: bool

    def to_json(self) -> dict[str, object]:
        return {
            "medium_id": self.medium_id,
            "created_at": _iso(self.created_at),
            "operator": self.operator,
            "station": self.station,
            "profile": self.profile,
            "format": self.format,
            "label": self.label,
            "file_count": self.file_count,
            "total_bytes": self.total_bytes,
            "has_escrowed_password": self.has_escrowed_password,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MediumDetails:
    """Everything ``keys show`` says about a medium (never the escrowed password itself)."""

    medium_id: str
    file_set_uid: str
    created_at: datetime
    operator: str
    station: str
    profile: str
    format: str
    label: str | None
    file_count: int
    total_bytes: int
    has_escrowed_password: bool
    escrow_fingerprint: str | None
    recipients: tuple[RecipientRecord, ...]
    studies: tuple[StudySummary, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "medium_id": self.medium_id,
            "file_set_uid": self.file_set_uid,
            "created_at": _iso(self.created_at),
            "operator": self.operator,
            "station": self.station,
            "profile": self.profile,
            "format": self.format,
            "label": self.label,
            "file_count": self.file_count,
            "total_bytes": self.total_bytes,
            "has_escrowed_password": self.has_escrowed_password,
            "escrow_fingerprint": self.escrow_fingerprint,
            "recipients": [r.to_json() for r in self.recipients],
            "studies": [s.to_json() for s in self.studies],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryRecord:
    """A recorded password recovery: who, when, from where, why."""

    id: int
    medium_id: str
    recovered_at: datetime
    operator: str
    station: str
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "medium_id": self.medium_id,
            "recovered_at": _iso(self.recovered_at),
            "operator": self.operator,
            "station": self.station,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerSummary:
    """An address-book entry (the certificate itself comes from :meth:`Registry.get_partner`)."""

    name: str
    fingerprint: str
    subject: str
    not_before: datetime
    not_after: datetime
    added_at: datetime

    def is_valid_at(self, moment: datetime) -> bool:
        """Whether ``moment`` lies in the certificate's validity period (RFC 5280 §4.1.2.5, inclusive)."""
        return self.not_before <= moment <= self.not_after

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "added_at": _iso(self.added_at),
        }
