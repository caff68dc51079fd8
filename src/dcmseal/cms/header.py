"""Read EnvelopedData up to its encrypted content (the header), and describe an envelope without opening it."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from asn1crypto import algos, cms, core

from dcmseal.cms.algorithms import OID_AUTH_ENVELOPED_DATA, OID_ENVELOPED_DATA, ContentCipher
from dcmseal.cms.asn1 import load
from dcmseal.cms.context import Context
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
from dcmseal.cms.envelope import CHUNK_SIZE_BYTES, CONTENT_TYPE_NAMES, EnvelopeInfo
from dcmseal.cms.recipients import describe_recipient_info
from dcmseal.errors import DcmsealError, MalformedEnvelopeError, ResourceLimitError, UnsupportedAlgorithmError

__all__ = [
    "MAX_RECIPIENTS",
    "EnvelopeHeader",
    "EnvelopeStructureError",
    "describe_header",
    "inspect",
    "read_header",
    "read_trailer",
]


@dataclass(slots=True)
class EnvelopeHeader:
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


# Memoized, bounded: pure functions of public header octets (OIDs, the version); no secret, unlike the
# caches of a Context.
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


def read_header(reader: DerReader, *, max_header_bytes: int, context: Context) -> EnvelopeHeader:
    """Parse the envelope up to its encrypted content (checking what can be checked before any key is tried)."""
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
    recipient_infos = context.shapes.load(
        cms.RecipientInfos, recipients_raw, "recipientInfos", reuse=context.fast
    )
    if not len(recipient_infos):
        raise MalformedEnvelopeError("EnvelopedData without recipients")
    for index, info in enumerate(recipient_infos):
        _check_recipient_version(index, info)
    eci = reader.expect(TAG_SEQUENCE, "EncryptedContentInfo")
    ct_header = reader.expect(TAG_OID, "EncryptedContentInfo contentType")
    ct_value = reader.read_value(ct_header, "EncryptedContentInfo contentType", limit=64)
    content_type = _dotted(ct_value)
    if content_type not in CONTENT_TYPE_NAMES:
        raise UnsupportedAlgorithmError(
            f"encrypted content of type {content_type}: PS3.15 D.1 encrypts DigestedData or SignedData"
        )
    alg = context.shapes.load(
        algos.EncryptionAlgorithm,
        reader.read_element("contentEncryptionAlgorithm", limit=1024),
        "contentEncryptionAlgorithm",
        reuse=context.fast,
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
    return EnvelopeHeader(
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


def read_trailer(reader: DerReader, header: EnvelopeHeader) -> bool:
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


def describe_header(
    header: EnvelopeHeader, *, encrypted_size: int | None, envelope_size: int | None, unprotected: bool
) -> EnvelopeInfo:
    """What a parsed header says of its envelope, with the sizes learnt by reading it through."""
    return EnvelopeInfo(
        version=header.version,
        content_cipher=header.cipher,
        content_type=CONTENT_TYPE_NAMES.get(header.content_type, header.content_type),
        recipients=tuple(describe_recipient_info(ri) for ri in header.recipient_infos),
        encrypted_size=encrypted_size,
        envelope_size=envelope_size,
        ber=header.ber,
        has_originator_info=header.has_originator_info,
        has_unprotected_attributes=unprotected,
    )


def inspect(
    source: ByteSource,
    *,
    size: int | None = None,
    max_header_bytes: int = 16 * 1024 * 1024,
    context: Context | None = None,
) -> EnvelopeInfo:
    """Describe an envelope without opening it (reads it through to learn the encrypted size)."""
    reader = DerReader(source, size=size)
    header = read_header(reader, max_header_bytes=max_header_bytes, context=context or Context())
    encrypted = sum(
        len(c) for c in reader.iter_octets(header.content, "encryptedContent", chunk_size=CHUNK_SIZE_BYTES)
    )
    unprotected = read_trailer(reader, header)
    return describe_header(
        header, encrypted_size=encrypted, envelope_size=reader.offset, unprotected=unprotected
    )


class EnvelopeStructureError(Exception):
    """A failure of the envelope around the ciphertext (truncated, lengths), carried through the parser of
    the decrypted content so that it keeps its own message instead of becoming the wrong-key answer."""

    def __init__(self, error: DcmsealError) -> None:
        super().__init__(str(error))
        self.error = error
