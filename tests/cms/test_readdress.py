"""cms.readdress: the same content for other recipients, the ciphertext copied byte for byte."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dcmseal import cms
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError, UnprotectedContentError
from tests.conftest import RsaIdentityFactory
from tests.peers.tools import run_tool
from tests.vectors import PASSWORD, read_vector, vector_path

MAX = 10_000_000


def _identity(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, cms.PrivateKeyCredential]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return cert, cms.PrivateKeyCredential(private_key=key, certificate=cert)


def _open(data: bytes, credential: cms.Credential) -> bytes:
    """The payload of an OpenSSL vector (plain id-data inside: accepted unprotected, and said so)."""
    out = io.BytesIO()
    result = cms.decrypt(
        io.BytesIO(data),
        out,
        [credential],
        max_iterations=MAX,
        accept_unprotected=True,
    )
    assert not result.inner.verified
    return out.getvalue()


def _ciphertext(data: bytes) -> bytes:
    out = io.BytesIO()
    from dcmseal.cms.der import DerReader
    from dcmseal.cms.header import read_header

    reader = DerReader(io.BytesIO(data), size=len(data))
    header = read_header(reader, max_header_bytes=1 << 20, context=cms.Context())
    for chunk in reader.iter_octets(header.content, "encryptedContent", chunk_size=4096):
        out.write(chunk)
    return out.getvalue()


@pytest.mark.parametrize("vector", ["ossl-pwri-aes256-stream-ber.p7m", "ossl-ktri-pwri-aes256.p7m"])
def test_password_envelope_readdressed_to_a_certificate(
    vector: str, rsa_identity_factory: RsaIdentityFactory, tmp_path: Path
) -> None:
    cert_path, key_path = rsa_identity_factory(tmp_path, "readdress partner")
    cert, credential = _identity(cert_path, key_path)
    original = read_vector(vector)
    out = io.BytesIO()
    result = cms.readdress(
        io.BytesIO(original),
        out,
        [cms.PasswordCredential(password=PASSWORD)],
        [cms.CertificateRecipient(certificate=cert)],
        max_iterations=MAX,
        accept_unprotected=True,
    )
    info = result.envelope
    assert not result.inner.verified
    new = out.getvalue()
    assert info.version == 0
    assert [r.kind for r in info.recipients] == ["certificate"]
    assert info.envelope_size == len(new)
    assert _open(new, credential) == read_vector("synthetic.dcm")
    # The ciphertext is reused, not re-encrypted; the old password no longer opens it.
    assert _ciphertext(new) == _ciphertext(original)
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _open(new, cms.PasswordCredential(password=PASSWORD))


def test_keep_existing_adds_a_password_and_openssl_agrees(openssl_bin: str, tmp_path: Path) -> None:
    original = read_vector("ossl-ktri-pwri-aes256.p7m")
    _cert, credential = _identity(
        vector_path("testonly-rsa2048-cert.pem"), vector_path("testonly-rsa2048-key.pem")
    )
    out = io.BytesIO()
    info = cms.readdress(
        io.BytesIO(original),
        out,
        [credential],
        [
            cms.PasswordRecipient(
                password=b"a-new-passphrase-for-the-new-doctor",
                kdf=cms.Pbkdf2Params(salt=os.urandom(16), iterations=1000, prf=cms.Prf.SHA256),
            )
        ],
        max_iterations=MAX,
        keep_existing=True,
        accept_unprotected=True,
    ).envelope
    assert info.version == 3
    assert sorted(r.kind for r in info.recipients) == ["certificate", "password", "password"]
    path = tmp_path / "readdressed.p7m"
    path.write_bytes(out.getvalue())
    for args in (
        ["-pwri_password", "a-new-passphrase-for-the-new-doctor"],
        ["-pwri_password", PASSWORD.decode()],
        [
            "-recip",
            str(vector_path("testonly-rsa2048-cert.pem")),
            "-inkey",
            str(vector_path("testonly-rsa2048-key.pem")),
        ],
    ):
        result = run_tool(
            [openssl_bin, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(path), *args]
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == read_vector("synthetic.dcm")


def test_readdress_needs_a_key_that_opens_the_envelope(
    rsa_identity_factory: RsaIdentityFactory, tmp_path: Path
) -> None:
    cert_path, key_path = rsa_identity_factory(tmp_path, "readdress partner")
    cert, _ = _identity(cert_path, key_path)
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        cms.readdress(
            io.BytesIO(read_vector("ossl-pwri-aes256.p7m")),
            io.BytesIO(),
            [cms.PasswordCredential(password=b"not the password")],
            [cms.CertificateRecipient(certificate=cert)],
            max_iterations=MAX,
        )


def test_readdress_refuses_unprotected_content_by_default(
    rsa_identity_factory: RsaIdentityFactory, tmp_path: Path
) -> None:
    """An envelope with nothing inside to verify is not passed on under new keys unless asked for."""
    cert_path, key_path = rsa_identity_factory(tmp_path, "readdress partner")
    cert, _ = _identity(cert_path, key_path)
    out = io.BytesIO()
    with pytest.raises(UnprotectedContentError, match="no digest or signature"):
        cms.readdress(
            io.BytesIO(read_vector("ossl-pwri-aes256.p7m")),
            out,
            [cms.PasswordCredential(password=PASSWORD)],
            [cms.CertificateRecipient(certificate=cert)],
            max_iterations=MAX,
        )
    assert out.getvalue() == b""


def test_readdress_needs_recipients() -> None:
    with pytest.raises(ValueError, match="recipient"):
        cms.readdress(
            io.BytesIO(read_vector("ossl-pwri-aes256.p7m")),
            io.BytesIO(),
            [cms.PasswordCredential(password=PASSWORD)],
            [],
            max_iterations=MAX,
        )
