"""EnvelopedData (RFC 5652 §6): stream-encrypt, stream-decrypt and describe, with any mix of recipients."""

from __future__ import annotations

import contextlib
import functools
import hmac
import io
import os
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from asn1crypto import algos, cms, core
from cryptography import x509

from dcmseal.cms.algorithms import (
    OID_AUTH_ENVELOPED_DATA,
    OID_DATA,
    OID_DIGESTED_DATA,
    OID_ENVELOPED_DATA,
    OID_SIGNED_DATA,
    ContentCipher,
    DigestAlgorithm,
)
from dcmseal.cms.asn1 import load
from dcmseal.cms.content import (
    ContentKind,
    DigestedContent,
    DigestedLayout,
    InnerPlan,
    InnerResult,
    InnerSpec,
    RawContent,
    digested_layout,
    mislabel_note,
    plan_inner,
    read_inner,
)
from dcmseal.cms.der import (
    TAG_CONTEXT_0_CONSTRUCTED,
    TAG_CONTEXT_0_PRIMITIVE,
    TAG_CONTEXT_1_CONSTRUCTED,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    TAG_SET,
    ByteSource,
    DerReader,
    Header,
    encode_header,
)
from dcmseal.cms.digest import BackgroundDigest, BackgroundWriter
from dcmseal.cms.kdf import KdfBudget, Pbkdf2Cache
from dcmseal.cms.recipients import (
    Credential,
    Recipient,
    RecipientDescription,
    build_recipient_info,
    describe_recipient_info,
    encode_recipient_info,
    open_recipient_infos,
)
from dcmseal.errors import (
    DcmsealError,
    DecryptionError,
    MalformedEnvelopeError,
    ResourceLimitError,
    UnsupportedAlgorithmError,
)

__all__ = [
    "CHUNK_SIZE_BYTES",
    "MAX_RECIPIENTS",
    "DecryptResult",
    "EnvelopeInfo",
    "EnvelopeSpec",
    "PreparedEnvelope",
    "Writable",
    "decrypt",
    "encrypt",
    "inspect",
    "is_enveloped_data",
    "prepare",
    "readdress",
]

CHUNK_SIZE_BYTES = 1024 * 1024
_ENVELOPED_PREFIX = bytes.fromhex("06092a864886f70d010703")
_AUTH_ENVELOPED_PREFIX = bytes.fromhex("060b2a864886f70d0109100117")


class Writable(Protocol):
    """Where an envelope or a payload goes: a file, a BytesIO; ``data`` may be a view of a reused buffer,
    so ``write`` must copy it (as files and BytesIO do), never keep a reference."""

    def write(self, data: bytes | memoryview, /) -> object: ...


class _Scratch(threading.local):
    """Per-thread buffers reused from one envelope to the next (a fresh 1 MiB buffer costs page faults)."""

    def __init__(self) -> None:
        self.buffers: list[bytearray] = []
        self.in_use = False


_SCRATCH = _Scratch()


@contextlib.contextmanager
def _scratch_buffers(*sizes: int) -> Iterator[list[memoryview]]:
    """Views of ``sizes`` bytes each, on this thread's reused buffers (fresh ones if they are taken)."""
    scratch = _SCRATCH
    if scratch.in_use:  # re-entered from a sink: never share
        yield [memoryview(bytearray(n)) for n in sizes]
        return
    while len(scratch.buffers) < len(sizes):
        scratch.buffers.append(bytearray())
    for index, n in enumerate(sizes):
        if len(scratch.buffers[index]) < n:
            scratch.buffers[index] = bytearray(n)
    scratch.in_use = True
    try:
        yield [memoryview(scratch.buffers[i])[:n] for i, n in enumerate(sizes)]
    finally:
        scratch.in_use = False


