"""Hostile envelopes, built the way an attacker would: real envelopes, then the bytes an attacker controls changed.

Every builder works on DER made by dcmseal's own writer, so what is changed is exactly one field (or one
byte), and the rest stays what a legitimate writer produces.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dcmseal import cms
from dcmseal.cms.algorithms import OID_DATA, OID_DIGESTED_DATA, OID_SIGNED_DATA
from dcmseal.cms.content import plan_inner
from dcmseal.cms.der import DerReader, encode_header
from dcmseal.cms.header import read_header
from dcmseal.cms.writer import envelope_head
from tests.part10.dicomfiles import PASSWORD as CLI_PASSWORD

__all__ = [
    "ITERATIONS",
    "PASSWORD",
    "TYPES",
    "Layout",
    "Signer",
    "attribute",
    "counting_cache",
    "credentials",
    "digest_algorithm",
    "digested_der",
    "layout",
    "load_signer",
    "oid_der",
    "readdressed",
    "recipient_parts",
    "resign",
    "seal",
    "seal_inner",
    "set_content_type",
    "signed_der",
    "with_iterations",
]

#: The password of tests/cli's ``password_file`` fixture, so the CLI tests open these envelopes.
PASSWORD = CLI_PASSWORD.encode()
#: PBKDF2 cost of the test envelopes: what is counted is derivations, never time.
ITERATIONS = 4


def oid_der(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


def credentials(password: bytes = PASSWORD) -> list[cms.Credential]:
    return [cms.PasswordCredential(password=password)]


def counting_cache() -> cms.Pbkdf2Cache:
    """A fresh cache: its ``derivations`` counts the PBKDF2 runs of one operation."""
    return cms.Pbkdf2Cache()


def seal(
    payload: bytes,
    inner: cms.InnerSpec | None = None,
    *,
    cipher: cms.ContentCipher = cms.ContentCipher.AES256_CBC,
    iterations: int = ITERATIONS,
    recipients: Sequence[cms.Recipient] | None = None,
) -> bytes:
    """An envelope as dcmseal writes it (DigestedData inside unless ``inner`` says otherwise)."""
    spec = cms.EnvelopeSpec(
        recipients=tuple(recipients)
        if recipients is not None
        else (
            cms.PasswordRecipient(
                password=PASSWORD, kdf=cms.Pbkdf2Params(salt=os.urandom(16), iterations=iterations)
            ),
        ),
        content_cipher=cipher,
        inner=inner if inner is not None else cms.DigestedContent(),
    )
    out = io.BytesIO()
    cms.encrypt(io.BytesIO(payload), out, spec, payload_size=len(payload))
    return out.getvalue()


def seal_inner(inner: bytes, *, declared: str = OID_DATA, **options: object) -> bytes:
    """Encrypt ready-made inner bytes, the envelope declaring ``declared`` (the field is not authenticated)."""
    data = seal(inner, cms.RawContent(), **options)  # type: ignore[arg-type]
    return set_content_type(data, declared) if declared != OID_DATA else data


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the attacker-controlled parts of an envelope lie."""

    content_type_at: int  # the EncryptedContentInfo contentType OID (tag byte)
    iv_at: int  # the first IV byte
    block: int
    content_at: int  # the first ciphertext byte (primitive encryptedContent)
    content_length: int

    def block_at(self, index: int) -> int:
        """Offset of ciphertext block ``index``; -1 is the IV."""
        return self.iv_at if index < 0 else self.content_at + index * self.block


def layout(data: bytes) -> Layout:
    reader = DerReader(io.BytesIO(data), size=len(data))
    header = read_header(reader, max_header_bytes=1 << 20, context=cms.Context())
    assert not header.content.constructed
    assert header.content.length is not None
    content_at = header.content.content_offset
    head = data[:content_at]
    type_at = head.index(oid_der(header.content_type))
    iv_at = head.index(bytes([0x04, len(header.iv)]) + header.iv, type_at) + 2
    return Layout(type_at, iv_at, header.cipher.block_size, content_at, header.content.length)


def set_content_type(data: bytes, dotted: str) -> bytes:
    """The envelope with its EncryptedContentInfo contentType replaced (same length: the PKCS #7 arc)."""
    where = layout(data).content_type_at
    old = data[where : where + 11]
    new = oid_der(dotted)
    assert len(new) == len(old) == 11, "only the 1.2.840.113549.1.7.x types fit in place"
    return data[:where] + new + data[where + 11 :]


