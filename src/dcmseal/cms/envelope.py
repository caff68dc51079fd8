"""EnvelopedData (RFC 5652 §6) as values: what to build, what an envelope says, what opening one found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from dcmseal.cms.algorithms import (
    OID_DATA,
    OID_DIGESTED_DATA,
    OID_SIGNED_DATA,
    ContentCipher,
    DigestAlgorithm,
)
from dcmseal.cms.content import DigestedContent, InnerResult, InnerSpec
from dcmseal.cms.der import TAG_SEQUENCE
from dcmseal.cms.recipients import Recipient, RecipientDescription

__all__ = [
    "CHUNK_SIZE_BYTES",
    "CONTENT_TYPE_NAMES",
    "DecryptResult",
    "EnvelopeInfo",
    "EnvelopeSpec",
    "Writable",
    "is_enveloped_data",
]

CHUNK_SIZE_BYTES = 1024 * 1024
_ENVELOPED_PREFIX = bytes.fromhex("06092a864886f70d010703")


class Writable(Protocol):
    """Where an envelope or a payload goes: a file, a BytesIO; ``data`` may be a view of a reused buffer,
    so ``write`` must copy it (as files and BytesIO do), never keep a reference."""

    def write(self, data: bytes | memoryview, /) -> object: ...


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


CONTENT_TYPE_NAMES = {OID_DIGESTED_DATA: "digested-data", OID_SIGNED_DATA: "signed-data", OID_DATA: "data"}


def is_enveloped_data(head: bytes) -> bool:
    """Whether ``head`` (the first 32 bytes or more) starts a ContentInfo of id-envelopedData (by content)."""
    if len(head) < 2 or head[0] != TAG_SEQUENCE:
        return False
    length_octet = head[1]
    skip = 2 if length_octet < 0x80 or length_octet == 0x80 else 2 + (length_octet & 0x7F)
    return head[skip : skip + len(_ENVELOPED_PREFIX)] == _ENVELOPED_PREFIX
