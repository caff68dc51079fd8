"""Tests of the key registry on SQLite and on a real PostgreSQL server: schema, media, recovery, partners."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import multiprocessing
import re
import stat
import threading
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from dcmseal.errors import DecryptionError, ExitCode, InputError, PeerError, UsageError
from dcmseal.keys.escrow import seal_password_for_escrow
from dcmseal.keys.models import Base
from dcmseal.keys.registry import (
    MediumRecord,
    RecipientRecord,
    Registry,
    StudyRecord,
    alembic_config,
)
from tests.conftest import RsaIdentityFactory
from tests.keys.conftest import Escrow
from tests.peers.postgres import create_database, free_port

NOW = datetime(2026, 5, 20, 9, 30, 0, tzinfo=UTC)
PATIENT_ID = "PAT-0042-XY"
PATIENT_NAME = "Doe^Jane"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
MEDIUM_PASSWORD = "velvet-orbit-Kestrel-amber-lantern-7"
MEDIA_PER_WORKER = 50
TABLES = {
    "registry_meta",
    "media",
    "medium_recipients",
    "medium_studies",
    "recoveries",
    "partner_certificates",
}

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.interop),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database: a SQLite file, or a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return create_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    with Registry.open(db_url, now=lambda: NOW) as opened:
        yield opened


@pytest.fixture
def engine(db_url: str, registry: Registry) -> Iterator[Engine]:
    """A second, independent way into the registry's database, to look at what was really stored."""
    raw = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        yield raw
    finally:
        raw.dispose()


def _record(
    medium_id: str,
    *,
    escrow: Escrow | None = None,
    created_at: datetime = NOW,
    operator: str = "alice",
    patient_id: str = PATIENT_ID,
    study_uid: str = STUDY_UID,
) -> MediumRecord:
    return MediumRecord(
        medium_id=medium_id,
        file_set_uid="1.2.826.0.1.3680043.8.498.99." + str(int(medium_id[5:], 36)),  # unique per medium
        created_at=created_at,
        operator=operator,
        station="burn-01",
        profile="STD-GEN-SEC-CD",
        format="iso",
        label="CT ABDOMEN",
        file_count=12,
        total_bytes=6_291_456,
        recipients=(
            (RecipientRecord.for_password(), RecipientRecord.for_certificate(escrow.certificate))
            if escrow is not None
            else (RecipientRecord.for_password(),)
        ),
        studies=(
            StudyRecord(
                study_instance_uid=study_uid,
                patient_id=patient_id,
                study_date=date(2026, 5, 19),
                modalities=("CT", "SR"),
                instance_count=11,
            ),
        ),
        escrowed_password=(
            seal_password_for_escrow(MEDIUM_PASSWORD.encode("ascii"), escrow.certificate)
            if escrow is not None
            else None
        ),
        escrow_fingerprint=escrow.identity.fingerprint if escrow is not None else None,
    )


# -- schema ---------------------------------------------------------------------------------------------------
def test_schema_is_created_by_alembic_at_head(registry: Registry, engine: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
        assert set(inspect(connection).get_table_names()) == TABLES | {"alembic_version"}
        # The models and the migrations describe the same schema.
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_reopening_keeps_data_and_schema(db_url: str, registry: Registry, engine: Engine) -> None:
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id))
    key_before = registry.patient_id_hash(PATIENT_ID)
    with Registry.open(db_url) as again:
        assert [m.medium_id for m in again.list_media()] == [medium_id]
        assert again.patient_id_hash(PATIENT_ID) == key_before
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_schema_newer_than_this_dcmseal_is_refused(db_url: str, registry: Registry, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(PeerError, match="upgrade dcmseal"):
        Registry.open(db_url)


def test_no_patient_name_column_anywhere(registry: Registry, engine: Engine) -> None:
    columns = {
        f"{table}.{column['name']}"
        for table in inspect(engine).get_table_names()
        for column in inspect(engine).get_columns(table)
    }
    assert "medium_studies.patient_id_hash" in columns
    assert [c for c in columns if "patient" in c] == ["medium_studies.patient_id_hash"]
    assert [c for c in columns if "name" in c.split(".")[1]] == ["partner_certificates.name"]
    assert not [c for c in columns if re.search(r"birth|sex|address|phone|dob", c)]


def test_patient_id_is_stored_only_as_an_hmac(
    db_url: str, registry: Registry, engine: Engine, escrow: Escrow
) -> None:
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id, escrow=escrow))
    with engine.connect() as connection:
        key = connection.execute(
            text("SELECT value FROM registry_meta WHERE key = 'patient_id_hmac_key'")
        ).scalar_one()
        stored = connection.execute(text("SELECT patient_id_hash FROM medium_studies")).scalar_one()
        everything = [
            value
            for table in TABLES
            for row in connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 (our table names)
            for value in row
        ]
    assert len(bytes(key)) == 32
    assert stored == hmac.new(bytes(key), PATIENT_ID.encode(), hashlib.sha256).hexdigest()
    assert registry.get_medium(medium_id).studies[0].patient_id_hash == stored
    for value in everything:
        if isinstance(value, str):
            assert PATIENT_ID not in value
        elif isinstance(value, bytes | memoryview):
            assert PATIENT_ID.encode() not in bytes(value)
            assert MEDIUM_PASSWORD.encode() not in bytes(value)
    if db_url.startswith("sqlite"):  # the raw file and its write-ahead log
        path = Path(db_url.removeprefix("sqlite:///"))
        for part in (path, path.with_name(path.name + "-wal")):
            if part.exists():
                raw = part.read_bytes()
                assert PATIENT_ID.encode() not in raw
                assert MEDIUM_PASSWORD.encode() not in raw


