"""Fixtures of the key tests: database URLs for the registry (a SQLite file, a real PostgreSQL server), escrow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from dcmseal.keys.escrow import (
    EscrowIdentity,
    create_escrow_identity,
    load_escrow_certificate,
    unlock_escrow_key,
)
from tests.peers.postgres import postgres_url

__all__ = [
    "ESCROW_CREATED",
    "ESCROW_ORG",
    "ESCROW_PASSPHRASE",
    "Escrow",
    "escrow",
    "postgres_url",
    "sqlite_url",
]

ESCROW_ORG = "Example Hospital"
ESCROW_PASSPHRASE = b"Escrow-Pass1"  # exactly the 12-character minimum
ESCROW_CREATED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite registry file in the test's own directory (not yet created)."""
    return f"sqlite:///{tmp_path / 'registry.sqlite3'}"


@dataclass(frozen=True)
class Escrow:
    """An escrow identity made by create_escrow_identity, unlocked."""

    identity: EscrowIdentity
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey


@pytest.fixture(scope="session")
def escrow(tmp_path_factory: pytest.TempPathFactory) -> Escrow:
    """The session's escrow identity (RSA-3072 takes a moment to generate: once per session)."""
    identity = create_escrow_identity(
        ESCROW_ORG,
        tmp_path_factory.mktemp("escrow"),
        passphrase=ESCROW_PASSPHRASE,
        now=lambda: ESCROW_CREATED,
    )
    return Escrow(
        identity=identity,
        certificate=load_escrow_certificate(identity.certificate_path),
        private_key=unlock_escrow_key(identity.key_path, ESCROW_PASSPHRASE),
    )
