"""Open EnvelopedData: recover the content key from a recipient, decrypt the content and verify it."""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Sequence

from cryptography import x509

from dcmseal.cms.algorithms import ContentCipher
from dcmseal.cms.content import InnerResult, read_inner
from dcmseal.cms.context import Context, context_for_call
from dcmseal.cms.der import ByteSource, DerReader
from dcmseal.cms.envelope import CHUNK_SIZE_BYTES, DecryptResult, Writable
from dcmseal.cms.fastpath import decrypt_digested, probe_layout
from dcmseal.cms.header import (
    EnvelopeHeader,
    EnvelopeStructureError,
    describe_header,
    read_header,
    read_trailer,
)
from dcmseal.cms.kdf import KdfBudget
from dcmseal.cms.recipients import Credential, open_recipient_infos
from dcmseal.errors import (
    DcmsealError,
    DecryptionError,
    MalformedEnvelopeError,
    ResourceLimitError,
    UnsupportedAlgorithmError,
)

__all__ = [
    "decrypt",
    "open_content",
    "open_header",
]


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
            raise EnvelopeStructureError(exc) from None
        if chunk is None:
            self._done = True
            if self.ciphertext_size == 0 or self.ciphertext_size % self._block:
                raise EnvelopeStructureError(
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


def open_header(
    reader: DerReader,
    credentials: Sequence[Credential],
    *,
    max_header_bytes: int,
    max_iterations: int,
    kdf_budget: KdfBudget | None,
    context: Context,
) -> tuple[EnvelopeHeader, bytes, int]:
    """Parse the envelope's header and recover its content key: (header, key, index of the recipient used).

    The reader is left at the encrypted content.
    """
    header = read_header(reader, max_header_bytes=max_header_bytes, context=context)
    cek, index = open_recipient_infos(
        list(header.recipient_infos),
        credentials,
        header.cipher,
        kdf_cache=context.kdf_cache,
        max_iterations=max_iterations,
        budget=kdf_budget,
    )
    return header, cek, index


def open_content(
    reader: DerReader,
    header: EnvelopeHeader,
    cek: bytes,
    sink: Writable,
    *,
    chunk_size: int,
    trusted_certificates: tuple[x509.Certificate, ...],
    accept_unprotected: bool,
    context: Context,
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
        layout = probe_layout(reader, header, cek) if context.fast else None
        if layout is not None:
            # The plain DigestedData dcmseal writes: the payload's place is known, no parsing in between.
            inner = decrypt_digested(reader, header, cek, layout, sink, chunk_size, context)
            context.fast_decrypts += 1
            return inner, header.content.length or 0
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
            threads=context.threads,
        )
        # Drain: padding is checked only at the very end of the ciphertext.
        if plaintext.read(-1):
            raise MalformedEnvelopeError("data after the end of the inner content")
        return inner, plaintext.ciphertext_size
    except EnvelopeStructureError as failure:
        raise failure.error from None
    except (MalformedEnvelopeError, UnsupportedAlgorithmError, ResourceLimitError):
        raise DecryptionError() from None


def decrypt(
    source: ByteSource,
    sink: Writable,
    credentials: Sequence[Credential],
    *,
    context: Context | None = None,
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
    work of ``kdf_budget`` (by default, per file, two derivations at ``max_iterations``). Keys are
    derived through ``context`` (a run's: each key once per run; by default this call's own).

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
    with context_for_call(context) as run:
        reader = DerReader(source, size=size)
        header, cek, index = open_header(
            reader,
            credentials,
            max_header_bytes=max_header_bytes,
            max_iterations=max_iterations,
            kdf_budget=kdf_budget,
            context=run,
        )
        inner, ciphertext_size = open_content(
            reader,
            header,
            cek,
            sink,
            chunk_size=chunk_size,
            trusted_certificates=trusted_certificates,
            accept_unprotected=accept_unprotected,
            context=run,
        )
    unprotected = read_trailer(reader, header)
    # One 00H after the envelope is tolerated: DICOM pads OB values to even length, and envelopes
    # taken from an Encrypted Content (0400,0520) element (gdcmanon) carry it; OpenSSL ignores it too.
    envelope_size = reader.offset
    trailing = reader.read_some(2)
    if trailing not in (b"", b"\x00"):
        raise MalformedEnvelopeError(
            f"data after the end of the envelope at offset {reader.offset - len(trailing)}"
        )
    info = describe_header(
        header, encrypted_size=ciphertext_size, envelope_size=envelope_size, unprotected=unprotected
    )
    return DecryptResult(envelope=info, inner=inner, recipient_index=index)
