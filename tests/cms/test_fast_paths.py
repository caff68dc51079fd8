"""The streaming fast paths (reused buffers, known DigestedData layout, recipient templates, parsed shapes) agree
with the general paths (``cms.Context(fast=False)``), byte for byte and error for error."""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcmseal import cms
from dcmseal.cms import envelope, shapes
from dcmseal.cms.content import digested_layout
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError, MalformedEnvelopeError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

PASSWORD = b"Kestrel-amber-Lantern-orbit-velvet"
KDF = cms.Pbkdf2Params(salt=bytes(range(16)), iterations=1000, prf=cms.Prf.SHA256)


def _spec(inner: cms.InnerSpec | None = None) -> cms.EnvelopeSpec:
    return cms.EnvelopeSpec(
        recipients=(cms.PasswordRecipient(password=PASSWORD, kdf=KDF),),
        content_cipher=cms.ContentCipher.AES256_CBC,
        inner=inner or cms.DigestedContent(),
    )


def _seal(
    payload: bytes,
    *,
    chunk_size: int = envelope.CHUNK_SIZE_BYTES,
    context: cms.Context | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> bytes:
    sink = io.BytesIO()
    cms.encrypt(
        io.BytesIO(payload),
        sink,
        _spec(),
        payload_size=len(payload),
        chunk_size=chunk_size,
        context=context,
        rng=rng,
    )
    return sink.getvalue()


def _open(
    data: bytes,
    *,
    chunk_size: int = envelope.CHUNK_SIZE_BYTES,
    accept_unprotected: bool = False,
    context: cms.Context | None = None,
) -> tuple[bytes, cms.DecryptResult]:
    sink = io.BytesIO()
    result = cms.decrypt(
        io.BytesIO(data),
        sink,
        [cms.PasswordCredential(password=PASSWORD)],
        max_iterations=1000,
        size=len(data),
        chunk_size=chunk_size,
        accept_unprotected=accept_unprotected,
        context=context,
    )
    return sink.getvalue(), result


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(max_size=5000), chunk_size=st.sampled_from([16, 17, 64, 1000, 1 << 20]))
def test_the_fast_path_gives_what_the_general_path_gives(payload: bytes, chunk_size: int) -> None:
    data = _seal(payload, chunk_size=chunk_size)
    fast_context, general_context = cms.Context(), cms.Context(fast=False)
    fast, fast_result = _open(data, chunk_size=chunk_size, context=fast_context)
    general, general_result = _open(data, chunk_size=chunk_size, context=general_context)
    assert fast == general == payload
    assert fast_result == general_result
    assert (fast_context.fast_decrypts, general_context.fast_decrypts) == (1, 0)


def test_the_general_writer_writes_what_the_templates_write() -> None:
    """Recipient DER from templates (fast) and built by asn1crypto (general): the same bytes, same randomness."""
    payload = os.urandom(5000)
    fast = _seal(payload, context=cms.Context(), rng=random.Random(7).randbytes)
    general = _seal(payload, context=cms.Context(fast=False), rng=random.Random(7).randbytes)
    assert fast == general
    assert _open(general)[0] == payload