def test_two_registries_hash_the_same_patient_differently(tmp_path: Path) -> None:
    with (
        Registry.open(f"sqlite:///{tmp_path / 'a.sqlite3'}") as first,
        Registry.open(f"sqlite:///{tmp_path / 'b.sqlite3'}") as second,
    ):
        assert first.patient_id_hash(PATIENT_ID) != second.patient_id_hash(PATIENT_ID)
        assert first.patient_id_hash(PATIENT_ID + "  ") == first.patient_id_hash(PATIENT_ID)  # LO padding


# -- media ----------------------------------------------------------------------------------------------------
def test_medium_ids_are_crockford_base32_of_60_random_bits(tmp_path: Path) -> None:
    with Registry.open(
        f"sqlite:///{tmp_path / 'r.sqlite3'}", rng=lambda n: bytes.fromhex("0123456789abcdef")
    ) as r:
        assert r.new_medium_id() == "DCMS-04HMASW9NF6Y"  # 0x0123456789abcde in 5-bit groups
    with Registry.open(f"sqlite:///{tmp_path / 'r.sqlite3'}") as r:
        ids = {r.new_medium_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"DCMS-[0-9A-HJKMNP-TV-Z]{12}", i) for i in ids)


def test_record_then_get_gives_back_every_field(registry: Registry, escrow: Escrow) -> None:
    medium_id = registry.new_medium_id()
    record = _record(medium_id, escrow=escrow)
    registry.record_medium(record)
    details = registry.get_medium(medium_id)
    assert details.medium_id == medium_id
    assert details.file_set_uid == record.file_set_uid
    assert details.created_at == NOW
    assert details.created_at.tzinfo is not None
    assert (details.operator, details.station, details.profile, details.format, details.label) == (
        "alice",
        "burn-01",
        "STD-GEN-SEC-CD",
        "iso",
        "CT ABDOMEN",
    )
    assert (details.file_count, details.total_bytes) == (12, 6_291_456)
    assert details.has_escrowed_password
    assert details.escrow_fingerprint == escrow.identity.fingerprint
    assert details.recipients == record.recipients
    [study] = details.studies
    assert study.study_instance_uid == STUDY_UID
    assert study.study_date == date(2026, 5, 19)
    assert study.modalities == ("CT", "SR")
    assert study.instance_count == 11
    document = json.dumps(details.to_json())
    assert PATIENT_ID not in document
    assert '"escrowed_password"' not in document


def test_records_that_would_not_fit_the_columns_are_a_bug() -> None:
    medium_id = "DCMS-0000000001AB"
    with pytest.raises(ValueError, match="operator is longer than 128 characters"):
        dataclasses.replace(_record(medium_id), operator="o" * 129)
    with pytest.raises(ValueError, match="not a medium ID"):
        dataclasses.replace(_record(medium_id), medium_id="DCMS-1234")
    with pytest.raises(ValueError, match="go together"):
        dataclasses.replace(_record(medium_id), escrow_fingerprint="0" * 64)
    with pytest.raises(ValueError, match="timezone-aware"):
        dataclasses.replace(_record(medium_id), created_at=datetime(2026, 1, 1))


