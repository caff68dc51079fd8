"""A prepared envelope: its size is known before its content is read, and it streams exactly that once."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from dcmseal import cms
from dcmseal.cms import (
    CertificateRecipient,
    ContentCipher,
    DigestedContent,
    EnvelopeSpec,
    PasswordCredential,
    PasswordRecipient,
    Pbkdf2Cache,
    Pbkdf2Params,
    RawContent,
    SignedContent,
)
from tests.vectors import PASSWORD

KDF = Pbkdf2Params(salt=b"0123456789abcdef", iterations=1000)


def _spec(
    cipher: ContentCipher = ContentCipher.AES256_CBC, *, inner: cms.InnerSpec | None = None
) -> EnvelopeSpec:
    return EnvelopeSpec(
        recipients=(PasswordRecipient(password=PASSWORD, kdf=KDF),),
        content_cipher=cipher,
        inner=inner or DigestedContent(),
    )


def _stream(prepared: cms.PreparedEnvelope, payload: bytes, chunk_size: int = 4096) -> bytes:
    return b"".join(bytes(c) for c in prepared.chunks(io.BytesIO(payload), chunk_size=chunk_size))


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=40_000),
    cipher=st.sampled_from(list(ContentCipher)),
    chunk_size=st.sampled_from([1, 16, 1000, 4096, 1 << 20]),
    raw=st.booleans(),
)
def test_the_prepared_size_is_the_size_streamed_and_it_opens(
    size: int, cipher: ContentCipher, chunk_size: int, raw: bool
) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    prepared = cms.prepare(_spec(cipher, inner=RawContent() if raw else None), payload_size=size)
    sealed = _stream(prepared, payload, chunk_size)
    assert len(sealed) == prepared.size == prepared.info.envelope_size
    out = io.BytesIO()
    cms.decrypt(
        io.BytesIO(sealed),
        out,
        [PasswordCredential(password=PASSWORD)],
        max_iterations=1000,
        accept_unprotected=raw,
    )
    assert out.getvalue() == payload


def test_the_size_holds_with_certificate_and_signer(
    rsa_identity_factory: Callable[..., tuple[Path, Path]],
    test_cert_and_key: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    cert_path, _key_path = rsa_identity_factory(tmp_path, "dcmseal tests prepared")
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    signer_cert = x509.load_pem_x509_certificate(test_cert_and_key[0].read_bytes())
    signer_key = serialization.load_pem_private_key(test_cert_and_key[1].read_bytes(), password=None)
    assert isinstance(signer_key, rsa.RSAPrivateKey)
    spec = EnvelopeSpec(
        recipients=(
            PasswordRecipient(password=PASSWORD, kdf=KDF),
            CertificateRecipient(certificate=certificate),
        ),
        content_cipher=ContentCipher.AES128_CBC,
        inner=SignedContent(private_key=signer_key, certificate=signer_cert),
    )
    payload = b"\x5a" * 70_001
    prepared = cms.prepare(spec, payload_size=len(payload))
    assert len(_stream(prepared, payload)) == prepared.size


def test_a_prepared_envelope_streams_once_and_keeps_its_key_out_of_repr() -> None:
    prepared = cms.prepare(_spec(), payload_size=3)
    _stream(prepared, b"abc")
    with pytest.raises(RuntimeError, match="streams once"):
        _stream(prepared, b"abc")
    assert repr(prepared) == f"PreparedEnvelope(payload_size=3, size={prepared.size})"


@pytest.mark.parametrize("payload", [b"ab", b"abcd"], ids=["short", "long"])
def test_a_source_of_another_size_stops_the_stream(payload: bytes) -> None:
    prepared = cms.prepare(_spec(), payload_size=3)
    with pytest.raises(ValueError, match="announced payload size"):
        _stream(prepared, payload)


def test_one_derivation_for_many_prepared_envelopes() -> None:
    cache = Pbkdf2Cache()
    sizes = [
        cms.prepare(_spec(), payload_size=n, context=cms.Context(kdf_cache=cache)).size
        for n in (0, 15, 16, 1 << 20)
    ]
    assert cache.derivations == 1
    assert sizes == sorted(sizes)
