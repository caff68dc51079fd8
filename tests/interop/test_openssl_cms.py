"""Interoperability of the CMS layer with the real `openssl cms` CLI, both directions (peers.md §2, §5.3).

A. Envelopes we write are opened by `openssl cms -decrypt`; the inner DigestedData/SignedData is verified by
   `openssl cms -digest_verify` / `-verify` and must give back the payload byte for byte.
B. Envelopes made by the CLI at test time are opened by `cms.decrypt`.
"""

from __future__ import annotations

import io
import os
import random
import re
from pathlib import Path

import pydicom.data
import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dcmseal import cms
from dcmseal.cms import (
    CertificateRecipient,
    ContentCipher,
    DigestAlgorithm,
    DigestedContent,
    EnvelopeSpec,
    InnerSpec,
    KeyTransport,
    PasswordCredential,
    PasswordRecipient,
    Pbkdf2Params,
    Prf,
    PrivateKeyCredential,
    RawContent,
    Recipient,
    RecipientIdType,
    SignedContent,
)
from dcmseal.cms.content import ContentKind
from dcmseal.cms.envelope import CHUNK_SIZE_BYTES, DecryptResult
from dcmseal.cms.recipients import Credential
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError, UnsupportedAlgorithmError
from tests.conftest import RsaIdentityFactory
from tests.peers.tools import run_tool
from tests.vectors import vector_path

pytestmark = pytest.mark.interop

PASSWORD = b"Interop-Test-Passw0rd!"  # a test password, passed on the command line on purpose
PASSWORD_ARG = PASSWORD.decode("ascii")
FAST_ITERATIONS = 1000
DEFAULT_ITERATIONS = 600_000
MAX_ITERATIONS = 10_000_000

PAYLOADS = ("ct_small", "synthetic", "odd_random")


def _payload(name: str) -> bytes:
    if name == "ct_small":
        path = pydicom.data.get_testdata_file("CT_small.dcm")
        assert isinstance(path, str)
        return Path(path).read_bytes()
    if name == "synthetic":
        return vector_path("synthetic.dcm").read_bytes()
    if name == "odd_random":
        return random.Random(0x0DD).randbytes(40_001)
    raise AssertionError(name)


# -- identities -------------------------------------------------------------------------------------------
class Identity:
    """A certificate and its key, as files (for the CLI) and as objects (for dcmseal)."""

    def __init__(self, cert_path: Path, key_path: Path) -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self.certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self.private_key = key

    def credential(self, *, with_certificate: bool = True) -> PrivateKeyCredential:
        return PrivateKeyCredential(
            private_key=self.private_key, certificate=self.certificate if with_certificate else None
        )