def test_lookup_forgives_case_and_crockford_lookalikes(registry: Registry) -> None:
    registry.record_medium(_record("DCMS-0000000001AB"))
    assert registry.get_medium("dcms-ooooooooolab").medium_id == "DCMS-0000000001AB"


def test_unknown_medium_is_an_input_error(registry: Registry) -> None:
    with pytest.raises(InputError, match=r"^no medium DCMS-ZZZZZZZZZZZZ in the registry$"):
        registry.get_medium("DCMS-ZZZZZZZZZZZZ")
    with pytest.raises(InputError, match="no medium"):
        registry.recoveries("DCMS-ZZZZZZZZZZZZ")


def test_duplicate_medium_id_is_refused(registry: Registry) -> None:
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id, operator="alice"))
    with pytest.raises(InputError, match=f"medium {medium_id} is already in the registry"):
        registry.record_medium(_record(medium_id, operator="mallory"))
    assert registry.get_medium(medium_id).operator == "alice"
    assert len(registry.list_media()) == 1


def test_list_media_newest_first_with_limit_and_filters(registry: Registry) -> None:
    ids = []
    for day in range(5):
        medium_id = registry.new_medium_id()
        ids.append(medium_id)
        registry.record_medium(
            _record(
                medium_id,
                created_at=NOW + timedelta(days=day),
                patient_id=PATIENT_ID if day % 2 == 0 else "OTHER-1",
                study_uid=f"{STUDY_UID}.{day}",
            )
        )
    assert [m.medium_id for m in registry.list_media()] == ids[::-1]
    assert [m.medium_id for m in registry.list_media(limit=2)] == ids[:2:-1]
    assert [m.medium_id for m in registry.list_media(patient_id=PATIENT_ID)] == [ids[4], ids[2], ids[0]]
    assert [m.medium_id for m in registry.list_media(study_instance_uid=f"{STUDY_UID}.3")] == [ids[3]]
    summary = registry.list_media(limit=1)[0]
    assert summary.created_at == NOW + timedelta(days=4)
    assert json.loads(json.dumps(summary.to_json()))["medium_id"] == ids[4]


def _burn_worker(url: str, operator: str, barrier: Barrier, results: Any) -> None:
    """Record MEDIA_PER_WORKER media as one burn station would (runs in a spawned process or a thread)."""
    try:
        with Registry.open(url) as registry:
            barrier.wait(timeout=60)
            ids = []
            for _ in range(MEDIA_PER_WORKER):
                medium_id = registry.new_medium_id()
                registry.record_medium(_record(medium_id, operator=operator))
                ids.append(medium_id)
        results.put((operator, ids, None))
    except BaseException:
        results.put((operator, [], traceback.format_exc()))


@pytest.mark.slow
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_concurrent_burns_from_two_processes_do_not_collide(db_url: str, start_method: str) -> None:
    """Two processes open the same (new) registry at once and record 50 media each: 100 rows, no error."""
    context: SpawnContext | ForkServerContext
    if start_method == "spawn":
        context = multiprocessing.get_context("spawn")
    else:
        context = multiprocessing.get_context("forkserver")
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [
        context.Process(target=_burn_worker, args=(db_url, f"station-{n}", barrier, results)) for n in (1, 2)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=240) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    errors = [error for _op, _ids, error in outcomes if error]
    assert errors == []
    assert [w.exitcode for w in workers] == [0, 0]
    recorded = [medium_id for _op, ids, _err in outcomes for medium_id in ids]
    assert len(recorded) == len(set(recorded)) == 2 * MEDIA_PER_WORKER
    with Registry.open(db_url) as registry:
        listed = registry.list_media(limit=1000)
    assert sorted(m.medium_id for m in listed) == sorted(recorded)
    assert {m.operator for m in listed} == {"station-1", "station-2"}