def _read_into(
    source: ByteSource, readinto: Callable[[memoryview], int | None] | None, buffer: memoryview
) -> int:
    """Fill ``buffer`` from ``source`` with one call (``readinto`` when it has one); return the count."""
    if readinto is not None:
        return readinto(buffer) or 0
    data = source.read(len(buffer))
    buffer[: len(data)] = data
    return len(data)


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
    #: The digest of the encrypted DigestedData or SignedData when known: the writer knows it; a reader
    #: unopened does not (it is inside the encrypted content), so ``None`` there.
    digest: DigestAlgorithm | None = None

    @property
    def in_profile(self) -> bool:
        """Whether envelope and every recipient keep to PS3.15 D.1: what the reader can check unopened, and the
        inner digest when it is known (SHA-224 is outside D.1)."""
        return (
            all(r.in_profile for r in self.recipients)
            and self.content_type in ("digested-data", "signed-data")
            and (self.digest is None or self.digest.in_profile)
        )

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "content_cipher": self.content_cipher.value,
            "content_type": self.content_type,
            "encrypted_size": self.encrypted_size,
            "envelope_size": self.envelope_size,
            "encoding": "BER" if self.ber else "DER",
            **({"digest": self.digest.value} if self.digest is not None else {}),
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


class PreparedEnvelope:
    """An EnvelopedData whose header is built (content key made and wrapped, every length fixed).

    Its :attr:`size` is known before a byte of content is read, so a container (an ISO image) can place it
    first and have it made while being written (:meth:`chunks`). It streams once. It holds the content-
    encryption key until then: keep it no longer than the write it is prepared for.
    """

    __slots__ = ("_cek", "_encrypted_len", "_head", "_iv", "_plan", "_used", "info", "payload_size", "size")

    def __init__(
        self,
        *,
        payload_size: int,
        head: bytes,
        cek: bytes,
        iv: bytes,
        plan: InnerPlan,
        encrypted_len: int,
        info: EnvelopeInfo,
    ) -> None:
        self.payload_size = payload_size
        #: Bytes of the whole envelope (DER).
        self.size = len(head) + encrypted_len
        self.info = info
        self._head = head
        self._cek = cek
        self._iv = iv
        self._plan = plan
        self._encrypted_len = encrypted_len
        self._used = False

    def __repr__(self) -> str:  # never the key
        return f"PreparedEnvelope(payload_size={self.payload_size}, size={self.size})"

    def chunks(
        self, source: ByteSource, *, chunk_size: int = CHUNK_SIZE_BYTES
    ) -> Generator[memoryview | bytes, None, None]:
        """The envelope's bytes in order, encrypting ``payload_size`` bytes read from ``source`` on the way.

        Memory is bounded by ``chunk_size``: a memoryview yielded lives in one of two reused output buffers,
        so it stays valid until the chunk after the next is asked for (write or copy it before that).

        Raises
        ------
        ValueError
            ``source`` gave a number of bytes other than ``payload_size``.
        """
        if self._used:
            raise RuntimeError("a prepared envelope streams once (its content key is not reused)")
        self._used = True
        cipher, plan, payload_size = self.info.content_cipher, self._plan, self.payload_size
        yield self._head
        encryptor = cipher.encryptor(self._cek, self._iv)
        block = cipher.block_size
        # Reused buffers: a fresh 1 MiB bytes per read and per encrypted chunk costs page faults on
        # every call (CBC at ~700 instead of ~950 MB/s here). Two input buffers alternate because the
        # digest thread may still be reading chunk n-1 while chunk n is read in; two output buffers
        # because the consumer may still be writing chunk n-1 while chunk n is encrypted.
        size = max(1, min(chunk_size, payload_size))
        readinto = getattr(source, "readinto", None)
        written = 0
        out = encryptor.update(plan.prefix)
        written += len(out)
        if out:
            yield out
        with (
            _scratch_buffers(size, size, size + block, size + block) as (*inputs, output_a, output_b),
            BackgroundDigest([plan.digest]) as digest,
        ):
            outputs = (output_a, output_b)
            remaining = payload_size
            turn = 0
            while remaining:
                buffer = inputs[turn][: min(size, remaining)]
                output = outputs[turn]
                turn ^= 1
                n = _read_into(source, readinto, buffer)
                if not n:
                    raise ValueError(f"the source ended {remaining} bytes before the announced payload size")
                remaining -= n
                view = buffer[:n]
                digest.update(view)  # hashed on a helper thread while this thread encrypts it
                done = encryptor.update_into(view, output)  # partial blocks stay inside the CBC context
                written += done
                if done:
                    yield output[:done]
            if source.read(1):
                raise ValueError("the source holds more bytes than the announced payload size")
            trailer = plan.trailer(digest.digest(plan.digest))
        pad = block - (plan.length % block)
        out = encryptor.update(trailer + bytes([pad]) * pad) + encryptor.finalize()
        written += len(out)
        if written != self._encrypted_len:  # the plan and the stream disagree: a bug, never a user error
            raise AssertionError(f"wrote {written} encrypted bytes, planned {self._encrypted_len}")
        yield out


