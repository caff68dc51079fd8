"""EnvelopedData (RFC 5652 §6): stream-encrypt, stream-decrypt and describe, with any mix of recipients."""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from asn1crypto import algos, cms, core
from cryptography import x509

from dcmseal.cms.algorithms import (
    OID_AUTH_ENVELOPED_DATA,
    OID_DATA,
    OID_DIGESTED_DATA,
    OID_ENVELOPED_DATA,
    OID_SIGNED_DATA,
    ContentCipher,
)
from dcmseal.cms.asn1 import load
from dcmseal.cms.content import DigestedContent, InnerResult, InnerSpec, plan_inner, read_inner
from dcmseal.cms.der import (
    TAG_CONTEXT_0_CONSTRUCTED,
    TAG_CONTEXT_0_PRIMITIVE,
    TAG_CONTEXT_1_CONSTRUCTED,
    TAG_OID,
    TAG_SEQUENCE,
    TAG_SET,
    ByteSource,
    DerReader,
    Header,
    encode_header,
)
from dcmseal.cms.kdf import Pbkdf2Cache
from dcmseal.cms.recipients import (
    Credential,
    Recipient,
    RecipientDescription,
    build_recipient_info,
    describe_recipient_info,
    encode_recipient_info,
    open_recipient_infos,
)
from dcmseal.errors import DecryptionError, MalformedEnvelopeError, UnsupportedAlgorithmError

__all__ = [
    "CHUNK_SIZE_BYTES",
    "DecryptResult",
    "EnvelopeInfo",
    "EnvelopeSpec",
    "Writable",
    "decrypt",
    "encrypt",
    "inspect",
    "is_enveloped_data",
    "readdress",
]

CHUNK_SIZE_BYTES = 1024 * 1024
_ENVELOPED_PREFIX = bytes.fromhex("06092a864886f70d010703")
_AUTH_ENVELOPED_PREFIX = bytes.fromhex("060b2a864886f70d0109100117")


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeSpec:
    """What to build: recipients (at least one), content cipher, and the inner structure."""

    recipients: tuple[Recipient, ...]
    content_cipher: ContentCipher
    inner: InnerSpec = field(default_factory=DigestedContent)

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError("an envelope needs at least one recipient")


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeInfo:
    """What an envelope says about itself, without any key."""

    version: int
    content_cipher: ContentCipher
    content_type: str  # "digested-data", "signed-data", "data", or a dotted OID
    recipients: tuple[RecipientDescription, ...]
    encrypted_size: int | None
    envelope_size: int | None
    ber: bool
    has_originator_info: bool = False
    has_unprotected_attributes: bool = False

    @property
    def in_profile(self) -> bool:
        """Whether envelope and every recipient keep to PS3.15 D.1 (what the reader can check unopened)."""
        return all(r.in_profile for r in self.recipients) and self.content_type in (
            "digested-data",
            "signed-data",
        )

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "content_cipher": self.content_cipher.value,
            "content_type": self.content_type,
            "encrypted_size": self.encrypted_size,
            "envelope_size": self.envelope_size,
            "encoding": "BER" if self.ber else "DER",
            "in_profile": self.in_profile,
            "recipients": [r.to_json() for r in self.recipients],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DecryptResult:
    """A decrypted and verified envelope."""

    envelope: EnvelopeInfo
    inner: InnerResult
    recipient_index: int

    @property
    def conformant(self) -> bool:
        return self.envelope.in_profile and self.inner.conformant


_CONTENT_TYPE_NAMES = {OID_DIGESTED_DATA: "digested-data", OID_SIGNED_DATA: "signed-data", OID_DATA: "data"}


def is_enveloped_data(head: bytes) -> bool:
    """Whether ``head`` (the first 32 bytes or more) starts a ContentInfo of id-envelopedData (by content)."""
    if len(head) < 2 or head[0] != TAG_SEQUENCE:
        return False
    length_octet = head[1]
    skip = 2 if length_octet < 0x80 or length_octet == 0x80 else 2 + (length_octet & 0x7F)
    return head[skip : skip + len(_ENVELOPED_PREFIX)] == _ENVELOPED_PREFIX


