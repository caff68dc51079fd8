"""The organisation's escrow identity: create it, seal a medium password to it, recover with it."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from asn1crypto import algos as asn1_algos
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.padding import PKCS7
from cryptography.x509.oid import NameOID

from dcmseal import cms
from dcmseal.config import DEFAULT_MAX_PBKDF2_ITERATIONS, DEFAULT_PBKDF2_ITERATIONS
from dcmseal.errors import (
    DcmsealError,
    DecryptionError,
    InputError,
    MalformedEnvelopeError,
    UsageError,
    WeakPasswordError,
)
from dcmseal.fsutil import atomic_write, make_state_directory
from dcmseal.keys.passwords import password_octets

__all__ = [
    "ESCROW_CERTIFICATE_NAME",
    "ESCROW_KEY_NAME",
    "ESCROW_KEY_PBKDF2_ITERATIONS",
    "MIN_ESCROW_KEY_BITS",
    "MIN_ESCROW_PASSPHRASE_CHARS",
    "EscrowIdentity",
    "RecoverRequest",
    "RecoverResult",
    "audit_key_change",
    "certificate_fingerprint",
    "create_escrow_identity",
    "load_escrow_certificate",
    "open_escrowed_password",
    "recover",
    "seal_password_for_escrow",
    "unlock_escrow_key",
]

if TYPE_CHECKING:
    from dcmseal.audit import AuditSink
    from dcmseal.keys.registry import Registry

logger = logging.getLogger(__name__)

#: NIST SP 800-57 Part 1 Rev. 5 Table 2: RSA-3072 gives 128-bit security, good beyond 2030; the escrow
#: key must outlive every medium sealed to it, so nothing smaller.
MIN_ESCROW_KEY_BITS = 3072
#: The escrow key file is protected by this passphrase alone once copied; 12 characters is the floor.
MIN_ESCROW_PASSPHRASE_CHARS = 12
#: PBKDF2-HMAC-SHA256 rounds protecting the escrow key file (PBES2 with AES-256-CBC, RFC 8018 §6.2).
#: Twice a medium password's: the file opens every medium ever sealed to it, and it is unlocked only for
#: a recovery, where 0.15 s is nothing. (``BestAvailableEncryption``, used before, gave 2,048 rounds.)
ESCROW_KEY_PBKDF2_ITERATIONS = 2 * DEFAULT_PBKDF2_ITERATIONS
ESCROW_CERTIFICATE_NAME = "escrow-cert.pem"
ESCROW_KEY_NAME = "escrow-key.pem"

#: X.509 ub-common-name is 64 characters; the CN is "<org> dcmseal escrow".
_CN_SUFFIX = " dcmseal escrow"
_MAX_ORG_CHARS = 64 - len(_CN_SUFFIX)
_UNLOCK_FAILED_MESSAGE = "wrong passphrase for the escrow key"


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowIdentity:
    """Where an escrow identity was written and how to recognise its certificate."""

    certificate_path: Path
    key_path: Path
    fingerprint: str  # SHA-256 of the certificate DER, lowercase hex
    subject: str  # RFC 4514

    def to_json(self) -> dict[str, object]:
        return {
            "certificate_path": str(self.certificate_path),
            "key_path": str(self.key_path),
            "fingerprint": self.fingerprint,
            "subject": self.subject,
        }


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lowercase hex (how the registry names certificates)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=moment.year + years, day=28)


def _encrypted_pkcs8_pem(key: rsa.RSAPrivateKey, passphrase: bytes) -> bytes:
    """``key`` as an encrypted PKCS#8 PEM (RFC 5958): PBES2 (RFC 8018 §6.2), PBKDF2-HMAC-SHA256, AES-256-CBC.

    Built here because cryptography chooses the round count only for PKCS#12 and OpenSSH keys (its
    ``BestAvailableEncryption`` gives PKCS#8 2,048 rounds); any PKCS#8 reader (OpenSSL, cryptography) opens it.
    """
    salt, iv = os.urandom(16), os.urandom(16)
    kek = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=32, salt=salt, iterations=ESCROW_KEY_PBKDF2_ITERATIONS
    ).derive(passphrase)
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    padder = PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    info = asn1_keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": asn1_algos.Pbkdf2Salt(name="specified", value=salt),
                            "iteration_count": ESCROW_KEY_PBKDF2_ITERATIONS,
                            "prf": {"algorithm": "sha256"},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": encrypted,
        }
    )
    armored: bytes = asn1_pem.armor("ENCRYPTED PRIVATE KEY", info.dump())
    return armored


def create_escrow_identity(
    org: str,
    directory: Path,
    *,
    passphrase: bytes,
    key_size: int = MIN_ESCROW_KEY_BITS,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    valid_years: int = 30,
    audit: AuditSink | None = None,
    operator: str = "",
) -> EscrowIdentity:
    """Create the organisation's escrow key pair and self-signed certificate in ``directory``.

    Writes ``escrow-key.pem`` (encrypted PKCS#8, RFC 5958: PBES2, PBKDF2-HMAC-SHA256 with
    :data:`ESCROW_KEY_PBKDF2_ITERATIONS` rounds, AES-256-CBC; mode 0600) and ``escrow-cert.pem``, each
    atomically; neither file is overwritten. The certificate is an end-entity certificate for RSA key
    transport (RFC 5652 §6.2.1): keyEncipherment and digitalSignature, CA false.

    Parameters
    ----------
    org
        The organisation name: the certificate's O, and its CN as "<org> dcmseal escrow".
    directory
        Where the two files go (created if missing).
    passphrase
        Protects the private key; at least 12 characters.
    key_size
        RSA modulus size in bits, at least 3072.
    audit
        Where the Security Alert of the new key goes (CID 403 "Security Configuration", see
        :func:`audit_key_change`); ``None`` for a caller that audits on its own.
    operator
        Who creates it, for that alert.

    Returns
    -------
    EscrowIdentity

    Raises
    ------
    ValueError
        ``key_size`` below 3072 or ``valid_years`` below 1.
    UsageError
        ``org`` is empty or too long for a certificate name.
    WeakPasswordError
        The passphrase is shorter than 12 characters.
    InputError
        One of the files exists already.
    """
    if key_size < MIN_ESCROW_KEY_BITS:
        raise ValueError(f"escrow keys are RSA-{MIN_ESCROW_KEY_BITS} or larger, not {key_size} bits")
    if valid_years < 1:
        raise ValueError("valid_years must be at least 1")
    org = org.strip()
    if not org:
        raise UsageError("the organisation name must not be empty")
    if len(org) > _MAX_ORG_CHARS:
        raise UsageError(f"the organisation name must be at most {_MAX_ORG_CHARS} characters")
    if len(passphrase.decode("utf-8", errors="replace")) < MIN_ESCROW_PASSPHRASE_CHARS:
        raise WeakPasswordError(
            f"the escrow key passphrase must be at least {MIN_ESCROW_PASSPHRASE_CHARS} characters"
        )
    directory = Path(directory)
    cert_path = directory / ESCROW_CERTIFICATE_NAME
    key_path = directory / ESCROW_KEY_NAME
    for existing in (key_path, cert_path):
        if existing.exists():
            raise InputError("exists already; an escrow identity is never overwritten", path=existing)

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, org + _CN_SUFFIX),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        ]
    )
    not_before = now().astimezone(UTC).replace(microsecond=0) - timedelta(minutes=5)  # clock skew
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(_add_years(not_before, valid_years))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = _encrypted_pkcs8_pem(key, passphrase)
    # 0700 (2770 in a shared station's folder): no other user may put a certificate of their own here, which
    # every later burn would seal to.
    make_state_directory(directory)
    try:
        with atomic_write(key_path, mode=0o600) as out:
            out.write(key_pem)
    except FileExistsError:
        raise InputError("exists already; an escrow identity is never overwritten", path=key_path) from None
    try:
        with atomic_write(cert_path, mode=0o644) as out:
            out.write(certificate.public_bytes(serialization.Encoding.PEM))
    except BaseException:
        key_path.unlink(missing_ok=True)  # a key without its certificate is of no use to anyone
        if cert_path.exists():
            raise InputError(
                "exists already; an escrow identity is never overwritten", path=cert_path
            ) from None
        raise
    identity = EscrowIdentity(
        certificate_path=cert_path,
        key_path=key_path,
        fingerprint=certificate_fingerprint(certificate),
        subject=certificate.subject.rfc4514_string(),
    )
    logger.info("escrow identity %s written to %s", identity.fingerprint, directory)
    if audit is not None:
        audit_key_change(
            audit,
            description=f"escrow key pair created ({key_size}-bit RSA) for {org}",
            fingerprint=identity.fingerprint,
            operator=operator,
        )
    return identity


def audit_key_change(audit: AuditSink, *, description: str, fingerprint: str, operator: str) -> None:
    """Audit a change of the keys media are sealed to: a Security Alert of type "Security Configuration".

    PS3.15 A.5.3.11 with EventTypeCode (110129, DCM, "Security Configuration") from CID 403; the Alert
    Subject is the certificate, named by its SHA-256 fingerprint.

    Parameters
    ----------
    audit : AuditSink
        Where the message goes.
    description : str
        What changed, in one line (never a secret).
    fingerprint : str
        The SHA-256 fingerprint of the certificate concerned (:func:`certificate_fingerprint`).
    operator : str
        Who changed it.

    Raises
    ------
    DcmsealError
        The sink cannot record the message.
    """
    from dcmseal.audit import (
        ALERT_TYPE_SECURITY_CONFIGURATION,
        ID_TYPE_CERTIFICATE_FINGERPRINT,
        AuditUser,
        security_alert,
    )

    audit.emit(
        security_alert(
            user=AuditUser(user_id=operator or "unknown"),
            description=description,
            alert_type=ALERT_TYPE_SECURITY_CONFIGURATION,
            medium_id=fingerprint,
            subject_id_type=ID_TYPE_CERTIFICATE_FINGERPRINT,
        )
    )


def load_escrow_certificate(path: Path) -> x509.Certificate:
    """Read an RSA certificate (PEM or DER) from ``path``.

    Raises
    ------
    InputError
        The file cannot be read, is not a certificate, or does not hold an RSA key.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the certificate: {exc.strerror}", path=path) from None
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certificate = x509.load_pem_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
    except ValueError:
        raise InputError("not a PEM or DER X.509 certificate", path=path) from None
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise InputError("not an RSA certificate (PS3.15 D.1 key transport is RSA)", path=path)
    return certificate