@pytest.fixture(scope="module")
def recipient(test_cert_and_key: tuple[Path, Path]) -> Identity:
    return Identity(*test_cert_and_key)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory, rsa_identity_factory: RsaIdentityFactory) -> Identity:
    return Identity(*rsa_identity_factory(tmp_path_factory.mktemp("signer"), "TEST ONLY interop signer"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory, rsa_identity_factory: RsaIdentityFactory) -> Identity:
    return Identity(*rsa_identity_factory(tmp_path_factory.mktemp("stranger"), "TEST ONLY not a recipient"))


# -- helpers ----------------------------------------------------------------------------------------------
def _ossl(openssl_bin: str, *args: str | Path, input: bytes | None = None) -> bytes:
    """Run `openssl ARGS`; assert rc 0 and return stdout."""
    argv = [openssl_bin, *(str(a) for a in args)]
    result = run_tool(argv, input=input)
    assert result.returncode == 0, (
        f"{' '.join(argv)} -> rc {result.returncode}\n{result.stderr.decode(errors='replace')}"
    )
    return result.stdout


def _pwri(iterations: int = FAST_ITERATIONS, prf: Prf = Prf.SHA256) -> PasswordRecipient:
    return PasswordRecipient(
        password=PASSWORD, kdf=Pbkdf2Params(salt=os.urandom(16), iterations=iterations, prf=prf)
    )


def _ktri(
    identity: Identity,
    transport: KeyTransport = KeyTransport.RSA_PKCS1V15,
    identifier: RecipientIdType = RecipientIdType.ISSUER_SERIAL,
) -> CertificateRecipient:
    return CertificateRecipient(
        certificate=identity.certificate, key_transport=transport, identifier=identifier
    )


def _seal(
    tmp_path: Path,
    payload: bytes,
    recipients: tuple[Recipient, ...],
    *,
    cipher: ContentCipher = ContentCipher.AES256_CBC,
    inner: InnerSpec | None = None,
    chunk_size: int = CHUNK_SIZE_BYTES,
) -> Path:
    """Encrypt ``payload`` with dcmseal into tmp_path/ours.p7m."""
    spec = EnvelopeSpec(
        recipients=recipients,
        content_cipher=cipher,
        inner=inner if inner is not None else DigestedContent(digest=DigestAlgorithm.SHA256),
    )
    path = tmp_path / "ours.p7m"
    with path.open("wb") as sink:
        info = cms.encrypt(
            io.BytesIO(payload),
            sink,
            spec,
            payload_size=len(payload),
            chunk_size=chunk_size,
        )
    assert info.envelope_size == path.stat().st_size
    return path


def _open(
    path: Path, credentials: list[Credential], *, chunk_size: int = CHUNK_SIZE_BYTES
) -> tuple[DecryptResult, bytes]:
    """Decrypt ``path`` with dcmseal; return the result and the payload."""
    out = io.BytesIO()
    with path.open("rb") as source:
        result = cms.decrypt(
            source,
            out,
            credentials,
            max_iterations=MAX_ITERATIONS,
            size=path.stat().st_size,
            chunk_size=chunk_size,
            # `openssl cms -encrypt` puts no digest inside: accepted here, and reported as not verified.
            accept_unprotected=True,
        )
    assert result.inner.verified is (result.inner.kind != cms.ContentKind.RAW)
    return result, out.getvalue()


def _ossl_decrypt_pwri(openssl_bin: str, path: Path) -> bytes:
    return _ossl(
        openssl_bin,
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        path,
        "-pwri_password",
        PASSWORD_ARG,
    )


def _ossl_decrypt_key(openssl_bin: str, path: Path, identity: Identity) -> bytes:
    return _ossl(
        openssl_bin, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", path,
        "-recip", identity.cert_path, "-inkey", identity.key_path,
    )  # fmt: skip


def _ossl_print(openssl_bin: str, path: Path) -> str:
    return _ossl(openssl_bin, "cms", "-cmsout", "-print", "-inform", "DER", "-in", path).decode()


def _ossl_digest_verify(openssl_bin: str, tmp_path: Path, bare_digested: bytes) -> bytes:
    """Wrap a bare DigestedData in a ContentInfo, `openssl cms -digest_verify` it, return the payload."""
    wrapped = asn1_cms.ContentInfo(
        {"content_type": "digested_data", "content": asn1_cms.DigestedData.load(bare_digested)}
    ).dump()
    ci = tmp_path / "inner-ci.der"
    ci.write_bytes(wrapped)
    out = tmp_path / "verified.bin"
    _ossl(openssl_bin, "cms", "-digest_verify", "-binary", "-inform", "DER", "-in", ci, "-out", out)
    return out.read_bytes()


def _ossl_verify_signed(openssl_bin: str, tmp_path: Path, bare_signed: bytes, signer: Identity) -> bytes:
    """Wrap a bare SignedData in a ContentInfo, `openssl cms -verify` it; return the payload."""
    wrapped = asn1_cms.ContentInfo(
        {"content_type": "signed_data", "content": asn1_cms.SignedData.load(bare_signed)}
    ).dump()
    ci = tmp_path / "inner-ci.der"
    ci.write_bytes(wrapped)
    out = tmp_path / "verified.bin"
    argv = [openssl_bin, "cms", "-verify", "-binary", "-inform", "DER", "-in", str(ci)]
    argv += ["-CAfile", str(signer.cert_path), "-purpose", "any", "-out", str(out)]
    result = run_tool(argv)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Verification successful" in result.stderr
    return out.read_bytes()


def _pbkdf2_iteration_line(printed: str) -> str:
    """The `INTEGER :…` line of the PBKDF2 parameters in `openssl cms -cmsout -print` output."""
    block = printed.split("d.pwri:", 1)[1]
    match = re.search(r"prim:\s+INTEGER\s+:([0-9A-F]+)", block)
    assert match is not None, block
    return match.group(1)


# == A. ours -> openssl ====================================================================================
def test_pwri_pbkdf2_sha256_600k_aes256_opens_in_openssl(openssl_bin: str, tmp_path: Path) -> None:
    """The one default-cost case: PBKDF2-HMAC-SHA256, 600,000 iterations, AES-256, 16-byte salt."""
    payload = _payload("ct_small")
    path = _seal(tmp_path, payload, (_pwri(DEFAULT_ITERATIONS),), cipher=ContentCipher.AES256_CBC)

    printed = _ossl_print(openssl_bin, path)
    assert "d.pwri:" in printed
    assert "d.ktri:" not in printed
    assert "PBKDF2 (1.2.840.113549.1.5.12)" in printed
    assert "hmacWithSHA256" in printed
    assert "id-alg-PWRI-KEK (1.2.840.113549.1.9.16.3.9)" in printed
    # OpenSSL prints the iteration count as hex: 600000 = 0x0927C0.
    assert _pbkdf2_iteration_line(printed) == "0927C0"
    assert int(_pbkdf2_iteration_line(printed), 16) == DEFAULT_ITERATIONS
    assert "contentType: pkcs7-digestData (1.2.840.113549.1.7.5)" in printed
    assert "algorithm: aes-256-cbc (2.16.840.1.101.3.4.1.42)" in printed
    assert re.search(r"^\s+version: 3$", printed, re.MULTILINE)  # EnvelopedData v3 with a pwri

    bare = _ossl_decrypt_pwri(openssl_bin, path)
    assert _ossl_digest_verify(openssl_bin, tmp_path, bare) == payload


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=[c.value for c in ContentCipher])
@pytest.mark.parametrize("payload_name", PAYLOADS)
def test_every_content_cipher_opens_in_openssl(
    openssl_bin: str, tmp_path: Path, cipher: ContentCipher, payload_name: str
) -> None:
    payload = _payload(payload_name)
    path = _seal(tmp_path, payload, (_pwri(),), cipher=cipher)
    printed = _ossl_print(openssl_bin, path)
    expected_name = {
        "aes128": "aes-128-cbc",
        "aes192": "aes-192-cbc",
        "aes256": "aes-256-cbc",
        "3des": "des-ede3-cbc",
    }
    assert f"algorithm: {expected_name[cipher.value]} ({cipher.oid})" in printed
    assert _pbkdf2_iteration_line(printed) == "03E8"  # 1000
    bare = _ossl_decrypt_pwri(openssl_bin, path)
    assert _ossl_digest_verify(openssl_bin, tmp_path, bare) == payload


