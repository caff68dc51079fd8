"""The registry of burned media, partner certificates and recoveries (SQLAlchemy; SQLite or PostgreSQL)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import URL, Engine, create_engine, exc, func, make_url, select, text
from sqlalchemy.orm import Session, selectinload

from dcmseal.errors import InputError, PeerError, UsageError
from dcmseal.fsutil import make_dirs
from dcmseal.keys.database import (
    BUSY_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    MIGRATION_LOCK_KEY,
    SQLITE_BEGIN_OPTION,
    alembic_config,
    create_private_file,
    default_registry_path,
    install_sqlite_hooks,
)
from dcmseal.keys.escrow import certificate_fingerprint, open_escrowed_password
from dcmseal.keys.medium_id import CROCKFORD, MEDIUM_ID_CHARS, MEDIUM_ID_PREFIX, normalize_medium_id
from dcmseal.keys.models import (
    Medium,
    MediumRecipient,
    MediumStudy,
    PartnerCertificate,
    Recovery,
    RegistryMeta,
)
from dcmseal.keys.records import (
    MAX_OPERATOR_CHARS,
    MAX_STATION_CHARS,
    MediumDetails,
    MediumRecord,
    MediumSummary,
    PartnerSummary,
    RecipientRecord,
    RecoveryRecord,
    StudyRecord,
    StudySummary,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "MEDIUM_ID_PREFIX",
    "MediumDetails",
    "MediumRecord",
    "MediumSummary",
    "PartnerSummary",
    "RecipientRecord",
    "RecoveryRecord",
    "Registry",
    "StudyRecord",
    "StudySummary",
    "alembic_config",
    "default_registry_path",
]

logger = logging.getLogger(__name__)

_PARTNER_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PATIENT_ID_HMAC_KEY = "patient_id_hmac_key"  # written by revision 0001


def _hostname() -> str:
    return socket.gethostname()[:MAX_STATION_CHARS]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _summary(row: Medium) -> MediumSummary:
    return MediumSummary(
        medium_id=row.id,
        created_at=row.created_at,
        operator=row.operator,
        station=row.station,
        profile=row.profile,
        format=row.format,
        label=row.label,
        file_count=row.file_count,
        total_bytes=row.total_bytes,
        has_escrowed_password=row.escrowed_password is not None,
    )


def _recovery(row: Recovery) -> RecoveryRecord:
    return RecoveryRecord(
        id=row.id,
        medium_id=row.medium_id,
        recovered_at=row.recovered_at,
        operator=row.operator,
        station=row.station,
        reason=row.reason,
    )


def _partner(row: PartnerCertificate) -> PartnerSummary:
    return PartnerSummary(
        name=row.name,
        fingerprint=row.fingerprint,
        subject=row.subject,
        not_before=row.not_before,
        not_after=row.not_after,
        added_at=row.added_at,
    )


def _check_partner_name(name: str) -> str:
    if not _PARTNER_NAME_RE.fullmatch(name):
        raise UsageError(f"partner name {name!r}: use 1 to 64 letters, digits, dots, underscores or hyphens")
    return name


class Registry:
    """The key registry: media burned, their escrowed passwords, recoveries, partner certificates.

    Open with :meth:`Registry.open`; use as a context manager or call :meth:`close`. Safe to share
    between threads; several processes and stations may use one database at once. Every method runs
    in its own transaction and returns plain frozen dataclasses.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        display_url: str,
        password: str | None,
        rng: Callable[[int], bytes],
        now: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._is_sqlite = engine.dialect.name == "sqlite"
        # SQLite writers BEGIN IMMEDIATE; the option engine shares the pool and the hooks.
        self._write_engine = (
            engine.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            if self._is_sqlite
            else engine
        )
        self._display_url = display_url
        self._password = password
        self._rng = rng
        self._now = now
        self._patient_key = b""

    # -- opening and closing ------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        now: Callable[[], datetime] = _utc_now,
    ) -> Registry:
        """Open the registry at ``url``, creating or upgrading its schema (Alembic, to head).

        Parameters
        ----------
        url
            A SQLAlchemy URL (``sqlite:////path/registry.sqlite3``,
            ``postgresql+psycopg://user@host:5432/db``; plain ``postgresql://`` means psycopg 3), or
            None for the SQLite file from :func:`default_registry_path`.
        rng, now
            Randomness for medium IDs and the clock for recorded times (tests inject them).

        Raises
        ------
        UsageError
            ``url`` is not a database URL SQLAlchemy can use.
        PeerError
            The database is unreachable, refuses us, or has a schema newer than this dcmseal.
        """
        if url is None:
            path = default_registry_path()
            make_dirs(path.parent)
            sa_url = URL.create("sqlite", database=str(path))
        else:
            try:
                sa_url = make_url(url)
            except exc.ArgumentError:
                # The message would repeat the URL, password included.
                raise UsageError(
                    "the registry URL is not a database URL "
                    "(e.g. sqlite:////path/registry.sqlite3 or postgresql+psycopg://user@host/db)"
                ) from None
        if sa_url.drivername in ("postgresql", "postgres"):
            sa_url = sa_url.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver dcmseal ships
        display_url = sa_url.render_as_string(hide_password=True)
        options: dict[str, object] = {}
        if sa_url.get_backend_name() == "sqlite":
            database = sa_url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                create_private_file(Path(database), display_url)
        elif sa_url.get_backend_name() == "postgresql":
            options["pool_pre_ping"] = True
            if "connect_timeout" not in sa_url.query:
                options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        try:
            engine = create_engine(sa_url, **options)
        except ImportError as error:
            raise UsageError(
                f"registry {display_url}: the database driver {error.name} is not installed"
            ) from None
        except (exc.ArgumentError, exc.NoSuchModuleError):
            raise UsageError(
                f"registry {display_url}: SQLAlchemy does not know databases of kind {sa_url.drivername}"
            ) from None
        if engine.dialect.name == "sqlite":
            install_sqlite_hooks(engine)
        registry = cls(engine, display_url=display_url, password=sa_url.password, rng=rng, now=now)
        try:
            registry._upgrade_schema()
            registry._load_patient_key()
        except BaseException:
            engine.dispose()
            raise
        logger.info("registry %s open", display_url)
        return registry

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return self._display_url

    def close(self) -> None:
        """Close every pooled connection; the registry cannot be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self._display_url!r})"

    # -- plumbing -----------------------------------------------------------------------------------
    def _peer_error(self, error: exc.DBAPIError) -> PeerError:
        reason = " ".join(str(error.orig if error.orig is not None else error).split())
        if self._password:
            reason = reason.replace(self._password, "***")
        logger.debug("registry %s: %s", self._display_url, type(error.orig).__name__)
        return PeerError(f"registry {self._display_url}: {reason}")

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Session]:
        """One transaction, committed when the block ends cleanly; driver errors become PeerError.

        IntegrityError is left to the caller, which knows what the constraint means.
        """
        engine = self._write_engine if write else self._engine
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                yield session
        except exc.IntegrityError:
            raise
        except exc.DBAPIError as error:
            raise self._peer_error(error) from None

    def _upgrade_schema(self) -> None:
        from alembic import command
        from alembic.util import CommandError

        config = alembic_config()
        try:
            with self._write_engine.connect() as connection, connection.begin():
                if connection.dialect.name == "postgresql":
                    # Stations opening a fresh database at once: one migrates, the others wait and find head.
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except exc.DBAPIError as error:
            raise self._peer_error(error) from None
        except CommandError as error:
            raise PeerError(
                f"registry {self._display_url}: its schema is not one this dcmseal knows ({error}); "
                "upgrade dcmseal"
            ) from None

    def _load_patient_key(self) -> None:
        with self._transaction(write=False) as session:
            row = session.get(RegistryMeta, _PATIENT_ID_HMAC_KEY)
            if row is None:
                raise PeerError(
                    f"registry {self._display_url}: the patient ID key is missing (damaged registry)"
                )
            self._patient_key = bytes(row.value)

    # -- media --------------------------------------------------------------------------------------
    def new_medium_id(self) -> str:
        """A fresh medium ID: ``DCMS-`` and 12 Crockford base32 characters of 60 random bits.

        Random, not sequential, so burn stations never coordinate; :meth:`record_medium` refuses the
        (astronomically unlikely) duplicate.
        """
        value = int.from_bytes(self._rng(8), "big") >> 4
        chars = [CROCKFORD[(value >> (5 * i)) & 0x1F] for i in reversed(range(MEDIUM_ID_CHARS))]
        return MEDIUM_ID_PREFIX + "".join(chars)

    def patient_id_hash(self, patient_id: str) -> str:
        """HMAC-SHA256 of a Patient ID (LO, padding spaces stripped) with this registry's key, hex.

        The registry never stores a Patient ID; this finds media by one without revealing it.
        """
        return hmac.new(self._patient_key, patient_id.strip(" ").encode("utf-8"), hashlib.sha256).hexdigest()

    def record_medium(self, record: MediumRecord) -> None:
        """Insert a medium with its recipients and studies, in one transaction.

        Raises
        ------
        InputError
            A medium with this ID is already recorded.
        PeerError
            The database is unreachable or refuses.
        """
        row = Medium(
            id=record.medium_id,
            file_set_uid=record.file_set_uid,
            created_at=record.created_at,
            operator=record.operator,
            station=record.station or _hostname(),
            profile=record.profile,
            format=record.format,
            label=record.label,
            file_count=record.file_count,
            total_bytes=record.total_bytes,
            escrowed_password=record.escrowed_password,
            escrow_fingerprint=record.escrow_fingerprint,
            recipients=[
                MediumRecipient(kind=r.kind, fingerprint=r.fingerprint, subject=r.subject)
                for r in record.recipients
            ],
            studies=[
                MediumStudy(
                    study_instance_uid=s.study_instance_uid,
                    patient_id_hash=self.patient_id_hash(s.patient_id),
                    study_date=s.study_date,
                    modalities="\\".join(s.modalities),
                    instance_count=s.instance_count,
                )
                for s in record.studies
            ],
        )
        try:
            with self._transaction(write=True) as session:
                session.add(row)
        except exc.IntegrityError:
            raise InputError(f"medium {record.medium_id} is already in the registry") from None
        logger.info("medium %s recorded", record.medium_id)

    def forget_medium(self, medium_id: str) -> None:
        """Remove the record of a medium that was never completely written (its burn failed after recording).

        Only a medium nobody recovered a password of: a recovery is an event that stays on record.
        """
        medium_id = normalize_medium_id(medium_id)
        with self._transaction(write=True) as session:
            row = session.get(Medium, medium_id)
            if row is None:
                return
            if session.scalar(
                select(func.count()).select_from(Recovery).where(Recovery.medium_id == medium_id)
            ):
                raise InputError(f"medium {medium_id} has recoveries on record: it stays in the registry")
            session.delete(row)
        logger.info("medium %s forgotten (never completely written)", medium_id)

    def list_media(
        self,
        *,
        limit: int = 100,
        patient_id: str | None = None,
        study_instance_uid: str | None = None,
    ) -> list[MediumSummary]:
        """The most recent media first, optionally only those holding a patient's or a study's data."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        statement = select(Medium).order_by(Medium.created_at.desc(), Medium.id).limit(limit)
        if patient_id is not None:
            hashed = self.patient_id_hash(patient_id)
            statement = statement.where(
                Medium.id.in_(select(MediumStudy.medium_id).where(MediumStudy.patient_id_hash == hashed))
            )
        if study_instance_uid is not None:
            statement = statement.where(
                Medium.id.in_(
                    select(MediumStudy.medium_id).where(MediumStudy.study_instance_uid == study_instance_uid)
                )
            )
        with self._transaction(write=False) as session:
            return [_summary(row) for row in session.scalars(statement)]

    def get_medium(self, medium_id: str) -> MediumDetails:
        """Everything recorded about one medium.

        Raises
        ------
        InputError
            No such medium.
        """
        medium_id = normalize_medium_id(medium_id)
        with self._transaction(write=False) as session:
            row = session.get(
                Medium, medium_id, options=[selectinload(Medium.recipients), selectinload(Medium.studies)]
            )
            if row is None:
                raise InputError(f"no medium {medium_id} in the registry")
            return MediumDetails(
                medium_id=row.id,
                file_set_uid=row.file_set_uid,
                created_at=row.created_at,
                operator=row.operator,
                station=row.station,
                profile=row.profile,
                format=row.format,
                label=row.label,
                file_count=row.file_count,
                total_bytes=row.total_bytes,
                has_escrowed_password=row.escrowed_password is not None,
                escrow_fingerprint=row.escrow_fingerprint,
                recipients=tuple(
                    RecipientRecord(kind=r.kind, fingerprint=r.fingerprint, subject=r.subject)
                    for r in row.recipients
                ),
                studies=tuple(
                    StudySummary(
                        study_instance_uid=s.study_instance_uid,
                        patient_id_hash=s.patient_id_hash,
                        study_date=s.study_date,
                        modalities=tuple(s.modalities.split("\\")) if s.modalities else (),
                        instance_count=s.instance_count,
                    )
                    for s in row.studies
                ),
            )

    # -- recovery -----------------------------------------------------------------------------------
    def recover_password(
        self,
        medium_id: str,
        *,
        private_key: rsa.RSAPrivateKey,
        certificate: x509.Certificate,
        operator: str,
        reason: str,
        station: str | None = None,
    ) -> str:
        """Open a medium's escrowed password with the escrow key and record the recovery.

        The password is opened inside the transaction that records the recovery: a recovery that
        fails is not recorded, and a password is returned only once its recovery is committed.

        Raises
        ------
        UsageError
            Empty ``reason`` or ``operator``.
        InputError
            No such medium, no escrowed password, or ``certificate`` is not the escrow certificate
            the medium was sealed to.
        DecryptionError
            ``private_key`` does not open the escrowed password.
        PeerError
            The database is unreachable or refuses (nothing is returned then).
        """
        if not reason.strip():
            raise UsageError("a recovery needs a reason; it is recorded with the recovery")
        if not operator.strip():
            raise UsageError("a recovery needs the operator's name; it is recorded with the recovery")
        if len(operator.strip()) > MAX_OPERATOR_CHARS or len(station or "") > MAX_STATION_CHARS:
            raise UsageError(
                f"operator names go up to {MAX_OPERATOR_CHARS} characters, station names to {MAX_STATION_CHARS}"
            )
        medium_id = normalize_medium_id(medium_id)
        fingerprint = certificate_fingerprint(certificate)
        with self._transaction(write=True) as session:
            row = session.get(Medium, medium_id)
            if row is None:
                raise InputError(f"no medium {medium_id} in the registry")
            if row.escrowed_password is None or row.escrow_fingerprint is None:
                raise InputError(f"medium {medium_id} was burned without an escrowed password")
            if not hmac.compare_digest(row.escrow_fingerprint, fingerprint):
                raise InputError(
                    f"medium {medium_id} was sealed to the escrow certificate {row.escrow_fingerprint}, "
                    f"not to {fingerprint}"
                )
            password = open_escrowed_password(row.escrowed_password, private_key, certificate)
            try:
                text_password = password.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"medium {medium_id}: the escrowed password is not text") from None
            session.add(
                Recovery(
                    medium_id=medium_id,
                    recovered_at=self._now(),
                    operator=operator.strip(),
                    station=station or _hostname(),
                    reason=reason.strip(),
                )
            )
        logger.info("medium %s: password recovered by %s", medium_id, operator.strip())
        return text_password

    def recoveries(self, medium_id: str) -> list[RecoveryRecord]:
        """Every recorded recovery of a medium's password, oldest first.

        Raises
        ------
        InputError
            No such medium.
        """
        medium_id = normalize_medium_id(medium_id)
        with self._transaction(write=False) as session:
            if session.get(Medium, medium_id) is None:
                raise InputError(f"no medium {medium_id} in the registry")
            rows = session.scalars(
                select(Recovery).where(Recovery.medium_id == medium_id).order_by(Recovery.id)
            )
            return [_recovery(row) for row in rows]

    # -- partner certificates -----------------------------------------------------------------------
    def add_partner(
        self, name: str, certificate: x509.Certificate, *, replace: bool = False
    ) -> PartnerSummary:
        """Put a partner's certificate in the address book under ``name``.

        Validity is recorded, not judged: the burn decides whether an expired certificate may be used.

        Raises
        ------
        UsageError
            ``name`` is not 1 to 64 of ``[A-Za-z0-9._-]``.
        InputError
            ``name`` is taken and ``replace`` is false, or the certificate is not RSA.
        """
        name = _check_partner_name(name)
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise InputError(f"partner {name}: only RSA certificates can be recipients (PS3.15 D.1)")
        values = {
            "certificate": certificate.public_bytes(serialization.Encoding.DER),
            "fingerprint": certificate_fingerprint(certificate),
            "subject": certificate.subject.rfc4514_string(),
            "not_before": certificate.not_valid_before_utc,
            "not_after": certificate.not_valid_after_utc,
            "added_at": self._now(),
        }
        taken = InputError(
            f"partner {name} is already in the address book (`dcmseal recipients add --replace` changes it)"
        )
        try:
            with self._transaction(write=True) as session:
                row = session.scalar(select(PartnerCertificate).where(PartnerCertificate.name == name))
                if row is None:
                    row = PartnerCertificate(name=name, **values)
                    session.add(row)
                elif not replace:
                    raise taken
                else:
                    for key, value in values.items():
                        setattr(row, key, value)
                session.flush()
                summary = _partner(row)
        except exc.IntegrityError:  # another station added the name between our read and our insert
            raise taken from None
        logger.info("partner %s: certificate %s", name, summary.fingerprint)
        return summary

    def list_partners(self) -> list[PartnerSummary]:
        """The address book, by name."""
        with self._transaction(write=False) as session:
            rows = session.scalars(select(PartnerCertificate).order_by(PartnerCertificate.name))
            return [_partner(row) for row in rows]

    def get_partner(self, name: str) -> x509.Certificate:
        """The certificate filed under ``name``.

        Raises
        ------
        InputError
            No partner of that name.
        """
        name = _check_partner_name(name)
        with self._transaction(write=False) as session:
            der = session.scalar(
                select(PartnerCertificate.certificate).where(PartnerCertificate.name == name)
            )
        if der is None:
            raise InputError(f"no partner {name} in the address book")
        return x509.load_der_x509_certificate(bytes(der))

    def remove_partner(self, name: str) -> None:
        """Take ``name`` out of the address book (media already burned for it are unaffected).

        Raises
        ------
        InputError
            No partner of that name.
        """
        name = _check_partner_name(name)
        with self._transaction(write=True) as session:
            row = session.scalar(select(PartnerCertificate).where(PartnerCertificate.name == name))
            if row is None:
                raise InputError(f"no partner {name} in the address book")
            session.delete(row)
        logger.info("partner %s removed", name)

    def count_media(self) -> int:
        """How many media are recorded."""
        with self._transaction(write=False) as session:
            return int(session.scalar(select(func.count()).select_from(Medium)) or 0)