def test_concurrent_burns_from_two_threads_do_not_collide(db_url: str) -> None:
    import queue

    barrier = threading.Barrier(2)
    results: queue.Queue[tuple[str, list[str], str | None]] = queue.Queue()
    threads = [
        threading.Thread(target=_burn_worker, args=(db_url, f"thread-{n}", barrier, results)) for n in (1, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    outcomes = [results.get_nowait() for _ in threads]
    assert [error for _op, _ids, error in outcomes if error] == []
    with Registry.open(db_url) as registry:
        assert len({m.medium_id for m in registry.list_media(limit=1000)}) == 2 * MEDIA_PER_WORKER


# -- recovery -------------------------------------------------------------------------------------------------
def test_recovery_reveals_the_password_and_records_who_when_why(
    registry: Registry, escrow: Escrow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id, escrow=escrow))
    assert registry.recoveries(medium_id) == []
    password = registry.recover_password(
        medium_id,
        private_key=escrow.private_key,
        certificate=escrow.certificate,
        operator="bob",
        reason="patient lost the cover letter (ticket 4711)",
        station="desk-7",
    )
    assert password == MEDIUM_PASSWORD
    [recovery] = registry.recoveries(medium_id)
    assert (recovery.medium_id, recovery.operator, recovery.station) == (medium_id, "bob", "desk-7")
    assert recovery.reason == "patient lost the cover letter (ticket 4711)"
    assert recovery.recovered_at == NOW
    assert recovery.to_json()["recovered_at"] == NOW.isoformat()
    assert MEDIUM_PASSWORD not in caplog.text
    assert PATIENT_ID not in caplog.text


def test_every_recovery_is_recorded(registry: Registry, escrow: Escrow) -> None:
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id, escrow=escrow))
    for operator in ("bob", "carol"):
        registry.recover_password(
            medium_id,
            private_key=escrow.private_key,
            certificate=escrow.certificate,
            operator=operator,
            reason="audit drill",
        )
    assert [r.operator for r in registry.recoveries(medium_id)] == ["bob", "carol"]


def test_another_escrow_certificate_is_refused_and_not_recorded(
    registry: Registry, escrow: Escrow, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert_path, key_path = rsa_identity_factory(tmp_path, "Other Hospital dcmseal escrow", key_size=3072)
    other_cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    other_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(other_key, rsa.RSAPrivateKey)
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id, escrow=escrow))
    with pytest.raises(InputError, match="was sealed to the escrow certificate"):
        registry.recover_password(
            medium_id, private_key=other_key, certificate=other_cert, operator="eve", reason="curiosity"
        )
    assert registry.recoveries(medium_id) == []


def test_wrong_key_for_the_escrow_certificate_is_refused_and_not_recorded(
    registry: Registry, escrow: Escrow, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    _cert, key_path = rsa_identity_factory(tmp_path, "impostor", key_size=3072)
    wrong_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(wrong_key, rsa.RSAPrivateKey)
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id, escrow=escrow))
    with pytest.raises(DecryptionError):
        registry.recover_password(
            medium_id,
            private_key=wrong_key,
            certificate=escrow.certificate,
            operator="eve",
            reason="curiosity",
        )
    assert registry.recoveries(medium_id) == []


@pytest.mark.parametrize("reason", ["", "   \t"])
def test_recovery_without_a_reason_is_refused(registry: Registry, escrow: Escrow, reason: str) -> None:
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id, escrow=escrow))
    with pytest.raises(UsageError, match="needs a reason"):
        registry.recover_password(
            medium_id,
            private_key=escrow.private_key,
            certificate=escrow.certificate,
            operator="bob",
            reason=reason,
        )
    assert registry.recoveries(medium_id) == []


def test_the_schema_itself_refuses_a_recovery_without_reason(registry: Registry, engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO recoveries (medium_id, recovered_at, operator, station, reason) "
                "VALUES (:m, :t, 'bob', 'desk', '  ')"
            ),
            {"m": medium_id, "t": NOW.replace(tzinfo=None)},
        )


def test_recovery_of_a_medium_without_escrowed_password(registry: Registry, escrow: Escrow) -> None:
    medium_id = registry.new_medium_id()
    registry.record_medium(_record(medium_id))
    with pytest.raises(InputError, match="without an escrowed password"):
        registry.recover_password(
            medium_id,
            private_key=escrow.private_key,
            certificate=escrow.certificate,
            operator="bob",
            reason="x",
        )
    assert registry.recoveries(medium_id) == []