@pytest.mark.parametrize(
    ("transport", "identifier", "printed_algorithm", "printed_version"),
    [
        (KeyTransport.RSA_PKCS1V15, RecipientIdType.ISSUER_SERIAL, "rsaEncryption", 0),
        (KeyTransport.RSA_OAEP, RecipientIdType.ISSUER_SERIAL, "rsaesOaep", 0),
        (KeyTransport.RSA_PKCS1V15, RecipientIdType.SUBJECT_KEY_ID, "rsaEncryption", 2),
        (KeyTransport.RSA_OAEP, RecipientIdType.SUBJECT_KEY_ID, "rsaesOaep", 2),
    ],
    ids=["v1.5-issuer-serial", "oaep-issuer-serial", "v1.5-ski", "oaep-ski"],
)
def test_ktri_opens_in_openssl(
    openssl_bin: str,
    tmp_path: Path,
    recipient: Identity,
    transport: KeyTransport,
    identifier: RecipientIdType,
    printed_algorithm: str,
    printed_version: int,
) -> None:
    payload = _payload("ct_small")
    path = _seal(tmp_path, payload, (_ktri(recipient, transport, identifier),))
    printed = _ossl_print(openssl_bin, path)
    assert "d.ktri:" in printed
    assert "d.pwri:" not in printed
    assert f"algorithm: {printed_algorithm} " in printed
    ktri_block = printed.split("d.ktri:", 1)[1]
    assert re.match(rf"\s+version: {printed_version}\n", ktri_block)
    if identifier is RecipientIdType.SUBJECT_KEY_ID:
        assert "d.subjectKeyIdentifier:" in printed
        assert "9d 01 7a 0c 04 9c 61 fc" in printed  # the SKI of the test certificate
    else:
        assert "d.issuerAndSerialNumber:" in printed
    bare = _ossl_decrypt_key(openssl_bin, path, recipient)
    assert _ossl_digest_verify(openssl_bin, tmp_path, bare) == payload


