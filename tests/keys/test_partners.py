"""Changes of the keys media are sealed to are audited by the library: the escrow identity, a partner filed."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from dcmseal.audit import FileSink, validate_message
from dcmseal.keys.escrow import create_escrow_identity
from dcmseal.keys.partners import file_partner
from dcmseal.keys.registry import Registry
from tests.conftest import RsaIdentityFactory
from tests.keys.conftest import ESCROW_ORG, ESCROW_PASSPHRASE


def _alert(log: Path) -> bytes:
    (line,) = log.read_bytes().splitlines()
    assert validate_message(line) == []  # the A.5.1 schema, RELAX NG included
    assert b'csd-code="110113"' in line  # Security Alert
    assert b'csd-code="110129"' in line  # Security Configuration (CID 403)
    return line


def test_a_new_escrow_identity_is_audited_when_a_sink_is_given(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    identity = create_escrow_identity(
        ESCROW_ORG, tmp_path / "escrow", passphrase=ESCROW_PASSPHRASE, audit=FileSink(log), operator="admin-1"
    )
    alert = _alert(log)
    assert identity.fingerprint.encode() in alert
    assert b'UserID="admin-1"' in alert
    assert ESCROW_PASSPHRASE not in alert


def test_filing_a_partner_is_audited(
    tmp_path: Path, sqlite_url: str, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert_path, _key = rsa_identity_factory(tmp_path, "partner clinic")
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    log = tmp_path / "audit.log"
    with Registry.open(sqlite_url) as registry:
        entry = file_partner(registry, "clinic", certificate, operator="admin-1", audit=FileSink(log))
        assert [p.name for p in registry.list_partners()] == ["clinic"]
    alert = _alert(log)
    assert entry.fingerprint.encode() in alert
