"""Write EnvelopedData: build the header of one envelope (its size then known), then stream its content encrypted."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Generator, Sequence
from datetime import UTC, datetime

from asn1crypto import cms, core

from dcmseal.cms.algorithms import OID_ENVELOPED_DATA, ContentCipher
from dcmseal.cms.content import InnerPlan, RawContent, plan_inner
from dcmseal.cms.context import Context, context_for_call
from dcmseal.cms.der import (
    TAG_CONTEXT_0_CONSTRUCTED,
    TAG_CONTEXT_0_PRIMITIVE,
    TAG_SEQUENCE,
    TAG_SET,
    ByteSource,
    encode_header,
)
from dcmseal.cms.digest import BackgroundDigest, BackgroundWriter
from dcmseal.cms.envelope import CHUNK_SIZE_BYTES, CONTENT_TYPE_NAMES, EnvelopeInfo, EnvelopeSpec, Writable
from dcmseal.cms.recipients import RecipientDescription, encode_recipient_info

__all__ = [
    "PreparedEnvelope",
    "encrypt",
    "envelope_head",
    "envelope_version",
    "prepare",
]


def _read_into(
    source: ByteSource, readinto: Callable[[memoryview], int | None] | None, buffer: memoryview
) -> int:
    """Fill ``buffer`` from ``source`` with one call (``readinto`` when it has one); return the count."""
    if readinto is not None:
        return readinto(buffer) or 0
    data = source.read(len(buffer))
    buffer[: len(data)] = data
    return len(data)


def envelope_version(recipients: Sequence[cms.RecipientInfo]) -> str:
    """The EnvelopedData version for these RecipientInfos, as asn1crypto names it ("v0", "v2", "v3")."""
    # RFC 5652 §6.1: 3 with a pwri or ori; 0 when every RecipientInfo is v0 (and no originatorInfo or
    # unprotectedAttrs, which we never write); otherwise 2.
    if any(ri.name in ("pwri", "ori") for ri in recipients):
        return "v3"
    if all(ri.chosen["version"].native == "v0" for ri in recipients):
        return "v0"
    return "v2"


def _version_of(recipients: Sequence[RecipientDescription]) -> int:
    """RFC 5652 §6.1, from the descriptions of what is written (same rule as :func:`envelope_version`)."""
    if any(r.kind == "password" for r in recipients):
        return 3
    return 0 if all(r.version == 0 for r in recipients) else 2


# Memoized process-wide on purpose: our own few OIDs (ciphers, content types), no secret.
@functools.cache
def _oid_der(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


def _algorithm_with_iv(cipher: ContentCipher, iv: bytes) -> bytes:
    """AlgorithmIdentifier { cipher OID, OCTET STRING iv } (RFC 3565 §4.1, RFC 3370 §5.1)."""
    content = _oid_der(cipher.oid) + encode_header(0x04, len(iv)) + iv
    return encode_header(TAG_SEQUENCE, len(content)) + content


def envelope_head(
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
    encryption key until then: keep it no longer than the write it is prepared for. It streams with the
    context it was prepared with, unless :meth:`chunks` is given another (a worker process's).
    """

    __slots__ = (
        "_cek",
        "_context",
        "_encrypted_len",
        "_head",
        "_iv",
        "_own_context",
        "_plan",
        "_used",
        "info",
        "payload_size",
        "size",
    )

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
        context: Context,
        own_context: bool,
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
        self._context = context
        self._own_context = own_context  # made by prepare() for this envelope alone: closed once streamed
        self._used = False

    def __repr__(self) -> str:  # never the key
        return f"PreparedEnvelope(payload_size={self.payload_size}, size={self.size})"

    def chunks(
        self, source: ByteSource, *, chunk_size: int = CHUNK_SIZE_BYTES, context: Context | None = None
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
        try:
            yield from self._stream(source, chunk_size, context or self._context)
        finally:
            if self._own_context:
                self._context.close()

    def _stream(
        self, source: ByteSource, chunk_size: int, context: Context
    ) -> Generator[memoryview | bytes, None, None]:
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
            context.scratch.views(size, size, size + block, size + block) as (*inputs, output_a, output_b),
            BackgroundDigest([plan.digest], threads=context.threads) as digest,
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
    context: Context | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PreparedEnvelope:
    """Build the header of an envelope for ``payload_size`` bytes: its exact size is then known.

    Every length is known before the payload is read, because CBC with PKCS#7 padding adds exactly
    ``block - size % block`` bytes. Keys are derived through ``context`` (a run's: each key once per
    run; by default the envelope's own).
    """
    own_context = context is None
    context = context or Context()
    cipher = spec.content_cipher
    cek = rng(cipher.key_size)
    iv = rng(cipher.block_size)
    templates = context.templates if context.fast else None
    encoded = [
        encode_recipient_info(r, cek, cipher, kdf_cache=context.kdf_cache, templates=templates, rng=rng)
        for r in spec.recipients
    ]
    # DER sorts a SET OF by encoding (X.690 §11.6), so the file's order is not the spec's.
    encoded.sort(key=lambda pair: pair[0])
    descriptions = tuple(description for _, description in encoded)
    version = _version_of(descriptions)
    plan = plan_inner(spec.inner, payload_size, now=now)
    recipient_content = b"".join(der for der, _ in encoded)
    recipient_set = encode_header(TAG_SET, len(recipient_content)) + recipient_content
    encrypted_len = (plan.length // cipher.block_size + 1) * cipher.block_size
    head = envelope_head(version, recipient_set, plan.content_type, cipher, iv, encrypted_len)
    info = EnvelopeInfo(
        version=version,
        content_cipher=cipher,
        content_type=CONTENT_TYPE_NAMES[plan.content_type],
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
        context=context,
        own_context=own_context,
    )


def encrypt(
    source: ByteSource,
    sink: Writable,
    spec: EnvelopeSpec,
    *,
    payload_size: int,
    context: Context | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    chunk_size: int = CHUNK_SIZE_BYTES,
) -> EnvelopeInfo:
    """Write a DER ContentInfo(EnvelopedData) of ``payload_size`` bytes read from ``source`` into ``sink``.

    One pass, memory bounded by ``chunk_size``; the writes run on a helper thread while the next chunk is
    encrypted (unless ``context.background`` is off). Keys are derived through ``context`` (a run's: each
    key once per run; by default this call's own).

    Raises
    ------
    ValueError
        ``source`` gave a number of bytes other than ``payload_size``.
    """
    with context_for_call(context) as run:
        prepared = prepare(spec, payload_size=payload_size, context=run, rng=rng, now=now)
        # closing(): a failing sink leaves the stream suspended; closing it releases its buffers and digest
        # thread.
        with (
            contextlib.closing(prepared.chunks(source, chunk_size=chunk_size)) as chunks,
            BackgroundWriter(sink, threads=run.threads) as writer,
        ):
            for chunk in chunks:
                writer.write(chunk)  # the chunk before it is written by now, so its buffer may be refilled
    return prepared.info