def test_pwri_and_ktri_together_open_in_openssl_each_way(
    openssl_bin: str, tmp_path: Path, recipient: Identity
) -> None:
    payload = _payload("synthetic")
    recipients = (_pwri(), _ktri(recipient, KeyTransport.RSA_OAEP, RecipientIdType.SUBJECT_KEY_ID))
    path = _seal(tmp_path, payload, recipients)
    printed = _ossl_print(openssl_bin, path)
    assert "d.pwri:" in printed
    assert "d.ktri:" in printed
    by_password = _ossl_decrypt_pwri(openssl_bin, path)
    by_key = _ossl_decrypt_key(openssl_bin, path, recipient)
    assert by_password == by_key
    assert _ossl_digest_verify(openssl_bin, tmp_path, by_password) == payload


@pytest.mark.parametrize(
    "digest",
    [DigestAlgorithm.SHA1, DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512],
    ids=lambda d: d.value,
)
@pytest.mark.parametrize("payload_name", PAYLOADS)
def test_digested_data_verifies_in_openssl(
    openssl_bin: str, tmp_path: Path, digest: DigestAlgorithm, payload_name: str
) -> None:
    payload = _payload(payload_name)
    path = _seal(tmp_path, payload, (_pwri(),), inner=DigestedContent(digest=digest))
    bare = _ossl_decrypt_pwri(openssl_bin, path)
    parsed = asn1_cms.DigestedData.load(bare)
    assert parsed["digest_algorithm"]["algorithm"].native == digest.value
    assert parsed["version"].native == "v0"
    assert _ossl_digest_verify(openssl_bin, tmp_path, bare) == payload


@pytest.mark.parametrize("digest", [DigestAlgorithm.SHA256, DigestAlgorithm.SHA512], ids=lambda d: d.value)
@pytest.mark.parametrize("payload_name", PAYLOADS)
def test_signed_data_verifies_in_openssl(
    openssl_bin: str,
    tmp_path: Path,
    recipient: Identity,
    signer: Identity,
    digest: DigestAlgorithm,
    payload_name: str,
) -> None:
    payload = _payload(payload_name)
    inner = SignedContent(private_key=signer.private_key, certificate=signer.certificate, digest=digest)
    path = _seal(tmp_path, payload, (_ktri(recipient),), inner=inner)
    assert "contentType: pkcs7-signedData (1.2.840.113549.1.7.2)" in _ossl_print(openssl_bin, path)
    bare = _ossl_decrypt_key(openssl_bin, path, recipient)
    assert _ossl_verify_signed(openssl_bin, tmp_path, bare, signer) == payload


