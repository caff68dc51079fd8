"""Re-address EnvelopedData: the same encrypted content, verified, then copied for other recipients."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol

from asn1crypto import cms
from cryptography import x509

from dcmseal.cms.context import Context, context_for_call
from dcmseal.cms.der import DerReader
from dcmseal.cms.envelope import CHUNK_SIZE_BYTES, CONTENT_TYPE_NAMES, DecryptResult, EnvelopeInfo, Writable
from dcmseal.cms.header import read_trailer
from dcmseal.cms.kdf import KdfBudget
from dcmseal.cms.reader import open_content, open_header
from dcmseal.cms.recipients import (
    Credential,
    Recipient,
    build_recipient_info,
    describe_recipient_info,
)
from dcmseal.cms.writer import envelope_head, envelope_version
from dcmseal.errors import MalformedEnvelopeError

__all__ = [
    "SeekableSource",
    "readdress",
]


class _NullSink:
    """Where a verification pass sends the payload: nowhere."""

    def write(self, data: bytes | memoryview, /) -> int:
        return len(data)


class SeekableSource(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def readdress(
    source: SeekableSource,
    sink: Writable,
    credentials: Sequence[Credential],
    recipients: Sequence[Recipient],
    *,
    context: Context | None = None,
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
        content_start = header.content.offset
        # First pass: verify the content, and learn its length (BER may split it into segments).
        inner, encrypted_len = open_content(
            reader,
            header,
            cek,
            _NullSink(),
            chunk_size=chunk_size,
            trusted_certificates=trusted_certificates,
            accept_unprotected=accept_unprotected,
            context=run,
        )
        read_trailer(reader, header)
        infos = [
            build_recipient_info(r, cek, header.cipher, kdf_cache=run.kdf_cache, rng=rng) for r in recipients
        ]
    if keep_existing:
        infos = [*header.recipient_infos, *infos]
    version = envelope_version(infos)
    recipient_set = cms.RecipientInfos(infos).dump(force=True)
    written_infos = cms.RecipientInfos.load(recipient_set)
    head = envelope_head(
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
        content_type=CONTENT_TYPE_NAMES.get(header.content_type, header.content_type),
        recipients=tuple(describe_recipient_info(ri) for ri in written_infos),
        encrypted_size=encrypted_len,
        envelope_size=len(head) + encrypted_len,
        ber=False,
    )
    return DecryptResult(envelope=info, inner=inner, recipient_index=index)