def unlock_escrow_key(path: Path, passphrase: bytes) -> rsa.RSAPrivateKey:
    """Decrypt the escrow private key (encrypted PKCS#8 PEM) at ``path`` with ``passphrase``.

    Raises
    ------
    DecryptionError
        Wrong passphrase ("wrong passphrase for the escrow key").
    InputError
        The file cannot be read, holds no encrypted private key, or the key is not RSA.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the escrow key: {exc.strerror}", path=path) from None
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in data:
        raise InputError(
            "not an encrypted PKCS#8 PEM private key (the escrow key is always stored encrypted)", path=path
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError):
        # cryptography cannot tell a wrong passphrase from a damaged file once the PEM is encrypted.
        raise DecryptionError(_UNLOCK_FAILED_MESSAGE, path=path) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InputError("not an RSA private key", path=path)
    return key


def seal_password_for_escrow(password: bytes, certificate: x509.Certificate) -> bytes:
    """Seal a medium password to the escrow certificate.

    Returns the DER of a ContentInfo(EnvelopedData) (RFC 5652 §6) with one KeyTransRecipientInfo
    (RSA PKCS#1 v1.5, issuerAndSerialNumber) for ``certificate``, AES-256-CBC, and a DigestedData
    (SHA-256, RFC 5652 §7) holding the password: what a burn station stores and only the escrow key
    holder can open (``openssl cms -decrypt -recip cert -inkey key`` does too).

    Raises
    ------
    ValueError
        Empty password, or a certificate that is not RSA.
    """
    if not password:
        raise ValueError("there is no password to seal")
    spec = cms.EnvelopeSpec(
        recipients=(cms.CertificateRecipient(certificate=certificate),),
        content_cipher=cms.ContentCipher.AES256_CBC,
    )
    sink = io.BytesIO()
    cms.encrypt(io.BytesIO(password), sink, spec, payload_size=len(password))
    return sink.getvalue()


def open_escrowed_password(
    blob: bytes, private_key: rsa.RSAPrivateKey, certificate: x509.Certificate
) -> bytes:
    """Open a blob made by :func:`seal_password_for_escrow` and return the password.

    Raises
    ------
    DecryptionError
        The blob is not addressed to this key, or its digest does not match (one message).
    MalformedEnvelopeError
        The blob is not an envelope, or holds no DigestedData.
    UnprotectedContentError
        The blob holds no digest at all.
    """
    sink = io.BytesIO()
    result = cms.decrypt(
        io.BytesIO(blob),
        sink,
        [cms.PrivateKeyCredential(private_key=private_key, certificate=certificate)],
        max_iterations=DEFAULT_MAX_PBKDF2_ITERATIONS,
        size=len(blob),
    )
    if result.inner.kind != cms.ContentKind.DIGESTED:
        raise MalformedEnvelopeError(
            f"the escrowed password is in {result.inner.kind}, not the DigestedData dcmseal writes"
        )
    return sink.getvalue()


# -- recovery ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoverRequest:
    """Who recovers which medium's password, why, and with which escrow key.

    Attributes
    ----------
    medium_id : str
        The medium, as registered or as typed (case and Crockford look-alikes are forgiven).
    escrow_key : Path
        The escrow private key (encrypted PKCS#8 PEM).
    passphrase : str or bytes
        The escrow key's passphrase (a ``str`` NFC-normalised and UTF-8 encoded, as every password).
    reason : str
        Why; recorded with the recovery and in the audit trail.
    operator : str
        Who; recorded likewise.
    escrow_certificate : Path or None
        The escrow certificate; ``escrow-cert.pem`` beside the key unless given.
    """

    medium_id: str
    escrow_key: Path
    passphrase: str | bytes = field(repr=False)
    reason: str
    operator: str
    escrow_certificate: Path | None = None

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise UsageError("--reason must say why the password is recovered")
        object.__setattr__(self, "passphrase", self.passphrase_bytes)  # the one conversion

    @property
    def passphrase_bytes(self) -> bytes:
        """The passphrase's octets (:func:`~dcmseal.keys.password_octets`)."""
        return password_octets(self.passphrase)

    @property
    def certificate_path(self) -> Path:
        """The escrow certificate to use: the one named, else the one beside the key."""
        return self.escrow_certificate or self.escrow_key.with_name(ESCROW_CERTIFICATE_NAME)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoverResult:
    """A medium's password, recovered, recorded in the registry and audited."""

    medium_id: str
    password: str = field(repr=False)

    def to_json(self) -> dict[str, object]:
        """The result as JSON-ready data (``dcmseal.keys.recover/1``); it holds the password."""
        return {"schema": "dcmseal.keys.recover/1", "medium_id": self.medium_id, "password": self.password}


def recover(request: RecoverRequest, *, registry: Registry, audit: AuditSink) -> RecoverResult:
    """Recover a medium's password with the escrow key, record it in the registry, and audit it.

    Every attempt is a use of a restricted function (PS3.15 A.5.3.11): a Security Alert names the medium
    as registered, the reason and the operator, with EventOutcomeIndicator 0 when the password was
    recovered and 8 (serious failure) when it was not (wrong passphrase, another escrow key, no such
    medium). The password is in the result only; never in the audit message or the log.

    Parameters
    ----------
    request : RecoverRequest
        The medium, the escrow key and passphrase, the reason and the operator.
    registry : Registry
        The registry the medium was burned into; the recovery is recorded there.
    audit : AuditSink
        Where the Security Alert goes.

    Returns
    -------
    RecoverResult
        The medium ID as registered, and its password.

    Raises
    ------
    DecryptionError
        Wrong passphrase for the escrow key, or the key does not open the escrowed password.
    InputError
        No such medium, none escrowed, or the certificate is not the one the medium was sealed to.
    PeerError
        The registry is unreachable.
    """
    from dcmseal.audit import AuditUser, EventOutcome, security_alert

    medium = request.medium_id
    details = {"Recovery Reason": request.reason}
    try:
        certificate = load_escrow_certificate(request.certificate_path)
        private_key = unlock_escrow_key(
            request.escrow_key, request.passphrase_bytes
        )  # a wrong one is an attempt
        medium = registry.get_medium(medium).medium_id  # as registered, for the record and the audit trail
        password = registry.recover_password(
            medium,
            private_key=private_key,
            certificate=certificate,
            operator=request.operator,
            reason=request.reason,
        )
    except DcmsealError as exc:
        # A recovery that fails is a use of a restricted function too (PS3.15 A.5.3.11, outcome 8).
        audit.emit(
            security_alert(
                user=AuditUser(user_id=request.operator),
                description=f"escrow recovery of a medium password failed: {exc.message}",
                medium_id=medium,
                details=details,
                outcome=EventOutcome.SERIOUS_FAILURE,
            )
        )
        raise
    audit.emit(
        security_alert(
            user=AuditUser(user_id=request.operator),
            description="escrow key used to recover a medium password",
            medium_id=medium,
            details=details,
        )
    )
    return RecoverResult(medium_id=medium, password=password)