@pytest.mark.parametrize("include_key_length", [False, True], ids=["no-keyLength", "keyLength"])
@pytest.mark.parametrize("prf", list(Prf), ids=[p.value for p in Prf])
def test_every_pbkdf2_prf_opens_in_openssl(
    openssl_bin: str, tmp_path: Path, prf: Prf, include_key_length: bool
) -> None:
    payload = _payload("synthetic")
    pwri = PasswordRecipient(
        password=PASSWORD,
        kdf=Pbkdf2Params(salt=os.urandom(16), iterations=FAST_ITERATIONS, prf=prf),
        include_key_length=include_key_length,
    )
    path = _seal(tmp_path, payload, (pwri,), cipher=ContentCipher.AES192_CBC)
    printed = _ossl_print(openssl_bin, path)
    if prf is Prf.SHA1:
        assert "hmacWith" not in printed  # DEFAULT algid-hmacWithSHA1 is omitted
    else:
        assert f"hmacWith{prf.value.upper()}" in printed
    bare = _ossl_decrypt_pwri(openssl_bin, path)
    assert _ossl_digest_verify(openssl_bin, tmp_path, bare) == payload


@pytest.mark.parametrize("size", [0, 1, 16, 4096])
def test_edge_payload_sizes_open_in_openssl(
    openssl_bin: str, tmp_path: Path, recipient: Identity, size: int
) -> None:
    """Empty, one byte, and whole blocks (a full padding block follows)."""
    payload = random.Random(size).randbytes(size)
    path = _seal(tmp_path, payload, (_pwri(), _ktri(recipient)), cipher=ContentCipher.AES128_CBC)
    bare = _ossl_decrypt_key(openssl_bin, path, recipient)
    assert _ossl_digest_verify(openssl_bin, tmp_path, bare) == payload


def test_raw_content_opens_in_openssl_as_the_payload(openssl_bin: str, tmp_path: Path) -> None:
    """RawContent is what `openssl cms -encrypt` writes: id-data, the payload itself."""
    payload = _payload("ct_small")
    path = _seal(tmp_path, payload, (_pwri(),), inner=RawContent())
    assert "contentType: pkcs7-data (1.2.840.113549.1.7.1)" in _ossl_print(openssl_bin, path)
    assert _ossl_decrypt_pwri(openssl_bin, path) == payload


def test_large_payload_across_chunks_opens_in_openssl(openssl_bin: str, tmp_path: Path) -> None:
    """3 MiB + an odd tail, written in 64 KiB chunks: OpenSSL sees one exact DER envelope."""
    payload = random.Random(3).randbytes(3 * 1024 * 1024 + 7)
    path = _seal(tmp_path, payload, (_pwri(),), chunk_size=65536)
    bare = _ossl_decrypt_pwri(openssl_bin, path)
    assert _ossl_digest_verify(openssl_bin, tmp_path, bare) == payload


# == B. openssl -> ours ====================================================================================
def _ossl_encrypt(openssl_bin: str, tmp_path: Path, payload: bytes, *options: str | Path) -> Path:
    """`openssl cms -encrypt -binary -outform DER OPTIONS` of ``payload``; returns the envelope path."""
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    out = tmp_path / "theirs.p7m"
    _ossl(openssl_bin, "cms", "-encrypt", "-binary", "-outform", "DER", "-in", source, "-out", out, *options)
    return out