def test_dcmseal_envelopes_take_the_fast_path_and_foreign_shapes_do_not() -> None:
    context = cms.Context()
    payload = os.urandom(100_000)
    assert _open(_seal(payload), context=context)[0] == payload
    assert context.fast_decrypts == 1
    # Raw id-data content (what `openssl cms -encrypt` writes) goes through the general parser.
    sink = io.BytesIO()
    cms.encrypt(
        io.BytesIO(payload),
        sink,
        _spec(cms.RawContent()),
        payload_size=len(payload),
    )
    opened, result = _open(sink.getvalue(), accept_unprotected=True, context=context)
    assert opened == payload
    assert result.inner.kind == cms.ContentKind.RAW
    assert context.fast_decrypts == 1


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_tampering_fails_the_same_way_on_both_paths(fast: bool) -> None:
    context = cms.Context(fast=fast)
    payload = os.urandom(50_000)
    data = bytearray(_seal(payload))
    middle = bytearray(data)
    middle[len(data) // 2] ^= 0x01  # one ciphertext block garbled: the digest no longer matches
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _open(bytes(middle), context=context)
    last = bytearray(data)
    last[-1] ^= 0x55  # the last block garbled: the padding is wrong (the same answer: no padding oracle)
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _open(bytes(last), context=context)
    with pytest.raises(MalformedEnvelopeError):
        _open(bytes(data[:-32]), context=context)  # truncated: the DER lengths say more
    assert context.fast_decrypts == 0


def _no_signing_time() -> datetime:
    raise AssertionError("DigestedData has no signing time: plan_inner must not ask for the time")


def test_a_layout_is_only_recognised_when_every_length_agrees() -> None:
    plan = cms.content.plan_inner(cms.DigestedContent(), 1000, now=_no_signing_time)
    head = plan.prefix
    layout = digested_layout(head)
    assert layout is not None
    assert (layout.payload_offset, layout.payload_size) == (len(head), 1000)
    assert layout.total == len(head) + 1000 + 2 + 32
    broken = bytearray(head)
    broken[-1] ^= 0x01  # the OCTET STRING length no longer matches its containers
    assert digested_layout(bytes(broken)) is None
    assert digested_layout(head[:10]) is None


@pytest.mark.parametrize("background", [True, False], ids=["helper-threads", "inline"])
def test_buffers_are_reused_safely_across_sizes_and_threads_and_hashing_modes(background: bool) -> None:
    payloads = [os.urandom(3 << 20), b"", os.urandom(17), os.urandom(1 << 20)]
    with cms.Context(background=background) as context:  # one context: its buffers serve every envelope
        for payload in payloads:
            assert _open(_seal(payload, context=context), context=context)[0] == payload


def test_a_sink_that_encrypts_again_gets_its_own_buffers() -> None:
    """Re-entering encrypt from a sink's write must not share the buffers of the outer call."""
    inner_results: list[bytes] = []
    context = cms.Context(background=False)  # the sink is called on this thread, with the outer buffers taken

    class Nested(io.BytesIO):
        def write(self, data: ReadableBuffer, /) -> int:
            if memoryview(data).nbytes > 1000 and not inner_results:
                inner_results.append(_seal(b"inner payload", context=context))
            return super().write(data)

    payload = os.urandom(200_000)
    sink = Nested()
    cms.encrypt(io.BytesIO(payload), sink, _spec(), payload_size=len(payload), context=context)
    assert _open(sink.getvalue())[0] == payload
    assert _open(inner_results[0])[0] == b"inner payload"


def test_recipient_infos_of_one_shape_are_parsed_in_full_once() -> None:
    """Files of a set differ only in OCTET STRINGs (wrapped keys, IVs): one full parse serves them all."""
    context = cms.Context()
    payloads = [os.urandom(1000) for _ in range(5)]
    sealed = [_seal(p) for p in payloads]
    for payload, data in zip(payloads, sealed, strict=True):
        assert _open(data, context=context)[0] == payload
    assert context.shapes.full_parses["recipientInfos"] == 1
    # A different shape (here: another iteration count) is parsed in full again.
    other = cms.EnvelopeSpec(
        recipients=(
            cms.PasswordRecipient(
                password=PASSWORD, kdf=cms.Pbkdf2Params(salt=bytes(16), iterations=999, prf=cms.Prf.SHA256)
            ),
        ),
        content_cipher=cms.ContentCipher.AES256_CBC,
    )
    sink = io.BytesIO()
    cms.encrypt(io.BytesIO(b"x"), sink, other, payload_size=1)
    assert _open(sink.getvalue(), context=context)[0] == b"x"
    assert context.shapes.full_parses["recipientInfos"] == 2
    # The general path parses every one in full.
    general = cms.Context(fast=False)
    for data in sealed:
        _open(data, context=general)
    assert general.shapes.full_parses["recipientInfos"] == len(sealed)


def test_blanking_touches_only_octet_string_contents() -> None:
    der = bytes.fromhex("30100201050403aabbcc3006040401020304")
    assert shapes._octet_strings_blanked(der) == bytes.fromhex("301002010504030000003006040400000000")
    assert shapes._octet_strings_blanked(bytes.fromhex("30800000")) is None  # BER: not blanked
    assert shapes._octet_strings_blanked(bytes.fromhex("30050201")) is None  # truncated
