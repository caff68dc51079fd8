"""Decrypt the plain DigestedData dcmseal writes through reused buffers, its layout known from the first blocks."""

from __future__ import annotations

import hmac

from dcmseal.cms.content import ContentKind, DigestedLayout, InnerResult, digested_layout, mislabel_note
from dcmseal.cms.context import Context
from dcmseal.cms.der import DerReader
from dcmseal.cms.digest import BackgroundDigest
from dcmseal.cms.envelope import Writable
from dcmseal.cms.header import EnvelopeHeader, EnvelopeStructureError
from dcmseal.errors import DecryptionError, MalformedEnvelopeError

__all__ = [
    "decrypt_digested",
    "probe_layout",
]

#: How much of the ciphertext is decrypted ahead to recognise the plain DigestedData layout.
_PROBE_BYTES = 256


def probe_layout(reader: DerReader, header: EnvelopeHeader, cek: bytes) -> DigestedLayout | None:
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


def decrypt_digested(
    reader: DerReader,
    header: EnvelopeHeader,
    cek: bytes,
    layout: DigestedLayout,
    sink: Writable,
    chunk_size: int,
    context: Context,
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
        context.scratch.views(size, size + block, size + block) as (ciphertext, *outputs),
        BackgroundDigest([layout.digest], threads=context.threads) as digest,
    ):
        while remaining:
            n = reader.readinto_some(ciphertext[: min(size, remaining)])
            if not n:
                raise EnvelopeStructureError(
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