@pytest.mark.parametrize(
    ("options", "cipher"),
    [
        ((), ContentCipher.DES3_CBC),  # the CLI default
        (("-aes-128-cbc",), ContentCipher.AES128_CBC),
        (("-aes-192-cbc",), ContentCipher.AES192_CBC),
        (("-aes-256-cbc",), ContentCipher.AES256_CBC),
    ],
    ids=["default-3des", "aes128", "aes192", "aes256"],
)
@pytest.mark.parametrize("payload_name", PAYLOADS)
def test_openssl_pwri_opens(
    openssl_bin: str, tmp_path: Path, options: tuple[str, ...], cipher: ContentCipher, payload_name: str
) -> None:
    payload = _payload(payload_name)
    path = _ossl_encrypt(openssl_bin, tmp_path, payload, *options, "-pwri_password", PASSWORD_ARG)
    result, plain = _open(path, [PasswordCredential(password=PASSWORD)])
    assert plain == payload
    assert result.envelope.content_cipher is cipher
    assert result.envelope.version == 3
    assert result.envelope.ber is False
    assert result.envelope.content_type == "data"
    (description,) = result.envelope.recipients
    assert description.kind == "password"
    assert description.iterations == 2048
    assert description.prf == "sha1"
    assert description.kek_cipher == cipher.asn1_name
    assert result.inner.kind == ContentKind.RAW
    assert result.inner.wrapped_in_content_info is False
    assert result.inner.payload_size == len(payload)
    assert result.conformant is False


@pytest.mark.parametrize("payload_name", PAYLOADS)
def test_openssl_stream_ber_opens(openssl_bin: str, tmp_path: Path, payload_name: str) -> None:
    payload = _payload(payload_name)
    path = _ossl_encrypt(
        openssl_bin, tmp_path, payload, "-stream", "-aes-256-cbc", "-pwri_password", PASSWORD_ARG
    )
    assert path.read_bytes()[1] == 0x80  # indefinite length
    result, plain = _open(path, [PasswordCredential(password=PASSWORD)])
    assert plain == payload
    assert result.envelope.ber is True


