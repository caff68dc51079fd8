"""Tests of the escrow identity: creation, unlocking, sealing a password to it and opening it (also with OpenSSL)."""

from __future__ import annotations

import hashlib
import io
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from dcmseal import cms
from dcmseal.config import DEFAULT_PBKDF2_ITERATIONS
from dcmseal.errors import DecryptionError, InputError, UsageError, WeakPasswordError
from dcmseal.keys.escrow import (
    ESCROW_CERTIFICATE_NAME,
    ESCROW_KEY_NAME,
    ESCROW_KEY_PBKDF2_ITERATIONS,
    create_escrow_identity,
    load_escrow_certificate,
    open_escrowed_password,
    seal_password_for_escrow,
    unlock_escrow_key,
)
from tests.conftest import RsaIdentityFactory
from tests.keys.conftest import ESCROW_CREATED, ESCROW_ORG, ESCROW_PASSPHRASE, Escrow
from tests.peers.tools import run_tool

MEDIUM_PASSWORD = b"velvet-orbit-Kestrel-amber-lantern-7"


def _certificate_numbers(certificate: x509.Certificate) -> rsa.RSAPublicNumbers:
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    return public_key.public_numbers()


# -- creation -------------------------------------------------------------------------------------------------
def test_identity_key_is_rsa3072_encrypted_pkcs8_owner_only(escrow: Escrow) -> None:
    key_path = escrow.identity.key_path
    pem = key_path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    with pytest.raises(TypeError):  # encrypted: unusable without the passphrase
        serialization.load_pem_private_key(pem, password=None)
    key = serialization.load_pem_private_key(pem, password=ESCROW_PASSPHRASE)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072
    assert key.public_key().public_numbers() == _certificate_numbers(escrow.certificate)
    assert key_path.name == ESCROW_KEY_NAME


def test_identity_key_is_pbes2_with_a_high_pbkdf2_count(escrow: Escrow) -> None:
    """The key file is PBES2 (RFC 8018 §6.2): PBKDF2-HMAC-SHA256 at least as costly as a medium password's, AES-256."""
    kind, _, der = asn1_pem.unarmor(escrow.identity.key_path.read_bytes())
    assert kind == "ENCRYPTED PRIVATE KEY"
    algorithm = asn1_keys.EncryptedPrivateKeyInfo.load(der)["encryption_algorithm"]
    assert algorithm["algorithm"].native == "pbes2"
    kdf = algorithm["parameters"]["key_derivation_func"]
    assert kdf["algorithm"].native == "pbkdf2"
    assert kdf["parameters"]["prf"]["algorithm"].native == "sha256"
    assert kdf["parameters"]["iteration_count"].native == ESCROW_KEY_PBKDF2_ITERATIONS
    assert ESCROW_KEY_PBKDF2_ITERATIONS >= DEFAULT_PBKDF2_ITERATIONS
    assert len(kdf["parameters"]["salt"].chosen.native) >= 16
    assert algorithm["parameters"]["encryption_scheme"]["algorithm"].native == "aes256_cbc"


def test_a_key_written_by_earlier_versions_still_unlocks(tmp_path: Path, escrow: Escrow) -> None:
    """Keys made before PBES2 with a high count (``BestAvailableEncryption``, 2,048 rounds) keep working."""
    old = tmp_path / ESCROW_KEY_NAME
    old.write_bytes(
        escrow.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(ESCROW_PASSPHRASE),
        )
    )
    unlocked = unlock_escrow_key(old, ESCROW_PASSPHRASE)
    assert unlocked.public_key().public_numbers() == _certificate_numbers(escrow.certificate)