# -- writing ----------------------------------------------------------------------------------------
def _envelope_version(recipients: Sequence[cms.RecipientInfo]) -> str:
    # RFC 5652 §6.1: 3 with a pwri or ori; 0 when every RecipientInfo is v0 (and no originatorInfo or
    # unprotectedAttrs, which we never write); otherwise 2.
    if any(ri.name in ("pwri", "ori") for ri in recipients):
        return "v3"
    if all(ri.chosen["version"].native == "v0" for ri in recipients):
        return "v0"
    return "v2"


def _version_of(recipients: Sequence[RecipientDescription]) -> int:
    """RFC 5652 §6.1, from the descriptions of what is written (same rule as :func:`_envelope_version`)."""
    if any(r.kind == "password" for r in recipients):
        return 3
    return 0 if all(r.version == 0 for r in recipients) else 2


@functools.cache
def _oid_der(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


def _algorithm_with_iv(cipher: ContentCipher, iv: bytes) -> bytes:
    """AlgorithmIdentifier { cipher OID, OCTET STRING iv } (RFC 3565 §4.1, RFC 3370 §5.1)."""
    content = _oid_der(cipher.oid) + encode_header(0x04, len(iv)) + iv
    return encode_header(TAG_SEQUENCE, len(content)) + content


def _envelope_head(
    version: int,
    recipient_set: bytes,
    content_type: str,
    cipher: ContentCipher,
    iv: bytes,
    encrypted_len: int,
) -> bytes:
    """DER of ContentInfo(EnvelopedData) up to the encrypted content octets, whose length is known ahead."""
    version_der = bytes([0x02, 0x01, version])
    cipher_alg = _algorithm_with_iv(cipher, iv)
    content_type_der = _oid_der(content_type)
    encrypted_header = encode_header(TAG_CONTEXT_0_PRIMITIVE, encrypted_len)
    eci_len = len(content_type_der) + len(cipher_alg) + len(encrypted_header) + encrypted_len
    eci_header = encode_header(TAG_SEQUENCE, eci_len)
    ed_len = len(version_der) + len(recipient_set) + len(eci_header) + eci_len
    ed_header = encode_header(TAG_SEQUENCE, ed_len)
    explicit = encode_header(TAG_CONTEXT_0_CONSTRUCTED, len(ed_header) + ed_len)
    oid = _oid_der(OID_ENVELOPED_DATA)
    return b"".join(
        [
            encode_header(TAG_SEQUENCE, len(oid) + len(explicit) + len(ed_header) + ed_len),
            oid,
            explicit,
            ed_header,
            version_der,
            recipient_set,
            eci_header,
            content_type_der,
            cipher_alg,
            encrypted_header,
        ]
    )


def encrypt(
    source: ByteSource,
    sink: Writable,
    spec: EnvelopeSpec,
    *,
    payload_size: int,
    kdf_cache: Pbkdf2Cache,
    rng: Callable[[int], bytes] = os.urandom,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    chunk_size: int = CHUNK_SIZE_BYTES,
) -> EnvelopeInfo:
    """Write a DER ContentInfo(EnvelopedData) of ``payload_size`` bytes read from ``source`` into ``sink``.

    One pass, memory bounded by ``chunk_size``: every length is known before the payload is read,
    because CBC with PKCS#7 padding adds exactly ``block - size % block`` bytes.

    Raises
    ------
    ValueError
        ``source`` gave a number of bytes other than ``payload_size``.
    """
    cipher = spec.content_cipher
    cek = rng(cipher.key_size)
    iv = rng(cipher.block_size)
    encoded = [encode_recipient_info(r, cek, cipher, kdf_cache=kdf_cache, rng=rng) for r in spec.recipients]
    # DER sorts a SET OF by encoding (X.690 §11.6), so the file's order is not the spec's.
    encoded.sort(key=lambda pair: pair[0])
    descriptions = tuple(description for _, description in encoded)
    version = _version_of(descriptions)
    plan = plan_inner(spec.inner, payload_size, now=now)
    recipient_content = b"".join(der for der, _ in encoded)
    recipient_set = encode_header(TAG_SET, len(recipient_content)) + recipient_content
    encrypted_len = (plan.length // cipher.block_size + 1) * cipher.block_size
    head = _envelope_head(version, recipient_set, plan.content_type, cipher, iv, encrypted_len)
    sink.write(head)

    def payload() -> Iterator[bytes]:
        remaining = payload_size
        while remaining:
            chunk = source.read(min(chunk_size, remaining))
            if not chunk:
                raise ValueError(f"the source ended {remaining} bytes before the announced payload size")
            remaining -= len(chunk)
            yield chunk
        if source.read(1):
            raise ValueError("the source holds more bytes than the announced payload size")

    encryptor = cipher.encryptor(cek, iv)
    written = 0
    for piece in plan.chunks(payload()):
        out = encryptor.update(piece)  # partial blocks stay inside the CBC context
        written += len(out)
        sink.write(out)
    pad = cipher.block_size - (plan.length % cipher.block_size)
    out = encryptor.update(bytes([pad]) * pad) + encryptor.finalize()
    written += len(out)
    sink.write(out)
    if written != encrypted_len:  # the plan and the stream disagree: a bug, never a user error
        raise AssertionError(f"wrote {written} encrypted bytes, planned {encrypted_len}")
    return EnvelopeInfo(
        version=version,
        content_cipher=cipher,
        content_type=_CONTENT_TYPE_NAMES[plan.content_type],
        recipients=descriptions,
        encrypted_size=encrypted_len,
        envelope_size=len(head) + encrypted_len,
        ber=False,
    )


# -- reading ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Header:
    """Everything before the encrypted content, parsed; the reader sits at the encrypted content."""

    containers: list[Header]
    version: int
    recipient_infos: cms.RecipientInfos
    content_type: str
    cipher: ContentCipher
    iv: bytes
    content: Header
    has_originator_info: bool
    ber: bool


def _check_recipient_version(index: int, info: cms.RecipientInfo) -> None:
    """RFC 5652 §6.2.1 / RFC 3211 §2.2: KTRI is v0 (issuerAndSerialNumber) or v2 (subjectKeyIdentifier), PWRI v0."""
    if info.name not in ("ktri", "pwri"):
        return
    version = info.chosen["version"].native
    if info.name == "pwri":
        expected = "v0"
    else:
        expected = "v2" if info.chosen["rid"].name == "subject_key_identifier" else "v0"
    if version != expected:
        raise MalformedEnvelopeError(
            f"recipient {index} ({info.name}) has version {version}, expected {expected}"
        )


def _read_header(reader: DerReader, *, max_header_bytes: int) -> _Header:
    head = reader.peek(32)
    if not head:
        raise MalformedEnvelopeError("empty file: not a CMS envelope")
    outer = reader.expect(TAG_SEQUENCE, "ContentInfo")
    oid_header = reader.expect(TAG_OID, "ContentInfo contentType")
    oid_value = reader.read_value(oid_header, "ContentInfo contentType", limit=64)
    oid = core.ObjectIdentifier.load(encode_header(TAG_OID, len(oid_value)) + oid_value).dotted
    if oid == OID_AUTH_ENVELOPED_DATA:
        raise UnsupportedAlgorithmError(
            "AuthEnvelopedData (AES-GCM, RFC 5083) is not the EnvelopedData PS3.15 D.1 requires"
        )
    if oid != OID_ENVELOPED_DATA:
        raise MalformedEnvelopeError(f"ContentInfo of type {oid}, not id-envelopedData")
    explicit = reader.expect(TAG_CONTEXT_0_CONSTRUCTED, "ContentInfo content")
    enveloped = reader.expect(TAG_SEQUENCE, "EnvelopedData")
    version_bytes = reader.read_element("EnvelopedData version", limit=16)
    version = int(load(core.Integer, version_bytes, "EnvelopedData version").native)
    has_originator = False
    first = reader.peek(1)
    if first and first[0] == TAG_CONTEXT_0_CONSTRUCTED:
        reader.read_element("EnvelopedData originatorInfo", limit=max_header_bytes)
        has_originator = True
    recipients_raw = reader.read_element("EnvelopedData recipientInfos", limit=max_header_bytes)
    if recipients_raw[:1] != bytes([TAG_SET]):
        raise MalformedEnvelopeError("EnvelopedData recipientInfos is not a SET")
    recipient_infos = load(cms.RecipientInfos, recipients_raw, "recipientInfos")
    if not len(recipient_infos):
        raise MalformedEnvelopeError("EnvelopedData without recipients")
    for index, info in enumerate(recipient_infos):
        _check_recipient_version(index, info)
    eci = reader.expect(TAG_SEQUENCE, "EncryptedContentInfo")
    ct_header = reader.expect(TAG_OID, "EncryptedContentInfo contentType")
    ct_value = reader.read_value(ct_header, "EncryptedContentInfo contentType", limit=64)
    content_type = core.ObjectIdentifier.load(encode_header(TAG_OID, len(ct_value)) + ct_value).dotted
    if content_type not in _CONTENT_TYPE_NAMES:
        raise UnsupportedAlgorithmError(
            f"encrypted content of type {content_type}: PS3.15 D.1 encrypts DigestedData or SignedData"
        )
    alg = load(
        algos.EncryptionAlgorithm,
        reader.read_element("contentEncryptionAlgorithm", limit=1024),
        "contentEncryptionAlgorithm",
    )
    name = alg["algorithm"].native
    cipher = ContentCipher.from_asn1_name(name)
    if cipher is None:
        raise UnsupportedAlgorithmError(
            f"content cipher {name}: PS3.15 D.1 uses AES-128/192/256-CBC or 3DES-CBC"
        )
    iv = alg["parameters"].native
    if not isinstance(iv, bytes) or len(iv) != cipher.block_size:
        raise MalformedEnvelopeError(f"content cipher IV must be {cipher.block_size} bytes")
    if reader.at_end_of(eci):
        raise UnsupportedAlgorithmError("detached encrypted content (not in this file)")
    content = reader.read_header("encryptedContent")
    if content.tag not in (TAG_CONTEXT_0_PRIMITIVE, TAG_CONTEXT_0_CONSTRUCTED):
        raise MalformedEnvelopeError(
            f"encryptedContent at offset {content.offset}: expected [0], found tag 0x{content.tag:02X}"
        )
    ber = any(h.length is None for h in (outer, explicit, enveloped, eci, content)) or content.constructed
    return _Header(
        containers=[outer, explicit, enveloped, eci],
        version=version,
        recipient_infos=recipient_infos,
        content_type=content_type,
        cipher=cipher,
        iv=iv,
        content=content,
        has_originator_info=has_originator,
        ber=ber,
    )


def _finish(reader: DerReader, header: _Header) -> bool:
    """Consume what follows the encrypted content; return whether unprotectedAttrs were present."""
    outer, explicit, enveloped, eci = header.containers
    reader.close(eci, "EncryptedContentInfo")
    unprotected = False
    first = reader.peek(1)
    if first and first[0] == TAG_CONTEXT_1_CONSTRUCTED:
        reader.read_element("unprotectedAttrs", limit=1024 * 1024)
        unprotected = True
    reader.close(enveloped, "EnvelopedData")
    reader.close(explicit, "ContentInfo content")
    reader.close(outer, "ContentInfo")
    return unprotected


def _info(
    header: _Header, *, encrypted_size: int | None, envelope_size: int | None, unprotected: bool
) -> EnvelopeInfo:
    return EnvelopeInfo(
        version=header.version,
        content_cipher=header.cipher,
        content_type=_CONTENT_TYPE_NAMES.get(header.content_type, header.content_type),
        recipients=tuple(describe_recipient_info(ri) for ri in header.recipient_infos),
        encrypted_size=encrypted_size,
        envelope_size=envelope_size,
        ber=header.ber,
        has_originator_info=header.has_originator_info,
        has_unprotected_attributes=unprotected,
    )


def inspect(
    source: ByteSource, *, size: int | None = None, max_header_bytes: int = 16 * 1024 * 1024
) -> EnvelopeInfo:
    """Describe an envelope without opening it (reads it through to learn the encrypted size)."""
    reader = DerReader(source, size=size)
    header = _read_header(reader, max_header_bytes=max_header_bytes)
    encrypted = sum(
        len(c) for c in reader.iter_octets(header.content, "encryptedContent", chunk_size=CHUNK_SIZE_BYTES)
    )
    unprotected = _finish(reader, header)
    return _info(header, encrypted_size=encrypted, envelope_size=reader.offset, unprotected=unprotected)


class _CbcPlaintext:
    """The plaintext of a CBC ciphertext stream as a :class:`ByteSource`, PKCS#7 padding checked and removed."""

    def __init__(self, ciphertext: Iterator[bytes], cipher: ContentCipher, key: bytes, iv: bytes) -> None:
        self._ciphertext = ciphertext
        self._decryptor = cipher.decryptor(key, iv)
        self._block = cipher.block_size
        self._ready = b""  # decrypted bytes known not to be padding
        self._position = 0  # how much of _ready was handed out
        self._held = b""  # the last decrypted block: it may be padding
        self._done = False
        self.ciphertext_size = 0

    def _pull(self) -> None:
        """Decrypt the next ciphertext chunk into ``_ready`` (which must be used up)."""
        chunk = next(self._ciphertext, None)
        if chunk is None:
            self._done = True
            if self.ciphertext_size == 0 or self.ciphertext_size % self._block:
                raise MalformedEnvelopeError(
                    f"encrypted content of {self.ciphertext_size} bytes is not a whole number of blocks"
                )
            tail = self._held + self._decryptor.finalize()
            pad = tail[-1]
            # Decide once on every padding byte (RFC 5652 §6.3); the message says nothing of which.
            valid = 1 <= pad <= self._block
            span = pad if valid else self._block
            if not (hmac.compare_digest(tail[-span:], bytes([pad]) * span) & valid):
                raise DecryptionError() from None
            self._ready, self._position, self._held = tail[:-pad], 0, b""
            return
        self.ciphertext_size += len(chunk)
        plain = self._decryptor.update(chunk)
        if len(plain) >= self._block:
            self._ready = self._held + plain[: -self._block] if self._held else plain[: -self._block]
            self._held = plain[-self._block :]
        else:
            combined = self._held + plain
            keep = max(0, len(combined) - self._block)
            self._ready, self._held = combined[:keep], combined[keep:]
        self._position = 0

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` plaintext bytes (all that remain for ``n < 0``); ``b""`` at the end."""
        if n < 0:
            parts = [self._ready[self._position :]]
            self._ready, self._position = b"", 0
            while not self._done:
                self._pull()
                parts.append(self._ready)
            self._ready = b""
            return b"".join(parts)
        while self._position >= len(self._ready):
            if self._done:
                return b""
            self._pull()
        if self._position == 0 and n >= len(self._ready):
            data, self._ready = self._ready, b""
            return data
        data = self._ready[self._position : self._position + n]
        self._position += len(data)
        return data


def decrypt(
    source: ByteSource,
    sink: Writable,
    credentials: Sequence[Credential],
    *,
    kdf_cache: Pbkdf2Cache,
    max_iterations: int,
    size: int | None = None,
    max_header_bytes: int = 16 * 1024 * 1024,
    trusted_certificates: tuple[x509.Certificate, ...] = (),
    chunk_size: int = CHUNK_SIZE_BYTES,
) -> DecryptResult:
    """Decrypt an envelope from ``source``, stream the payload to ``sink``, verify digest or signature.

    Structure is checked before any secret is used. The payload written to ``sink`` is provisional
    until this returns: on any exception the caller must discard it.

    Raises
    ------
    MalformedEnvelopeError, UnsupportedAlgorithmError, ResourceLimitError
        Before any key is tried.
    DecryptionError
        No credential opens the envelope, or the padding is wrong (one message).
    IntegrityError
        The digest or signature does not match.
    """
    if not credentials:
        raise ValueError("decrypt needs at least one credential")
    reader = DerReader(source, size=size)
    header = _read_header(reader, max_header_bytes=max_header_bytes)
    cek, index = open_recipient_infos(
        list(header.recipient_infos),
        credentials,
        header.cipher,
        kdf_cache=kdf_cache,
        max_iterations=max_iterations,
    )
    plaintext = _CbcPlaintext(
        reader.iter_octets(header.content, "encryptedContent", chunk_size=chunk_size),
        header.cipher,
        cek,
        header.iv,
    )
    inner_reader = DerReader(plaintext, what="decrypted content")
    inner = read_inner(
        inner_reader,
        sink.write,
        declared_type=header.content_type,
        chunk_size=chunk_size,
        trusted_certificates=trusted_certificates,
    )
    # Drain: padding is checked only at the very end of the ciphertext.
    if plaintext.read(-1):
        raise MalformedEnvelopeError("data after the end of the inner content")
    unprotected = _finish(reader, header)
    # One 00H after the envelope is tolerated: DICOM pads OB values to even length, and envelopes
    # taken from an Encrypted Content (0400,0520) element (gdcmanon) carry it; OpenSSL ignores it too.
    envelope_size = reader.offset
    trailing = reader.read_some(2)
    if trailing not in (b"", b"\x00"):
        raise MalformedEnvelopeError(
            f"data after the end of the envelope at offset {reader.offset - len(trailing)}"
        )
    info = _info(
        header, encrypted_size=plaintext.ciphertext_size, envelope_size=envelope_size, unprotected=unprotected
    )
    return DecryptResult(envelope=info, inner=inner, recipient_index=index)


class SeekableSource(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def readdress(
    source: SeekableSource,
    sink: Writable,
    credentials: Sequence[Credential],
    recipients: Sequence[Recipient],
    *,
    kdf_cache: Pbkdf2Cache,
    max_iterations: int,
    size: int | None = None,
    keep_existing: bool = False,
    max_header_bytes: int = 16 * 1024 * 1024,
    rng: Callable[[int], bytes] = os.urandom,
    chunk_size: int = CHUNK_SIZE_BYTES,
) -> EnvelopeInfo:
    """Write the same envelope for other recipients: the encrypted content is copied, never decrypted.

    Any credential that opens the envelope recovers the content-encryption key, which is then wrapped
    for ``recipients`` (and, with ``keep_existing``, the old RecipientInfos are kept too). The content
    ciphertext, its IV and the inner digest or signature are reused byte for byte, so a re-addressed
    file verifies exactly as the original did. The output is DER; unprotectedAttrs are not carried over.

    Raises
    ------
    DecryptionError
        No credential opens the envelope.
    """
    if not recipients and not keep_existing:
        raise ValueError("readdress needs at least one new recipient, or keep_existing")
    reader = DerReader(source, size=size)
    header = _read_header(reader, max_header_bytes=max_header_bytes)
    cek, _ = open_recipient_infos(
        list(header.recipient_infos),
        credentials,
        header.cipher,
        kdf_cache=kdf_cache,
        max_iterations=max_iterations,
    )
    content_start = header.content.offset
    # First pass: the encrypted content's length (BER may split it into segments of unknown total).
    encrypted_len = sum(
        len(c) for c in reader.iter_octets(header.content, "encryptedContent", chunk_size=chunk_size)
    )
    _finish(reader, header)

    infos = [build_recipient_info(r, cek, header.cipher, kdf_cache=kdf_cache, rng=rng) for r in recipients]
    if keep_existing:
        infos = [*header.recipient_infos, *infos]
    version = _envelope_version(infos)
    recipient_set = cms.RecipientInfos(infos).dump(force=True)
    written_infos = cms.RecipientInfos.load(recipient_set)
    head = _envelope_head(
        int(version[1:]), recipient_set, header.content_type, header.cipher, header.iv, encrypted_len
    )
    sink.write(head)
    # Second pass: copy the ciphertext as it is.
    source.seek(content_start)
    copier = DerReader(source, size=size)
    copier.offset = content_start
    content = copier.read_header("encryptedContent")
    copied = 0
    for chunk in copier.iter_octets(content, "encryptedContent", chunk_size=chunk_size):
        sink.write(chunk)
        copied += len(chunk)
    if copied != encrypted_len:
        raise MalformedEnvelopeError("the encrypted content changed while it was being copied")
    return EnvelopeInfo(
        version=int(version[1:]),
        content_cipher=header.cipher,
        content_type=_CONTENT_TYPE_NAMES.get(header.content_type, header.content_type),
        recipients=tuple(describe_recipient_info(ri) for ri in written_infos),
        encrypted_size=encrypted_len,
        envelope_size=len(head) + encrypted_len,
        ber=False,
    )
