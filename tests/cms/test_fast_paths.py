"""The streaming fast paths (reused buffers, known DigestedData layout) agree with the general path, byte for byte
and error for error."""

from __future__ import annotations

import io
import os
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import pytest
from asn1crypto import core
from hypothesis import given, settings
from hypothesis import strategies as st

from dcmseal import cms
from dcmseal.cms import asn1, envelope, fastpath, header, reader
from dcmseal.cms.content import digested_layout
from dcmseal.cms.digest import set_background_hashing
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError, MalformedEnvelopeError
from tests.spies import counting

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

T = TypeVar("T", bound=core.Asn1Value)
PASSWORD = b"Kestrel-amber-Lantern-orbit-velvet"
KDF = cms.Pbkdf2Params(salt=bytes(range(16)), iterations=1000, prf=cms.Prf.SHA256)


def _spec(inner: cms.InnerSpec | None = None) -> cms.EnvelopeSpec:
    return cms.EnvelopeSpec(
        recipients=(cms.PasswordRecipient(password=PASSWORD, kdf=KDF),),
        content_cipher=cms.ContentCipher.AES256_CBC,
        inner=inner or cms.DigestedContent(),
    )


def _seal(payload: bytes, *, chunk_size: int = envelope.CHUNK_SIZE_BYTES) -> bytes:
    sink = io.BytesIO()
    cms.encrypt(
        io.BytesIO(payload),
        sink,
        _spec(),
        payload_size=len(payload),
        kdf_cache=cms.Pbkdf2Cache(),
        chunk_size=chunk_size,
    )
    return sink.getvalue()


def _open(
    data: bytes, *, chunk_size: int = envelope.CHUNK_SIZE_BYTES, accept_unprotected: bool = False
) -> tuple[bytes, cms.DecryptResult]:
    sink = io.BytesIO()
    result = cms.decrypt(
        io.BytesIO(data),
        sink,
        [cms.PasswordCredential(password=PASSWORD)],
        kdf_cache=cms.Pbkdf2Cache(),
        max_iterations=1000,
        size=len(data),
        chunk_size=chunk_size,
        accept_unprotected=accept_unprotected,
    )
    return sink.getvalue(), result


@pytest.fixture
def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decrypt through the general parser (read_inner), as for any envelope that is not plain DigestedData."""
    monkeypatch.setattr(reader, "probe_layout", lambda *_args: None)


class _Spy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        monkeypatch.setattr(reader, "decrypt_digested", counting(fastpath.decrypt_digested, self._count))

    def _count(self) -> None:
        self.calls += 1


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(max_size=5000), chunk_size=st.sampled_from([16, 17, 64, 1000, 1 << 20]))
def test_the_fast_path_gives_what_the_general_path_gives(payload: bytes, chunk_size: int) -> None:
    data = _seal(payload, chunk_size=chunk_size)
    fast, fast_result = _open(data, chunk_size=chunk_size)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "probe_layout", lambda *_args: None)
        general, general_result = _open(data, chunk_size=chunk_size)
    assert fast == general == payload
    assert fast_result == general_result


def test_dcmseal_envelopes_take_the_fast_path_and_foreign_shapes_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = _Spy(monkeypatch)
    payload = os.urandom(100_000)
    assert _open(_seal(payload))[0] == payload
    assert spy.calls == 1
    # Raw id-data content (what `openssl cms -encrypt` writes) goes through the general parser.
    sink = io.BytesIO()
    cms.encrypt(
        io.BytesIO(payload),
        sink,
        _spec(cms.RawContent()),
        payload_size=len(payload),
        kdf_cache=cms.Pbkdf2Cache(),
    )
    opened, result = _open(sink.getvalue(), accept_unprotected=True)
    assert opened == payload
    assert result.inner.kind == cms.ContentKind.RAW
    assert spy.calls == 1


@pytest.mark.parametrize("path", ["fast", "general"])
def test_tampering_fails_the_same_way_on_both_paths(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "general":
        monkeypatch.setattr(reader, "probe_layout", lambda *_args: None)
    payload = os.urandom(50_000)
    data = bytearray(_seal(payload))
    middle = bytearray(data)
    middle[len(data) // 2] ^= 0x01  # one ciphertext block garbled: the digest no longer matches
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _open(bytes(middle))
    last = bytearray(data)
    last[-1] ^= 0x55  # the last block garbled: the padding is wrong (the same answer: no padding oracle)
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _open(bytes(last))
    with pytest.raises(MalformedEnvelopeError):
        _open(bytes(data[:-32]))  # truncated: the DER lengths say more


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


def test_buffers_are_reused_safely_across_sizes_and_threads_and_hashing_modes() -> None:
    payloads = [os.urandom(3 << 20), b"", os.urandom(17), os.urandom(1 << 20)]
    for background in (True, False):
        set_background_hashing(background)
        try:
            for payload in payloads:
                assert _open(_seal(payload))[0] == payload
        finally:
            set_background_hashing(True)


def test_a_sink_that_encrypts_again_gets_its_own_buffers() -> None:
    """Re-entering encrypt from a sink's write must not share the buffers of the outer call."""
    inner_results: list[bytes] = []

    class Nested(io.BytesIO):
        def write(self, data: ReadableBuffer, /) -> int:
            if memoryview(data).nbytes > 1000 and not inner_results:
                inner_results.append(_seal(b"inner payload"))
            return super().write(data)

    payload = os.urandom(200_000)
    sink = Nested()
    cms.encrypt(io.BytesIO(payload), sink, _spec(), payload_size=len(payload), kdf_cache=cms.Pbkdf2Cache())
    assert _open(sink.getvalue())[0] == payload
    assert _open(inner_results[0])[0] == b"inner payload"


def test_recipient_infos_of_one_shape_are_parsed_in_full_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files of a set differ only in OCTET STRINGs (wrapped keys, IVs): one full parse serves them all."""
    full_parses = {"n": 0}
    real_load = asn1.load

    def counted(spec: type[T], data: bytes, context: str) -> T:
        if context == "recipientInfos":
            full_parses["n"] += 1
        return real_load(spec, data, context)

    monkeypatch.setattr(header, "_PARSED_SHAPES", {})
    monkeypatch.setattr(header, "load", counted)
    payloads = [os.urandom(1000) for _ in range(5)]
    sealed = [_seal(p) for p in payloads]
    for payload, data in zip(payloads, sealed, strict=True):
        assert _open(data)[0] == payload
    assert full_parses["n"] == 1
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
    cms.encrypt(io.BytesIO(b"x"), sink, other, payload_size=1, kdf_cache=cms.Pbkdf2Cache())
    assert _open(sink.getvalue())[0] == b"x"
    assert full_parses["n"] == 2


def test_blanking_touches_only_octet_string_contents() -> None:
    der = bytes.fromhex("30100201050403aabbcc3006040401020304")
    assert header._octet_strings_blanked(der) == bytes.fromhex("301002010504030000003006040400000000")
    assert header._octet_strings_blanked(bytes.fromhex("30800000")) is None  # BER: not blanked
    assert header._octet_strings_blanked(bytes.fromhex("30050201")) is None  # truncated
