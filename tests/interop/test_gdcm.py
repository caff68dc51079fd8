"""Interoperability with GDCM `gdcmanon` (PS3.15 E.1 attribute confidentiality; peers.md §1.2, §2.1, §5.3).

`gdcmanon -e` de-identifies a file and puts the original attributes, encrypted as CMS EnvelopedData, in
Encrypted Attributes Sequence (0400,0500) > Encrypted Content (0400,0520). That envelope is made by an
independent producer (GDCM driving OpenSSL's CMS API), so:

* GDCM -> ours: `cms.decrypt` opens it with the password or the private key, and gives the same bytes as
  `openssl cms -decrypt`; the plaintext is the encrypted-attributes data set (raw id-data inside).
* ours -> GDCM: an envelope we write, put back in place of GDCM's, is opened by `gdcmanon -d`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from dcmseal import cms
from dcmseal.cms import (
    CertificateRecipient,
    ContentCipher,
    EnvelopeSpec,
    PasswordCredential,
    PasswordRecipient,
    Pbkdf2Params,
    Prf,
    PrivateKeyCredential,
    RawContent,
)
from dcmseal.cms.content import ContentKind
from dcmseal.cms.envelope import DecryptResult
from dcmseal.cms.recipients import Credential
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError
from tests.peers.tools import run_tool

pytestmark = pytest.mark.interop

PASSWORD = "Gdcm-Interop-Passw0rd!"  # a test password, on the command line on purpose
ORIGINAL_PATIENT_NAME = "CompressedSamples^CT1"
ORIGINAL_PATIENT_ID = "1CT1"
MAX_ITERATIONS = 10_000_000

GDCM_CIPHERS = {
    "--aes128": ContentCipher.AES128_CBC,
    "--aes192": ContentCipher.AES192_CBC,
    "--aes256": ContentCipher.AES256_CBC,
    "--des3": ContentCipher.DES3_CBC,
}


class Identity:
    def __init__(self, cert_path: Path, key_path: Path) -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self.certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self.private_key = key


@pytest.fixture(scope="module")
def ct_small() -> Path:
    path = pydicom.data.get_testdata_file("CT_small.dcm")
    assert isinstance(path, str)
    return Path(path)


@pytest.fixture(scope="module")
def vector_identity(test_cert_and_key: tuple[Path, Path]) -> Identity:
    return Identity(*test_cert_and_key)


@pytest.fixture(scope="module")
def fixed_serial_identity(
    openssl_bin: str, tmp_path_factory: pytest.TempPathFactory, test_cert_and_key: tuple[Path, Path]
) -> Identity:
    """The test key under a certificate with a fixed DN and serial, so GDCM's envelope length is known.

    With this issuer and serial, GDCM's AES KTRI envelope is 981 bytes: odd, so (0400,0520) carries a pad
    byte.
    """
    _, key_path = test_cert_and_key
    cert_path = tmp_path_factory.mktemp("gdcm-cert") / "fixed-serial-cert.pem"
    result = run_tool(
        [
            openssl_bin, "req", "-x509", "-new", "-key", str(key_path),
            "-subj", "/CN=TEST ONLY gdcm recipient", "-set_serial", "4660", "-days", "2",
            "-out", str(cert_path),
        ]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return Identity(cert_path, key_path)


# -- helpers ----------------------------------------------------------------------------------------------
def _gdcmanon(gdcmanon_bin: str, *args: str | Path) -> None:
    argv = [gdcmanon_bin, *(str(a) for a in args)]
    result = run_tool(argv)
    assert result.returncode == 0, f"{' '.join(argv)} -> rc {result.returncode}\n{result.stderr.decode()}"


def _der_length(value: bytes) -> int:
    """Length of the DER element at the start of ``value`` (header included)."""
    assert value[0] == 0x30
    first = value[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(value[2 : 2 + count], "big")


def _envelope_of(anon_path: Path) -> tuple[bytes, bytes, UID]:
    """(0400,0520) of the first Encrypted Attributes item: (the CMS DER, the OB pad, (0400,0510) syntax)."""
    ds = pydicom.dcmread(anon_path)
    (item,) = ds.EncryptedAttributesSequence
    value = bytes(item.EncryptedContent)
    length = _der_length(value)
    envelope, pad = value[:length], value[length:]
    # An OB value has even length (PS3.5 §6.2): an odd-length envelope is followed by one 0x00.
    assert pad in (b"", b"\x00")
    assert len(value) % 2 == 0
    return envelope, pad, UID(item.EncryptedContentTransferSyntaxUID)


def _open(envelope: bytes, credentials: list[Credential]) -> tuple[DecryptResult, bytes]:
    out = io.BytesIO()
    result = cms.decrypt(
        io.BytesIO(envelope),
        out,
        credentials,
        max_iterations=MAX_ITERATIONS,
        size=len(envelope),
        # GDCM's Encrypted Content (PS3.15 Annex E) is id-data, no digest: accepted, and reported so.
        accept_unprotected=True,
    )
    assert result.inner.verified is (result.inner.kind != cms.ContentKind.RAW)
    return result, out.getvalue()


def _ossl_decrypt(openssl_bin: str, tmp_path: Path, envelope: bytes, *credential_args: str | Path) -> bytes:
    path = tmp_path / "gdcm-envelope.p7m"
    path.write_bytes(envelope)
    argv = [openssl_bin, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(path)]
    argv += [str(a) for a in credential_args]
    result = run_tool(argv)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def _check_anonymised(anon_path: Path) -> None:
    ds = pydicom.dcmread(anon_path)
    assert str(ds.PatientName) != ORIGINAL_PATIENT_NAME
    assert ORIGINAL_PATIENT_NAME.encode() not in anon_path.read_bytes()  # only inside the envelope


def _check_attributes(plaintext: bytes, syntax: UID) -> None:
    """The plaintext is the encrypted-attributes data set: Modified Attributes Sequence with the originals."""
    assert ORIGINAL_PATIENT_NAME.encode() in plaintext
    dataset = read_dataset(
        io.BytesIO(plaintext), is_implicit_VR=syntax.is_implicit_VR, is_little_endian=syntax.is_little_endian
    )
    (originals,) = dataset.ModifiedAttributesSequence
    assert str(originals.PatientName) == ORIGINAL_PATIENT_NAME
    assert originals.PatientID == ORIGINAL_PATIENT_ID


# == GDCM -> ours ==========================================================================================
@pytest.mark.parametrize("cipher_option", list(GDCM_CIPHERS))
def test_gdcmanon_password_envelope_opens(
    gdcmanon_bin: str, openssl_bin: str, tmp_path: Path, ct_small: Path, cipher_option: str
) -> None:
    anon = tmp_path / "anon.dcm"
    _gdcmanon(gdcmanon_bin, "-e", "-p", PASSWORD, cipher_option, "-i", ct_small, "-o", anon)
    _check_anonymised(anon)
    envelope, _pad, syntax = _envelope_of(anon)

    result, plaintext = _open(envelope, [PasswordCredential(password=PASSWORD.encode())])
    assert result.envelope.content_cipher is GDCM_CIPHERS[cipher_option]
    assert result.envelope.version == 3
    (description,) = result.envelope.recipients
    assert description.kind == "password"
    assert description.kdf == "pbkdf2"
    assert description.iterations == 2048  # OpenSSL's default: GDCM passes -1 (peers.md §1.3)
    assert description.prf == "sha1"
    assert description.kek_cipher == GDCM_CIPHERS[cipher_option].asn1_name
    assert result.inner.kind == ContentKind.RAW
    assert result.inner.wrapped_in_content_info is False

    assert plaintext == _ossl_decrypt(openssl_bin, tmp_path, envelope, "-pwri_password", PASSWORD)
    _check_attributes(plaintext, syntax)


def test_gdcmanon_password_envelope_wrong_password(gdcmanon_bin: str, tmp_path: Path, ct_small: Path) -> None:
    anon = tmp_path / "anon.dcm"
    _gdcmanon(gdcmanon_bin, "-e", "-p", PASSWORD, "--aes256", "-i", ct_small, "-o", anon)
    envelope, _pad, _syntax = _envelope_of(anon)
    with pytest.raises(DecryptionError) as excinfo:
        _open(envelope, [PasswordCredential(password=b"Not-The-Password")])
    assert str(excinfo.value) == WRONG_KEY_MESSAGE


@pytest.mark.parametrize("cipher_option", ["--aes128", "--aes256", "--des3"])
@pytest.mark.parametrize("identity_name", ["vector_identity", "fixed_serial_identity"])
def test_gdcmanon_certificate_envelope_opens(
    gdcmanon_bin: str,
    openssl_bin: str,
    tmp_path: Path,
    ct_small: Path,
    request: pytest.FixtureRequest,
    identity_name: str,
    cipher_option: str,
) -> None:
    identity: Identity = request.getfixturevalue(identity_name)
    anon = tmp_path / "anon.dcm"
    _gdcmanon(gdcmanon_bin, "-e", "-c", identity.cert_path, cipher_option, "-i", ct_small, "-o", anon)
    _check_anonymised(anon)
    envelope, pad, syntax = _envelope_of(anon)
    if identity_name == "fixed_serial_identity" and cipher_option != "--des3":
        assert (len(envelope), pad) == (981, b"\x00")  # the odd-length case is really exercised

    with_cert, plaintext = _open(
        envelope, [PrivateKeyCredential(private_key=identity.private_key, certificate=identity.certificate)]
    )
    key_only, plaintext_key_only = _open(envelope, [PrivateKeyCredential(private_key=identity.private_key)])
    assert plaintext == plaintext_key_only
    assert with_cert.envelope.content_cipher is GDCM_CIPHERS[cipher_option]
    (description,) = with_cert.envelope.recipients
    assert description.kind == "certificate"
    assert description.key_encryption == "rsaes_pkcs1v15"
    assert description.serial_number == identity.certificate.serial_number
    assert with_cert.inner.kind == key_only.inner.kind == ContentKind.RAW

    from_openssl = _ossl_decrypt(
        openssl_bin, tmp_path, envelope, "-recip", identity.cert_path, "-inkey", identity.key_path
    )
    assert plaintext == from_openssl
    _check_attributes(plaintext, syntax)


# == ours -> GDCM ==========================================================================================
@pytest.mark.parametrize("recipient_kind", ["password", "certificate"])
@pytest.mark.parametrize("cipher", [ContentCipher.AES256_CBC, ContentCipher.DES3_CBC], ids=lambda c: c.value)
def test_gdcmanon_reidentifies_with_our_envelope(
    gdcmanon_bin: str,
    tmp_path: Path,
    ct_small: Path,
    vector_identity: Identity,
    recipient_kind: str,
    cipher: ContentCipher,
) -> None:
    """Put our envelope (same plaintext, raw id-data as GDCM expects) in GDCM's place; GDCM re-identifies."""
    anon = tmp_path / "anon.dcm"
    _gdcmanon(gdcmanon_bin, "-e", "-p", PASSWORD, "--aes256", "-i", ct_small, "-o", anon)
    envelope, _pad, _syntax = _envelope_of(anon)
    _, plaintext = _open(envelope, [PasswordCredential(password=PASSWORD.encode())])

    recipient: PasswordRecipient | CertificateRecipient
    if recipient_kind == "password":
        kdf = Pbkdf2Params(salt=os.urandom(16), iterations=1000, prf=Prf.SHA256)
        recipient = PasswordRecipient(password=PASSWORD.encode(), kdf=kdf)
        credential_args: list[str | Path] = ["-p", PASSWORD]
    else:
        recipient = CertificateRecipient(certificate=vector_identity.certificate)
        credential_args = ["-k", vector_identity.key_path, "-c", vector_identity.cert_path]
    ours = io.BytesIO()
    spec = EnvelopeSpec(recipients=(recipient,), content_cipher=cipher, inner=RawContent())
    cms.encrypt(io.BytesIO(plaintext), ours, spec, payload_size=len(plaintext))

    ds = pydicom.dcmread(anon)
    ds.EncryptedAttributesSequence[0].EncryptedContent = ours.getvalue()
    ours_path = tmp_path / "anon-ours.dcm"
    ds.save_as(ours_path)
    reidentified = tmp_path / "reid.dcm"
    _gdcmanon(gdcmanon_bin, "-d", *credential_args, "-i", ours_path, "-o", reidentified)
    restored = pydicom.dcmread(reidentified)
    assert str(restored.PatientName) == ORIGINAL_PATIENT_NAME
    assert restored.PatientID == ORIGINAL_PATIENT_ID
    assert "EncryptedAttributesSequence" not in restored