@pytest.mark.parametrize(
    ("options", "key_encryption", "version"),
    [
        ((), "rsaes_pkcs1v15", 0),
        (("-keyopt", "rsa_padding_mode:oaep"), "rsaes_oaep", 0),
        (("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"), "rsaes_oaep", 0),
        (("-keyid",), "rsaes_pkcs1v15", 2),
        (("-keyid", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"), "rsaes_oaep", 2),
    ],
    ids=["v1.5", "oaep-sha1", "oaep-sha256", "v1.5-keyid", "oaep-sha256-keyid"],
)
@pytest.mark.parametrize("with_certificate", [True, False], ids=["key+cert", "key-only"])
def test_openssl_ktri_opens(
    openssl_bin: str,
    tmp_path: Path,
    recipient: Identity,
    options: tuple[str, ...],
    key_encryption: str,
    version: int,
    with_certificate: bool,
) -> None:
    payload = _payload("ct_small")
    # `-keyopt` applies to the last `-recip` before it (openssl-cms(1)); `-keyid` to every recipient.
    path = _ossl_encrypt(
        openssl_bin, tmp_path, payload, "-aes-256-cbc", "-recip", recipient.cert_path, *options
    )
    if "rsa_oaep_md:sha256" in options:
        assert re.search(r"OBJECT\s+:sha256", _ossl_print(openssl_bin, path))  # OAEP really uses SHA-256
    result, plain = _open(path, [recipient.credential(with_certificate=with_certificate)])
    assert plain == payload
    (description,) = result.envelope.recipients
    assert description.kind == "certificate"
    assert description.key_encryption == key_encryption
    assert description.version == version
    if version == 2:
        ski = recipient.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        assert description.subject_key_identifier == ski.hex()
    else:
        assert description.serial_number == recipient.certificate.serial_number
    assert result.inner.kind == ContentKind.RAW


def test_openssl_ktri_refuses_a_stranger_key(
    openssl_bin: str, tmp_path: Path, recipient: Identity, stranger: Identity
) -> None:
    path = _ossl_encrypt(
        openssl_bin, tmp_path, _payload("synthetic"), "-aes-256-cbc", "-recip", recipient.cert_path
    )
    for credential in (stranger.credential(), stranger.credential(with_certificate=False)):
        with pytest.raises(DecryptionError) as excinfo:
            _open(path, [credential])
        assert str(excinfo.value) == WRONG_KEY_MESSAGE


def test_openssl_ktri_plus_pwri_opens_either_way(
    openssl_bin: str, tmp_path: Path, recipient: Identity
) -> None:
    payload = _payload("ct_small")
    path = _ossl_encrypt(
        openssl_bin,
        tmp_path,
        payload,
        "-aes-256-cbc",
        "-recip",
        recipient.cert_path,
        "-pwri_password",
        PASSWORD_ARG,
    )
    by_password, plain_pw = _open(path, [PasswordCredential(password=PASSWORD)])
    by_key, plain_key = _open(path, [recipient.credential()])
    assert plain_pw == plain_key == payload
    kinds = [r.kind for r in by_password.envelope.recipients]
    assert sorted(kinds) == ["certificate", "password"]
    assert kinds[by_password.recipient_index] == "password"
    assert kinds[by_key.recipient_index] == "certificate"
    assert by_password.envelope.version == 3


def test_openssl_digest_create_then_encrypt_opens_as_digested_data(openssl_bin: str, tmp_path: Path) -> None:
    payload = _payload("ct_small")
    (tmp_path / "payload.dcm").write_bytes(payload)
    digested = tmp_path / "digested.der"
    _ossl(
        openssl_bin, "cms", "-digest_create", "-md", "sha256", "-binary", "-outform", "DER",
        "-in", tmp_path / "payload.dcm", "-out", digested,
    )  # fmt: skip
    path = _ossl_encrypt(
        openssl_bin, tmp_path, digested.read_bytes(), "-aes-256-cbc", "-pwri_password", PASSWORD_ARG
    )
    result, plain = _open(path, [PasswordCredential(password=PASSWORD)])
    assert plain == payload
    assert result.inner.kind == ContentKind.DIGESTED
    assert result.inner.wrapped_in_content_info is True
    assert result.inner.digest is DigestAlgorithm.SHA256
    assert result.envelope.content_type == "data"  # the CLI cannot label the inner type


def test_openssl_signed_then_encrypted_opens_as_signed_data(
    openssl_bin: str, tmp_path: Path, recipient: Identity, signer: Identity
) -> None:
    payload = _payload("synthetic")
    (tmp_path / "payload.dcm").write_bytes(payload)
    signed = tmp_path / "signed.der"
    _ossl(
        openssl_bin, "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-md", "sha256",
        "-signer", signer.cert_path, "-inkey", signer.key_path,
        "-in", tmp_path / "payload.dcm", "-out", signed,
    )  # fmt: skip
    path = _ossl_encrypt(
        openssl_bin, tmp_path, signed.read_bytes(), "-aes-256-cbc", "-recip", recipient.cert_path
    )
    result, plain = _open(path, [recipient.credential()])
    assert plain == payload
    assert result.inner.kind == ContentKind.SIGNED
    assert result.inner.wrapped_in_content_info is True
    assert result.inner.digest is DigestAlgorithm.SHA256
    (report,) = result.inner.signers
    assert report.subject == signer.certificate.subject.rfc4514_string()
    assert report.subject == "CN=TEST ONLY interop signer"
    assert report.serial_number == signer.certificate.serial_number


def test_openssl_auth_enveloped_data_is_refused(
    openssl_bin: str, tmp_path: Path, recipient: Identity
) -> None:
    path = _ossl_encrypt(
        openssl_bin, tmp_path, _payload("synthetic"), "-aes-256-gcm", "-recip", recipient.cert_path
    )
    assert "id-smime-ct-authEnvelopedData" in _ossl_print(openssl_bin, path)
    with pytest.raises(UnsupportedAlgorithmError, match="AuthEnvelopedData"):
        _open(path, [recipient.credential()])


@pytest.mark.parametrize("cipher_option", ["-aes-256-cbc", "-des3"])
def test_openssl_pwri_wrong_password(openssl_bin: str, tmp_path: Path, cipher_option: str) -> None:
    path = _ossl_encrypt(
        openssl_bin, tmp_path, _payload("ct_small"), cipher_option, "-pwri_password", PASSWORD_ARG
    )
    with pytest.raises(DecryptionError) as excinfo:
        _open(path, [PasswordCredential(password=b"not-the-password")])
    assert str(excinfo.value) == WRONG_KEY_MESSAGE
    # OpenSSL agrees that this password does not open it.
    result = run_tool(
        [
            openssl_bin,
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(path),
            "-pwri_password",
            "nope",
        ]
    )
    assert result.returncode != 0


def test_openssl_large_stream_opens_in_small_chunks(openssl_bin: str, tmp_path: Path) -> None:
    """3 MiB streamed by OpenSSL: many constructed segments, crossing our chunk boundaries."""
    payload = random.Random(0x3B).randbytes(3 * 1024 * 1024 + 5)
    path = _ossl_encrypt(
        openssl_bin, tmp_path, payload, "-stream", "-aes-256-cbc", "-pwri_password", PASSWORD_ARG
    )
    result, plain = _open(path, [PasswordCredential(password=PASSWORD)], chunk_size=65536)
    assert result.envelope.ber is True
    assert result.envelope.encrypted_size == (len(payload) // 16 + 1) * 16
    assert plain == payload
    # And with the default 1 MiB chunks.
    _, plain_default = _open(path, [PasswordCredential(password=PASSWORD)])
    assert plain_default == payload


@pytest.mark.parametrize("size", [0, 1, 15, 16, 4096])
@pytest.mark.parametrize("stream", [False, True], ids=["der", "stream"])
def test_openssl_edge_payload_sizes_open(openssl_bin: str, tmp_path: Path, size: int, stream: bool) -> None:
    payload = random.Random(size).randbytes(size)
    options = ("-stream",) if stream else ()
    path = _ossl_encrypt(
        openssl_bin, tmp_path, payload, *options, "-aes-128-cbc", "-pwri_password", PASSWORD_ARG
    )
    result, plain = _open(path, [PasswordCredential(password=PASSWORD)])
    assert plain == payload
    assert result.inner.payload_size == size
    assert result.envelope.ber is stream


def _pkcs8_der(identity: Identity) -> bytes:
    return identity.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize("kind", ["x509-der", "pkcs8-der"])
def test_openssl_envelope_of_der_bytes_opens_as_raw(
    openssl_bin: str, tmp_path: Path, stranger: Identity, kind: str
) -> None:
    """`openssl cms -encrypt` of any bytes is id-data; whatever they are, the reader must give them back.

    A PKCS#8 key (SEQUENCE { INTEGER 0, SEQUENCE { rsaEncryption ... } ... }) has the shape the reader's
    "bare DigestedData under id-data" guess looks for (content.py `read_inner`), so it is taken for a
    DigestedData and refused ("digest algorithm 1.2.840.113549.1.1.1") although OpenSSL opens the envelope.
    """
    if kind == "x509-der":
        payload = stranger.certificate.public_bytes(serialization.Encoding.DER)
    else:
        payload = _pkcs8_der(stranger)
    path = _ossl_encrypt(openssl_bin, tmp_path, payload, "-aes-256-cbc", "-pwri_password", PASSWORD_ARG)
    assert _ossl_decrypt_pwri(openssl_bin, path) == payload
    result, plain = _open(path, [PasswordCredential(password=PASSWORD)])
    assert plain == payload
    assert result.inner.kind == ContentKind.RAW