# -- partners -------------------------------------------------------------------------------------------------
def _certificate(cn: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def partner_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_partner_address_book(registry: Registry, partner_key: rsa.RSAPrivateKey) -> None:
    st_marys = _certificate("St Mary's Radiology", partner_key)
    clinic = _certificate("Clinic Nord", partner_key)
    added = registry.add_partner("st-marys.radiology", st_marys)
    registry.add_partner("clinic_nord", clinic)
    assert added.fingerprint == st_marys.fingerprint(hashes.SHA256()).hex()
    assert added.subject == "CN=St Mary's Radiology"
    assert added.not_before == datetime(2025, 1, 1, tzinfo=UTC)
    assert added.not_after == datetime(2027, 1, 1, tzinfo=UTC)
    assert added.added_at == NOW
    assert added.is_valid_at(NOW)
    assert not added.is_valid_at(datetime(2027, 6, 1, tzinfo=UTC))
    assert [p.name for p in registry.list_partners()] == ["clinic_nord", "st-marys.radiology"]
    assert registry.get_partner("st-marys.radiology") == st_marys
    registry.remove_partner("clinic_nord")
    assert [p.name for p in registry.list_partners()] == ["st-marys.radiology"]
    with pytest.raises(InputError, match="no partner clinic_nord in the address book"):
        registry.get_partner("clinic_nord")
    with pytest.raises(InputError, match="no partner clinic_nord"):
        registry.remove_partner("clinic_nord")


def test_partner_name_taken_unless_replaced(registry: Registry, partner_key: rsa.RSAPrivateKey) -> None:
    old = _certificate("Old", partner_key)
    new = _certificate("New", partner_key)
    registry.add_partner("lab", old)
    with pytest.raises(InputError, match="partner lab is already in the address book"):
        registry.add_partner("lab", new)
    assert registry.get_partner("lab") == old
    registry.add_partner("lab", new, replace=True)
    assert registry.get_partner("lab") == new
    assert len(registry.list_partners()) == 1


@pytest.mark.parametrize("name", ["", "x" * 65, "with space", "slash/name", "ümlaut", "semi;colon"])
def test_partner_names_are_checked(registry: Registry, partner_key: rsa.RSAPrivateKey, name: str) -> None:
    with pytest.raises(UsageError, match="partner name"):
        registry.add_partner(name, _certificate("Any", partner_key))
    assert registry.list_partners() == []


def test_partner_name_of_64_characters_is_fine(registry: Registry, partner_key: rsa.RSAPrivateKey) -> None:
    registry.add_partner("a" * 64, _certificate("Long", partner_key))
    assert [p.name for p in registry.list_partners()] == ["a" * 64]


def test_partner_certificate_must_be_rsa(registry: Registry) -> None:
    with pytest.raises(InputError, match="only RSA certificates"):
        registry.add_partner("ec-partner", _certificate("EC", ec.generate_private_key(ec.SECP256R1())))


# -- opening --------------------------------------------------------------------------------------------------
def test_unreachable_postgresql_is_a_peer_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql+psycopg://dcmseal:S3cret%21Pa55@127.0.0.1:{free_port()}/registry"
    with pytest.raises(PeerError) as caught:
        Registry.open(url)
    error = caught.value
    message = str(error)
    assert error.exit_code == ExitCode.PEER
    assert message.startswith(f"registry postgresql+psycopg://dcmseal:***@127.0.0.1:{url.split(':')[3]}")
    assert "refused" in message.lower()
    for shown in (message, repr(error), caplog.text):
        assert "S3cret" not in shown
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_unusable_sqlite_path_is_a_peer_error(tmp_path: Path) -> None:
    with pytest.raises(PeerError, match="No such file or directory"):
        Registry.open(f"sqlite:///{tmp_path / 'missing' / 'registry.sqlite3'}")


def test_not_a_url_is_a_usage_error_that_does_not_repeat_it() -> None:
    with pytest.raises(UsageError, match="not a database URL") as caught:
        Registry.open("user:hunter2-secret@nowhere")
    assert "hunter2" not in str(caught.value)


def test_default_registry_is_a_private_sqlite_file_in_the_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with Registry.open(None) as registry:
        registry.record_medium(_record(registry.new_medium_id()))
        assert registry.url == f"sqlite:///{tmp_path / 'data' / 'dcmseal' / 'registry.sqlite3'}"
    path = tmp_path / "data" / "dcmseal" / "registry.sqlite3"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert connection.execute(text("SELECT count(*) FROM media")).scalar_one() == 1
    finally:
        engine.dispose()