def digested_der(
    payload: bytes,
    *,
    algorithm: str = "sha256",
    digest: bytes | None = None,
    version: str | int = "v0",
    content_type: str = "data",
    detached: bool = False,
) -> bytes:
    """A DigestedData over ``payload`` with any field as given (the digest computed unless ``digest``)."""
    if digest is None:
        digest = hashlib.new(algorithm, payload).digest()
    encap: dict[str, object] = {"content_type": content_type}
    if not detached:
        encap["content"] = payload
    return bytes(
        asn1_cms.DigestedData(
            {
                "version": version,
                "digest_algorithm": {"algorithm": algorithm},
                "encap_content_info": encap,
                "digest": digest,
            }
        ).dump()
    )


@dataclass(frozen=True, slots=True)
class Signer:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def spec(self) -> cms.SignedContent:
        return cms.SignedContent(private_key=self.key, certificate=self.certificate)


def load_signer(cert_path: Path, key_path: Path) -> Signer:
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Signer(certificate, key)


def signed_der(
    signer: Signer, payload: bytes, edit: Callable[[asn1_cms.SignedData], None] | None = None
) -> bytes:
    """A SignedData over ``payload`` as dcmseal writes it, then changed by ``edit`` (and signed again by
    ``signer``, so what is refused is the change, not a broken signature)."""
    import datetime as dt

    moment = signer.certificate.not_valid_before_utc + dt.timedelta(hours=1)
    der = b"".join(plan_inner(signer.spec, len(payload), now=lambda: moment).chunks([payload]))
    if edit is None:
        return der
    signed = asn1_cms.SignedData.load(der)
    edit(signed)
    return resign(signed, signer)


def resign(signed: asn1_cms.SignedData, signer: Signer) -> bytes:
    """Sign every SignerInfo of ``signed`` again with ``signer`` (over its signed attributes if any)."""
    for info in signed["signer_infos"]:
        attrs = info["signed_attrs"]
        if isinstance(attrs, core.Void) or not len(attrs):
            econtent = signed["encap_content_info"]["content"]
            data = b"" if isinstance(econtent, core.Void) else econtent.native
            digest = hashlib.sha256(data).digest()
            from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

            signature = signer.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:
            signature = signer.key.sign(
                b"\x31" + attrs.dump(force=True)[1:], padding.PKCS1v15(), hashes.SHA256()
            )
        info["signature"] = signature
    return bytes(signed.dump(force=True))


def attribute(kind: str, *values: object) -> asn1_cms.CMSAttribute:
    return asn1_cms.CMSAttribute({"type": kind, "values": list(values)})


def digest_algorithm(name: str) -> asn1_algos.DigestAlgorithm:
    return asn1_algos.DigestAlgorithm({"algorithm": name})


def recipient_parts(data: bytes) -> tuple[list[bytes], bytes, cms.ContentCipher, bytes, int]:
    """(the RecipientInfos' DER, the ciphertext, the cipher, the IV, the EnvelopedData version) of ``data``."""
    reader = DerReader(io.BytesIO(data), size=len(data))
    header = read_header(reader, max_header_bytes=1 << 20, context=cms.Context())
    assert header.content.length is not None
    ciphertext = data[header.content.content_offset : header.content.content_offset + header.content.length]
    recipients = [bytes(info.dump()) for info in header.recipient_infos]
    return recipients, ciphertext, header.cipher, header.iv, header.version


def readdressed(recipients: list[bytes], like: bytes) -> bytes:
    """An envelope with ``recipients`` (DER RecipientInfos, in this order) around the content of ``like``."""
    _, ciphertext, cipher, iv, version = recipient_parts(like)
    content = b"".join(recipients)
    head = envelope_head(
        version, encode_header(0x31, len(content)) + content, OID_DIGESTED_DATA, cipher, iv, len(ciphertext)
    )
    return head + ciphertext


def with_iterations(recipient: bytes, iterations: int, salt: bytes | None = None) -> bytes:
    """The password RecipientInfo ``recipient`` asking for another iteration count (and salt)."""
    info = asn1_cms.RecipientInfo.load(recipient)
    params = info.chosen["key_derivation_algorithm"]["parameters"]
    params["iteration_count"] = iterations
    if salt is not None:
        params["salt"] = asn1_algos.Pbkdf2Salt(name="specified", value=salt)
    return bytes(info.dump(force=True))


#: OIDs of the PKCS #7 content types, for the inner ContentInfo and the envelope's own field.
TYPES = {"data": OID_DATA, "digested": OID_DIGESTED_DATA, "signed": OID_SIGNED_DATA}