def prepare(
    spec: EnvelopeSpec,
    *,
    payload_size: int,
    kdf_cache: Pbkdf2Cache,
    rng: Callable[[int], bytes] = os.urandom,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PreparedEnvelope:
    """Build the header of an envelope for ``payload_size`` bytes: its exact size is then known.

    Every length is known before the payload is read, because CBC with PKCS#7 padding adds exactly
    ``block - size % block`` bytes.
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
    info = EnvelopeInfo(
        version=version,
        content_cipher=cipher,
        content_type=_CONTENT_TYPE_NAMES[plan.content_type],
        recipients=descriptions,
        encrypted_size=encrypted_len,
        envelope_size=len(head) + encrypted_len,
        ber=False,
        digest=None if isinstance(spec.inner, RawContent) else spec.inner.digest,
    )
    return PreparedEnvelope(
        payload_size=payload_size,
        head=head,
        cek=cek,
        iv=iv,
        plan=plan,
        encrypted_len=encrypted_len,
        info=info,
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

    One pass, memory bounded by ``chunk_size``; the writes run on a helper thread while the next chunk is
    encrypted.

    Raises
    ------
    ValueError
        ``source`` gave a number of bytes other than ``payload_size``.
    """
    prepared = prepare(spec, payload_size=payload_size, kdf_cache=kdf_cache, rng=rng, now=now)
    # closing(): a failing sink leaves the stream suspended; closing it releases its buffers and digest thread.
    with (
        contextlib.closing(prepared.chunks(source, chunk_size=chunk_size)) as chunks,
        BackgroundWriter(sink) as writer,
    ):
        for chunk in chunks:
            writer.write(chunk)  # the chunk before it is written by now, so its buffer may be refilled
    return prepared.info


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


def _octet_strings_blanked(data: bytes) -> bytes | None:
    """``data`` (DER) with the contents of every primitive OCTET STRING zeroed; None if not plain DER.

    All the files of a set carry RecipientInfos that differ only in OCTET STRINGs (each file's
    wrapped key, its key-wrap IV), so this is the same for all of them.
    """
    out = bytearray(data)
    stack = [(0, len(data))]
    while stack:
        pos, end = stack.pop()
        while pos < end:
            if pos + 2 > end:
                return None
            tag, first = data[pos], data[pos + 1]
            if tag & 0x1F == 0x1F or first == 0x80:
                return None  # high tag numbers, indefinite lengths: leave to the full parser
            if first < 0x80:
                start, length = pos + 2, first
            else:
                count = first & 0x7F
                if count > 4 or pos + 2 + count > end:
                    return None
                start, length = pos + 2 + count, int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
            if start + length > end:
                return None
            if tag & 0x20:
                stack.append((start, start + length))
            elif tag == TAG_OCTET_STRING:
                out[start : start + length] = bytes(length)
            pos = start + length
    return bytes(out)


#: Shapes already parsed in full, per ASN.1 type (see :func:`_load_by_shape`).
_PARSED_SHAPES: dict[tuple[type, bytes], None] = {}
_MAX_SHAPES = 64

_T = TypeVar("_T", bound=core.Asn1Value)


def _load_by_shape(spec: type[_T], raw: bytes, context: str) -> _T:
    """Parse ``raw`` as ``spec`` completely, or lazily when its shape was already parsed completely.

    The full parse (every nested value, so errors surface before any key is tried) costs about
    0.3 ms per file in asn1crypto. Two encodings equal but for the contents of primitive OCTET
    STRINGs parse alike (asn1crypto never interprets those bytes), and the files of a set differ
    only there (each file's wrapped key and IVs): the first file pays the full parse, the others
    load lazily.
    """
    blanked = _octet_strings_blanked(raw)
    shape = (spec, blanked) if blanked is not None else None
    if shape is not None and shape in _PARSED_SHAPES:
        lazy: _T = spec.load(raw)
        return lazy
    value = load(spec, raw, context)
    if shape is not None:
        if len(_PARSED_SHAPES) >= _MAX_SHAPES:
            _PARSED_SHAPES.pop(next(iter(_PARSED_SHAPES)))
        _PARSED_SHAPES[shape] = None
    return value


@functools.lru_cache(maxsize=64)
def _dotted(value: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets."""
    return str(core.ObjectIdentifier.load(encode_header(TAG_OID, len(value)) + value).dotted)


@functools.lru_cache(maxsize=16)
def _version(element: bytes) -> int:
    return int(load(core.Integer, element, "EnvelopedData version").native)


#: Recipients one envelope may name. A medium is sealed for a password, the escrow certificate and a
#: few partners (each ``rekey --keep-recipients`` adds some); 64 leaves room for that, and a flood
#: (100,000 one-iteration recipients fit in the header limit) is refused before it is parsed.
MAX_RECIPIENTS = 64


def _count_elements(der: bytes, *, stop: int) -> int:
    """How many elements the SET or SEQUENCE ``der`` holds, counting no further than ``stop``."""
    reader = DerReader(io.BytesIO(der), size=len(der), what="recipientInfos")
    outer = reader.read_header("recipientInfos")
    count = 0
    while count < stop and not reader.at_end_of(outer):
        reader.read_element("recipientInfos", limit=len(der))
        count += 1
    return count


def _read_header(reader: DerReader, *, max_header_bytes: int) -> _Header:
    head = reader.peek(32)
    if not head:
        raise MalformedEnvelopeError("empty file: not a CMS envelope")
    outer = reader.expect(TAG_SEQUENCE, "ContentInfo")
    oid_header = reader.expect(TAG_OID, "ContentInfo contentType")
    oid_value = reader.read_value(oid_header, "ContentInfo contentType", limit=64)
    oid = _dotted(oid_value)
    if oid == OID_AUTH_ENVELOPED_DATA:
        raise UnsupportedAlgorithmError(
            "AuthEnvelopedData (AES-GCM, RFC 5083) is not the EnvelopedData PS3.15 D.1 requires"
        )
    if oid != OID_ENVELOPED_DATA:
        raise MalformedEnvelopeError(f"ContentInfo of type {oid}, not id-envelopedData")
    explicit = reader.expect(TAG_CONTEXT_0_CONSTRUCTED, "ContentInfo content")
    enveloped = reader.expect(TAG_SEQUENCE, "EnvelopedData")
    version_bytes = reader.read_element("EnvelopedData version", limit=16)
    version = _version(version_bytes)
    has_originator = False
    first = reader.peek(1)
    if first and first[0] == TAG_CONTEXT_0_CONSTRUCTED:
        reader.read_element("EnvelopedData originatorInfo", limit=max_header_bytes)
        has_originator = True
    recipients_raw = reader.read_element("EnvelopedData recipientInfos", limit=max_header_bytes)
    if recipients_raw[:1] != bytes([TAG_SET]):
        raise MalformedEnvelopeError("EnvelopedData recipientInfos is not a SET")
    count = _count_elements(recipients_raw, stop=MAX_RECIPIENTS + 1)
    if count > MAX_RECIPIENTS:
        raise ResourceLimitError(
            f"more than {MAX_RECIPIENTS} recipients in one envelope: refused before any is read or tried"
        )
    recipient_infos = _load_by_shape(cms.RecipientInfos, recipients_raw, "recipientInfos")
    if not len(recipient_infos):
        raise MalformedEnvelopeError("EnvelopedData without recipients")
    for index, info in enumerate(recipient_infos):
        _check_recipient_version(index, info)
    eci = reader.expect(TAG_SEQUENCE, "EncryptedContentInfo")
    ct_header = reader.expect(TAG_OID, "EncryptedContentInfo contentType")
    ct_value = reader.read_value(ct_header, "EncryptedContentInfo contentType", limit=64)
    content_type = _dotted(ct_value)
    if content_type not in _CONTENT_TYPE_NAMES:
        raise UnsupportedAlgorithmError(
            f"encrypted content of type {content_type}: PS3.15 D.1 encrypts DigestedData or SignedData"
        )
    alg = _load_by_shape(
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


class _EnvelopeError(Exception):
    """A failure of the envelope around the ciphertext (truncated, lengths), carried through the parser of
    the decrypted content so that it keeps its own message instead of becoming the wrong-key answer."""

    def __init__(self, error: DcmsealError) -> None:
        super().__init__(str(error))
        self.error = error


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
        try:
            chunk = next(self._ciphertext, None)
        except DcmsealError as exc:  # the envelope's own structure: not a matter of the key
            raise _EnvelopeError(exc) from None
        if chunk is None:
            self._done = True
            if self.ciphertext_size == 0 or self.ciphertext_size % self._block:
                raise _EnvelopeError(
                    MalformedEnvelopeError(
                        f"encrypted content of {self.ciphertext_size} bytes is not a whole number of blocks"
                    )
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


#: How much of the ciphertext is decrypted ahead to recognise the plain DigestedData layout.
_PROBE_BYTES = 256


def _probe_layout(reader: DerReader, header: _Header, cek: bytes) -> DigestedLayout | None:
    """The DigestedData layout of the content, by decrypting its first blocks aside (nothing consumed)."""
    length = header.content.length
    block = header.cipher.block_size
    if (  # whatever the envelope declares: the decrypted bytes decide (read_inner checks them all)
        header.content.constructed or length is None or length < block or length % block
    ):
        return None
    probe_len = min(length, _PROBE_BYTES) // block * block
    raw = reader.peek(probe_len)
    if len(raw) < probe_len:
        return None
    layout = digested_layout(header.cipher.decryptor(cek, header.iv).update(raw))
    if layout is None or not 1 <= length - layout.total <= block:
        return None
    return layout


def _decrypt_digested(
    reader: DerReader,
    header: _Header,
    cek: bytes,
    layout: DigestedLayout,
    sink: Writable,
    chunk_size: int,
) -> InnerResult:
    """Decrypt a plain DigestedData whose layout is known: the payload goes from reused buffers to ``sink``.

    The same checks as the general path, with the same one answer for all of them: the CBC padding of
    the last block, the trailer, then the digest. Nothing is copied in Python between the file and
    ``sink`` but the decryption itself.
    """
    length = header.content.length
    assert length is not None
    block = header.cipher.block_size
    decryptor = header.cipher.decryptor(cek, header.iv)
    size = max(block, min(chunk_size, length) // block * block)
    payload_start, payload_end = layout.payload_offset, layout.trailer_offset
    tail = bytearray()  # the digest OCTET STRING and the padding
    position = 0  # plaintext offset of the next decrypted byte
    remaining = length
    turn = 0
    # Two output buffers alternate: the digest thread may still read chunk n-1 while n is decrypted.
    with (
        _scratch_buffers(size, size + block, size + block) as (ciphertext, *outputs),
        BackgroundDigest([layout.digest]) as digest,
    ):
        while remaining:
            n = reader.readinto_some(ciphertext[: min(size, remaining)])
            if not n:
                raise _EnvelopeError(
                    MalformedEnvelopeError(
                        f"truncated envelope: encryptedContent at offset {reader.offset} lacks {remaining} bytes"
                    )
                )
            remaining -= n
            output = outputs[turn]
            turn ^= 1
            done = decryptor.update_into(ciphertext[:n], output)
            low, high = position, position + done
            position = high
            start, end = max(low, payload_start), min(high, payload_end)
            if start < end:
                part = output[start - low : end - low]
                digest.update(part)
                sink.write(part)
            if high > payload_end:
                tail += output[max(low, payload_end) - low : done]
        tail += decryptor.finalize()
        computed = digest.digest(layout.digest)
    pad = tail[-1]
    # Decide once on every padding byte (RFC 5652 §6.3); the message says nothing of which.
    valid = 1 <= pad <= block
    span = pad if valid else block
    if not (hmac.compare_digest(bytes(tail[-span:]), bytes([pad]) * span) & valid):
        raise DecryptionError() from None
    if pad != length - layout.total:
        raise MalformedEnvelopeError("data after the end of the inner content")
    trailer = bytes(tail[:-pad])
    digest_size = layout.digest.digest_size
    if trailer[:2] != bytes([0x04, digest_size]) or len(trailer) != 2 + digest_size:
        raise MalformedEnvelopeError(
            "DigestedData: the digest is not an OCTET STRING of the algorithm's size"
        )
    if not hmac.compare_digest(trailer[2:], computed):
        raise DecryptionError() from None
    in_profile = layout.digest.in_profile
    mislabel = mislabel_note(header.content_type, ContentKind.DIGESTED)
    notes = () if mislabel is None else (mislabel,)
    return InnerResult(
        kind=ContentKind.DIGESTED,
        wrapped_in_content_info=False,
        digest=layout.digest,
        signers=(),
        payload_size=layout.payload_size,
        conformant=in_profile,
        notes=notes
        if in_profile
        else (*notes, f"{layout.digest.value} is not one of the digests PS3.15 D.1 names"),
    )


class _NullSink:
    """Where a verification pass sends the payload: nowhere."""

    def write(self, data: bytes | memoryview, /) -> int:
        return len(data)


def _open_content(
    reader: DerReader,
    header: _Header,
    cek: bytes,
    sink: Writable,
    *,
    chunk_size: int,
    trusted_certificates: tuple[x509.Certificate, ...],
    accept_unprotected: bool,
) -> tuple[InnerResult, int]:
    """Decrypt the content with ``cek`` into ``sink`` and verify it: (what it was, ciphertext bytes).

    Every failure past this point depends on the key (a wrong key that slipped through the unwrap
    check decrypts to garbage) or on altered ciphertext, so every one of them, padding, structure,
    digest or signature, is the same :class:`DecryptionError`: telling them apart would be a
    padding oracle. Only the envelope's own structure (a truncated file) keeps its message, and the
    refusal of unprotected content, which is decided from the first decrypted bytes before any
    padding is seen.
    """
    try:
        layout = _probe_layout(reader, header, cek)
        if layout is not None:
            # The plain DigestedData dcmseal writes: the payload's place is known, no parsing in between.
            return _decrypt_digested(
                reader, header, cek, layout, sink, chunk_size
            ), header.content.length or 0
        plaintext = _CbcPlaintext(
            reader.iter_octets(header.content, "encryptedContent", chunk_size=chunk_size),
            header.cipher,
            cek,
            header.iv,
        )
        inner = read_inner(
            DerReader(plaintext, what="decrypted content"),
            sink.write,
            declared_type=header.content_type,
            chunk_size=chunk_size,
            trusted_certificates=trusted_certificates,
            accept_unprotected=accept_unprotected,
        )
        # Drain: padding is checked only at the very end of the ciphertext.
        if plaintext.read(-1):
            raise MalformedEnvelopeError("data after the end of the inner content")
        return inner, plaintext.ciphertext_size
    except _EnvelopeError as failure:
        raise failure.error from None
    except (MalformedEnvelopeError, UnsupportedAlgorithmError, ResourceLimitError):
        raise DecryptionError() from None


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
    accept_unprotected: bool = False,
    kdf_budget: KdfBudget | None = None,
) -> DecryptResult:
    """Decrypt an envelope from ``source``, stream the payload to ``sink``, verify digest or signature.

    Structure is checked before any secret is used. The payload written to ``sink`` is provisional
    until this returns: on any exception the caller must discard it (nothing may be handed on before).
    PS3.15 D.1.1 puts DigestedData or SignedData inside; content without either is refused unless
    ``accept_unprotected``, and then reported (``result.inner.verified`` is False). The envelope's
    EncryptedContentInfo contentType is not authenticated: it never decides what is verified.
    Work on a hostile envelope is bounded: at most :data:`MAX_RECIPIENTS` recipients, and the PBKDF2
    work of ``kdf_budget`` (by default, per file, two derivations at ``max_iterations``).

    Raises
    ------
    MalformedEnvelopeError, UnsupportedAlgorithmError, ResourceLimitError
        Before any key is tried.
    DecryptionError
        No credential opens the envelope, or the content fails its padding, structure, digest or
        signature (one message for all).
    UnprotectedContentError
        No digest or signature inside, and ``accept_unprotected`` is false.
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
        budget=kdf_budget,
    )
    inner, ciphertext_size = _open_content(
        reader,
        header,
        cek,
        sink,
        chunk_size=chunk_size,
        trusted_certificates=trusted_certificates,
        accept_unprotected=accept_unprotected,
    )
    unprotected = _finish(reader, header)
    # One 00H after the envelope is tolerated: DICOM pads OB values to even length, and envelopes
    # taken from an Encrypted Content (0400,0520) element (gdcmanon) carry it; OpenSSL ignores it too.
    envelope_size = reader.offset
    trailing = reader.read_some(2)
    if trailing not in (b"", b"\x00"):
        raise MalformedEnvelopeError(
            f"data after the end of the envelope at offset {reader.offset - len(trailing)}"
        )
    info = _info(header, encrypted_size=ciphertext_size, envelope_size=envelope_size, unprotected=unprotected)
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
    trusted_certificates: tuple[x509.Certificate, ...] = (),
    accept_unprotected: bool = False,
    kdf_budget: KdfBudget | None = None,
) -> DecryptResult:
    """Write the same envelope for other recipients: the encrypted content is verified, then copied.

    Any credential that opens the envelope recovers the content-encryption key, which is then wrapped
    for ``recipients`` (and, with ``keep_existing``, the old RecipientInfos are kept too). The content
    is first decrypted and verified as :func:`decrypt` does (nothing of it is kept), so an altered or
    unprotected file is not passed on under new keys; then the ciphertext, its IV and the inner digest
    or signature are copied byte for byte, so a re-addressed file verifies exactly as the original did.
    The output is DER; unprotectedAttrs are not carried over. The result describes the new envelope
    and what the verification found.

    Raises
    ------
    DecryptionError
        No credential opens the envelope, or its content fails verification (one message).
    UnprotectedContentError
        No digest or signature inside, and ``accept_unprotected`` is false.
    """
    if not recipients and not keep_existing:
        raise ValueError("readdress needs at least one new recipient, or keep_existing")
    reader = DerReader(source, size=size)
    header = _read_header(reader, max_header_bytes=max_header_bytes)
    cek, index = open_recipient_infos(
        list(header.recipient_infos),
        credentials,
        header.cipher,
        kdf_cache=kdf_cache,
        max_iterations=max_iterations,
        budget=kdf_budget,
    )
    content_start = header.content.offset
    # First pass: verify the content, and learn its length (BER may split it into segments).
    inner, encrypted_len = _open_content(
        reader,
        header,
        cek,
        _NullSink(),
        chunk_size=chunk_size,
        trusted_certificates=trusted_certificates,
        accept_unprotected=accept_unprotected,
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
    info = EnvelopeInfo(
        version=int(version[1:]),
        content_cipher=header.cipher,
        content_type=_CONTENT_TYPE_NAMES.get(header.content_type, header.content_type),
        recipients=tuple(describe_recipient_info(ri) for ri in written_infos),
        encrypted_size=encrypted_len,
        envelope_size=len(head) + encrypted_len,
        ber=False,
    )
    return DecryptResult(envelope=info, inner=inner, recipient_index=index)