def test_identity_certificate_fields(escrow: Escrow) -> None:
    cert = x509.load_pem_x509_certificate(escrow.identity.certificate_path.read_bytes())
    assert escrow.identity.certificate_path.name == ESCROW_CERTIFICATE_NAME
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{ESCROW_ORG} dcmseal escrow"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ESCROW_ORG
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)  # self-signed
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)

    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_encipherment
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not usage.value.data_encipherment
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca is False

    assert cert.not_valid_before_utc <= ESCROW_CREATED
    assert ESCROW_CREATED - cert.not_valid_before_utc < timedelta(hours=1)
    assert cert.not_valid_after_utc.year == cert.not_valid_before_utc.year + 30

    assert (
        escrow.identity.fingerprint
        == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    assert escrow.identity.subject == cert.subject.rfc4514_string()
    assert escrow.identity.to_json()["fingerprint"] == escrow.identity.fingerprint


def test_refuses_keys_under_3072_bits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RSA-3072 or larger, not 2048 bits"):
        create_escrow_identity(ESCROW_ORG, tmp_path, passphrase=ESCROW_PASSPHRASE, key_size=2048)
    assert list(tmp_path.iterdir()) == []


def test_refuses_passphrase_under_12_characters(tmp_path: Path) -> None:
    with pytest.raises(WeakPasswordError, match="at least 12 characters"):
        create_escrow_identity(ESCROW_ORG, tmp_path, passphrase=ESCROW_PASSPHRASE[:11])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("org", ["", "   ", "x" * 50])
def test_refuses_unusable_organisation_names(tmp_path: Path, org: str) -> None:
    with pytest.raises(UsageError, match="organisation name"):
        create_escrow_identity(org, tmp_path, passphrase=ESCROW_PASSPHRASE)


@pytest.mark.parametrize("existing", [ESCROW_KEY_NAME, ESCROW_CERTIFICATE_NAME])
def test_never_overwrites_an_identity(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_bytes(b"the old one")
    with pytest.raises(InputError, match="never overwritten") as caught:
        create_escrow_identity(ESCROW_ORG, tmp_path, passphrase=ESCROW_PASSPHRASE)
    assert caught.value.path == tmp_path / existing
    assert (tmp_path / existing).read_bytes() == b"the old one"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


# -- loading and unlocking ------------------------------------------------------------------------------------
def test_wrong_passphrase_is_one_clear_error(escrow: Escrow) -> None:
    with pytest.raises(DecryptionError) as caught:
        unlock_escrow_key(escrow.identity.key_path, b"Escrow-Pass2")
    assert caught.value.message == "wrong passphrase for the escrow key"
    assert isinstance(caught.value, InputError)
    assert caught.value.path == escrow.identity.key_path


def test_unlocked_key_belongs_to_the_certificate(escrow: Escrow) -> None:
    key = unlock_escrow_key(escrow.identity.key_path, ESCROW_PASSPHRASE)
    assert key.public_key().public_numbers() == _certificate_numbers(escrow.certificate)


def test_unencrypted_key_file_is_refused(tmp_path: Path, rsa_identity_factory: RsaIdentityFactory) -> None:
    _cert, key_path = rsa_identity_factory(tmp_path, "plain key")
    with pytest.raises(InputError, match="not an encrypted PKCS#8"):
        unlock_escrow_key(key_path, ESCROW_PASSPHRASE)


def test_certificate_loads_from_pem_and_der(escrow: Escrow, tmp_path: Path) -> None:
    der = tmp_path / "escrow.der"
    der.write_bytes(escrow.certificate.public_bytes(serialization.Encoding.DER))
    assert load_escrow_certificate(der) == escrow.certificate
    assert load_escrow_certificate(escrow.identity.certificate_path) == escrow.certificate
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    with pytest.raises(InputError, match=r"not a PEM or DER X\.509 certificate"):
        load_escrow_certificate(junk)
    with pytest.raises(InputError, match="cannot read"):
        load_escrow_certificate(tmp_path / "missing.pem")


# -- sealing and opening --------------------------------------------------------------------------------------
def test_seal_then_open_gives_the_password(escrow: Escrow) -> None:
    blob = seal_password_for_escrow(MEDIUM_PASSWORD, escrow.certificate)
    assert MEDIUM_PASSWORD not in blob
    info = cms.inspect(io.BytesIO(blob))
    assert info.content_type == "digested-data"
    assert info.content_cipher is cms.ContentCipher.AES256_CBC
    assert [r.kind for r in info.recipients] == ["certificate"]
    assert info.recipients[0].serial_number == escrow.certificate.serial_number
    assert info.in_profile
    assert open_escrowed_password(blob, escrow.private_key, escrow.certificate) == MEDIUM_PASSWORD


def test_each_seal_is_fresh(escrow: Escrow) -> None:
    assert seal_password_for_escrow(MEDIUM_PASSWORD, escrow.certificate) != seal_password_for_escrow(
        MEDIUM_PASSWORD, escrow.certificate
    )


def test_another_key_cannot_open(
    escrow: Escrow, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    _cert, key_path = rsa_identity_factory(tmp_path, "someone else", key_size=3072)
    other = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(other, rsa.RSAPrivateKey)
    blob = seal_password_for_escrow(MEDIUM_PASSWORD, escrow.certificate)
    with pytest.raises(DecryptionError):
        open_escrowed_password(blob, other, escrow.certificate)


def test_empty_password_is_a_bug(escrow: Escrow) -> None:
    with pytest.raises(ValueError, match="no password"):
        seal_password_for_escrow(b"", escrow.certificate)


@pytest.mark.interop
def test_openssl_opens_the_escrowed_password(escrow: Escrow, tmp_path: Path, openssl_bin: str) -> None:
    """`openssl cms -decrypt -recip cert -inkey key -passin` gives a DigestedData holding the password."""
    blob_path = tmp_path / "escrowed.der"
    blob_path.write_bytes(seal_password_for_escrow(MEDIUM_PASSWORD, escrow.certificate))
    result = run_tool(
        [
            openssl_bin, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(blob_path),
            "-recip", str(escrow.identity.certificate_path), "-inkey", str(escrow.identity.key_path),
            "-passin", "pass:" + ESCROW_PASSPHRASE.decode("ascii"),
        ]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    digested = asn1_cms.DigestedData.load(result.stdout)
    assert digested["digest_algorithm"]["algorithm"].native == "sha256"
    encap = digested["encap_content_info"]
    assert encap["content_type"].native == "data"
    assert encap["content"].native == MEDIUM_PASSWORD
    assert digested["digest"].native == hashlib.sha256(MEDIUM_PASSWORD).digest()

    # and OpenSSL agrees the digest is right
    wrapped = tmp_path / "digested.der"
    wrapped.write_bytes(asn1_cms.ContentInfo({"content_type": "digested_data", "content": digested}).dump())
    verified = run_tool(
        [openssl_bin, "cms", "-digest_verify", "-binary", "-inform", "DER", "-in", str(wrapped)]
    )
    assert verified.returncode == 0, verified.stderr.decode(errors="replace")
    assert verified.stdout == MEDIUM_PASSWORD


@pytest.mark.interop
def test_openssl_refuses_a_wrong_passphrase(escrow: Escrow, tmp_path: Path, openssl_bin: str) -> None:
    """The key file really is encrypted: OpenSSL cannot use it without the passphrase."""
    blob_path = tmp_path / "escrowed.der"
    blob_path.write_bytes(seal_password_for_escrow(MEDIUM_PASSWORD, escrow.certificate))
    result = run_tool(
        [
            openssl_bin, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(blob_path),
            "-recip", str(escrow.identity.certificate_path), "-inkey", str(escrow.identity.key_path),
            "-passin", "pass:wrong-passphrase",
        ]
    )  # fmt: skip
    assert result.returncode != 0
    assert MEDIUM_PASSWORD not in result.stdout


def test_validity_follows_the_injected_clock(
    escrow: Escrow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """valid_years counts from the injected clock; 29 February ends on 28 February (the key is reused)."""
    monkeypatch.setattr("dcmseal.keys.escrow.rsa.generate_private_key", lambda **_kw: escrow.private_key)
    leap = datetime(2028, 2, 29, 0, 10, tzinfo=UTC)
    identity = create_escrow_identity(
        ESCROW_ORG, tmp_path, passphrase=ESCROW_PASSPHRASE, now=lambda: leap, valid_years=5
    )
    cert = load_escrow_certificate(identity.certificate_path)
    assert cert.not_valid_before_utc == leap - timedelta(minutes=5)
    assert cert.not_valid_after_utc == datetime(2033, 2, 28, 0, 5, tzinfo=UTC)
