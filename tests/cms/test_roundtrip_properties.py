"""Properties of encrypt/decrypt: round trips over sizes and options, and damaged input raising only DcmsealError."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from dcmseal import cms
from dcmseal.cms import (
    CertificateRecipient,
    ContentCipher,
    DigestAlgorithm,
    DigestedContent,
    EnvelopeSpec,
    KeyTransport,
    PasswordCredential,
    PasswordRecipient,
    Pbkdf2Cache,
    Pbkdf2Params,
    Prf,
    PrivateKeyCredential,
    RawContent,
    RecipientIdType,
    SignedContent,
)
from dcmseal.cms.content import plan_inner
from dcmseal.cms.kdf import RFC8018_MIN_ITERATIONS
from dcmseal.errors import (
    WRONG_KEY_MESSAGE,
    DcmsealError,
    DecryptionError,
    ResourceLimitError,
    UnsupportedAlgorithmError,
)
from tests.vectors import PASSWORD, read_vector

MAX_ITERATIONS = 1000
MAX_PAYLOAD = 70 * 1024
CHUNK_SIZES = (1, 7, 16, 4096)
#: Recipient sets (built by _recipients) and the EnvelopedData version RFC 5652 §6.1 gives each.
RECIPIENT_SETS = {
    "password": 3,
    "cert-pkcs1v15": 0,
    "cert-oaep": 0,
    "ski": 2,
    "ski-no-extension": 2,
    "password+cert": 3,
    "cert+ski": 2,
}


@dataclass(frozen=True)
class Identity:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


@dataclass(frozen=True)
class Identities:
    recipient: Identity
    recipient_without_ski: Identity  # same key, certificate without the SubjectKeyIdentifier extension
    signer: Identity


def _load(cert_path: Path, key_path: Path) -> Identity:
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Identity(certificate, key)


@pytest.fixture(scope="module")
def identities(
    tmp_path_factory: pytest.TempPathFactory,
    rsa_identity_factory: Callable[..., tuple[Path, Path]],
    test_cert_and_key: tuple[Path, Path],
) -> Identities:
    tmp = tmp_path_factory.mktemp("cms-identities")
    cn = "dcmseal tests cms recipient"
    recipient = _load(*rsa_identity_factory(tmp, cn))
    without_ski = _load(*rsa_identity_factory(tmp_path_factory.mktemp("cms-no-ski"), cn, with_ski=False))
    assert without_ski.key.private_numbers() == recipient.key.private_numbers()
    return Identities(recipient, without_ski, _load(*test_cert_and_key))


def _signing_now(signer: x509.Certificate) -> dt.datetime:
    """Inside the signer's validity, with microseconds and a non-UTC offset (the writer must normalise)."""
    moment = signer.not_valid_before_utc + dt.timedelta(hours=1, seconds=7, microseconds=654_321)
    return moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))


def _recipients(label: str, ids: Identities, kdf: Pbkdf2Params, password: bytes) -> tuple[cms.Recipient, ...]:
    certificate = ids.recipient.certificate
    make: dict[str, tuple[cms.Recipient, ...]] = {
        "password": (PasswordRecipient(password=password, kdf=kdf),),
        "cert-pkcs1v15": (CertificateRecipient(certificate=certificate),),
        "cert-oaep": (CertificateRecipient(certificate=certificate, key_transport=KeyTransport.RSA_OAEP),),
        "ski": (CertificateRecipient(certificate=certificate, identifier=RecipientIdType.SUBJECT_KEY_ID),),
        "ski-no-extension": (
            CertificateRecipient(
                certificate=ids.recipient_without_ski.certificate, identifier=RecipientIdType.SUBJECT_KEY_ID
            ),
        ),
        "password+cert": (
            PasswordRecipient(password=password, kdf=kdf),
            CertificateRecipient(certificate=certificate),
        ),
        "cert+ski": (
            CertificateRecipient(certificate=certificate),
            CertificateRecipient(certificate=certificate, identifier=RecipientIdType.SUBJECT_KEY_ID),
        ),
    }
    return make[label]


def _inner(kind: str, digest: DigestAlgorithm, ids: Identities) -> cms.InnerSpec:
    if kind == "digested":
        return DigestedContent(digest=digest)
    if kind == "signed":
        return SignedContent(private_key=ids.signer.key, certificate=ids.signer.certificate, digest=digest)
    return RawContent()


class _EncryptOptions(TypedDict, total=False):
    """The options of cms.encrypt a test sets; the rest keep the library's defaults."""

    chunk_size: int
    now: Callable[[], dt.datetime]


class _DecryptOptions(TypedDict, total=False):
    chunk_size: int


def _encrypt(
    payload: bytes,
    spec: EnvelopeSpec,
    *,
    cache: Pbkdf2Cache | None = None,
    chunk_size: int | None = None,
    now: dt.datetime | None = None,
) -> tuple[bytes, cms.EnvelopeInfo]:
    sink = io.BytesIO()
    extra: _EncryptOptions = {}
    if chunk_size is not None:
        extra["chunk_size"] = chunk_size
    if now is not None:
        extra["now"] = lambda: now
    info = cms.encrypt(
        io.BytesIO(payload),
        sink,
        spec,
        payload_size=len(payload),
        context=None if cache is None else cms.Context(kdf_cache=cache),
        **extra,
    )
    return sink.getvalue(), info


def _decrypt(
    data: bytes,
    credentials: list[cms.Credential],
    *,
    cache: Pbkdf2Cache | None = None,
    chunk_size: int | None = None,
    size: int | None = None,
    max_iterations: int = MAX_ITERATIONS,
    accept_unprotected: bool = False,
) -> tuple[cms.DecryptResult, bytes]:
    sink = io.BytesIO()
    extra: _DecryptOptions = {} if chunk_size is None else {"chunk_size": chunk_size}
    result = cms.decrypt(
        io.BytesIO(data),
        sink,
        credentials,
        context=None if cache is None else cms.Context(kdf_cache=cache),
        max_iterations=max_iterations,
        size=size,
        accept_unprotected=accept_unprotected,
        **extra,
    )
    return result, sink.getvalue()


def _password_spec(
    inner: cms.InnerSpec | None = None,
    *,
    cipher: ContentCipher = ContentCipher.AES256_CBC,
    iterations: int = 3,
    salt: bytes = b"roundtrip-salt",
) -> EnvelopeSpec:
    kdf = Pbkdf2Params(salt=salt, iterations=iterations, prf=Prf.SHA256)
    return EnvelopeSpec(
        recipients=(PasswordRecipient(password=PASSWORD, kdf=kdf),),
        content_cipher=cipher,
        inner=inner if inner is not None else DigestedContent(),
    )


def _patterned(size: int) -> bytes:
    return random.Random(size).randbytes(size)


# -- round trip --------------------------------------------------------------------------------------------------

payloads = st.one_of(
    st.binary(max_size=MAX_PAYLOAD),
    st.integers(0, MAX_PAYLOAD).map(_patterned),
    st.sampled_from(
        [0, 1, 7, 8, 15, 16, 17, 127, 128, 255, 256, 4095, 4096, 4097, 65535, 65536, MAX_PAYLOAD]
    ).map(_patterned),
)


@given(
    payload=payloads,
    cipher=st.sampled_from(list(ContentCipher)),
    inner_kind=st.sampled_from(["digested", "signed", "raw"]),
    digest=st.sampled_from(list(DigestAlgorithm)),
    label=st.sampled_from(list(RECIPIENT_SETS)),
    use=st.sampled_from(["password", "key", "both"]),
    give_certificate=st.booleans(),
    encrypt_chunk=st.sampled_from(CHUNK_SIZES),
    decrypt_chunk=st.sampled_from(CHUNK_SIZES),
    give_size=st.booleans(),
    password=st.binary(min_size=1, max_size=40),
    salt=st.binary(min_size=1, max_size=32),
    iterations=st.integers(1, 50),
    prf=st.sampled_from(list(Prf)),
)
def test_round_trip(
    identities: Identities,
    payload: bytes,
    cipher: ContentCipher,
    inner_kind: str,
    digest: DigestAlgorithm,
    label: str,
    use: str,
    give_certificate: bool,
    encrypt_chunk: int,
    decrypt_chunk: int,
    give_size: bool,
    password: bytes,
    salt: bytes,
    iterations: int,
    prf: Prf,
) -> None:
    kdf = Pbkdf2Params(salt=salt, iterations=iterations, prf=prf)
    spec = EnvelopeSpec(
        recipients=_recipients(label, identities, kdf, password),
        content_cipher=cipher,
        inner=_inner(inner_kind, digest, identities),
    )
    now = _signing_now(identities.signer.certificate)
    cache = Pbkdf2Cache()
    data, written = _encrypt(payload, spec, cache=cache, chunk_size=encrypt_chunk, now=now)

    has_password = label.startswith("password")
    has_key = label != "password"
    if not has_password:
        use = "key"
    elif not has_key:
        use = "password"
    holder = identities.recipient_without_ski if label == "ski-no-extension" else identities.recipient
    credentials: list[cms.Credential] = []
    if use in ("password", "both"):
        credentials.append(PasswordCredential(password=password))
    if use in ("key", "both"):
        credentials.append(
            PrivateKeyCredential(
                private_key=holder.key, certificate=holder.certificate if give_certificate else None
            )
        )
    result, out = _decrypt(
        data,
        credentials,
        cache=cache,
        chunk_size=decrypt_chunk,
        size=len(data) if give_size else None,
        accept_unprotected=inner_kind == "raw",
    )

    # The payload and what was inside.
    assert out == payload
    inner = result.inner
    assert inner.payload_size == len(payload)
    assert inner.kind == {"digested": "digested-data", "signed": "signed-data", "raw": "raw"}[inner_kind]
    assert inner.wrapped_in_content_info is False
    if inner_kind == "raw":
        assert inner.digest is None
        assert not inner.conformant
    else:
        assert inner.digest is digest
        assert inner.conformant is digest.in_profile
    if inner_kind == "signed":
        (signer,) = inner.signers
        assert signer.subject == identities.signer.certificate.subject.rfc4514_string()
        assert signer.serial_number == identities.signer.certificate.serial_number
        assert signer.signing_time == now.astimezone(dt.UTC).replace(microsecond=0)
        assert signer.certificate_valid_at_signing is True
    else:
        assert inner.signers == ()

    # The envelope, as written, as read and as inspected.
    envelope = result.envelope
    assert envelope.version == written.version == RECIPIENT_SETS[label]
    assert envelope.content_cipher is cipher
    assert envelope.ber is False
    assert written.envelope_size == len(data)
    assert envelope.envelope_size == len(data)
    assert envelope.encrypted_size == written.encrypted_size
    assert written.encrypted_size is not None
    assert written.encrypted_size % cipher.block_size == 0
    # RecipientInfos is a DER SET OF, so the file holds them sorted; compare as sets here (the order is
    # test_encrypt_describes_the_recipients_in_file_order's business).
    assert sorted(map(repr, envelope.recipients)) == sorted(map(repr, written.recipients))
    inspected = cms.inspect(io.BytesIO(data), size=len(data))
    assert inspected.recipients == envelope.recipients
    assert (inspected.version, inspected.encrypted_size, inspected.envelope_size) == (
        written.version,
        written.encrypted_size,
        written.envelope_size,
    )
    assert result.conformant == (written.in_profile and inner.conformant)
    # A password recipient whose key is derived already (the writer's, in this cache) is tried first, as
    # it costs nothing; otherwise recipients are tried in file order. The one that opened is reported.
    kinds = [r.kind for r in envelope.recipients]
    openable = {"password": {"password"}, "key": {"certificate"}, "both": {"password", "certificate"}}[use]
    if "password" in openable:
        openable = {"password"}
    assert result.recipient_index == next(i for i, kind in enumerate(kinds) if kind in openable)

    # One derivation for the writer; the reader finds it in the same cache.
    assert cache.derivations == (1 if has_password else 0)


@pytest.mark.parametrize(("label", "version"), list(RECIPIENT_SETS.items()))
def test_envelope_version_per_recipient_set(identities: Identities, label: str, version: int) -> None:
    """RFC 5652 §6.1: 3 with a pwri; 0 when every RecipientInfo is v0 (issuer-serial ktri); otherwise 2."""
    kdf = Pbkdf2Params(salt=b"version-salt", iterations=1)
    spec = EnvelopeSpec(
        recipients=_recipients(label, identities, kdf, PASSWORD), content_cipher=ContentCipher.AES128_CBC
    )
    data, info = _encrypt(b"version", spec)
    assert info.version == version
    assert asn1_cms.ContentInfo.load(data)["content"]["version"].native == f"v{version}"
    ktri_versions = {r.version for r in info.recipients if r.kind == "certificate"}
    if label in ("ski", "ski-no-extension"):
        assert ktri_versions == {2}
    elif label in ("cert-pkcs1v15", "cert-oaep", "password+cert"):
        assert ktri_versions == {0}


@pytest.mark.parametrize("label", ["password+cert", "cert+ski"])
def test_encrypt_describes_the_recipients_in_file_order(identities: Identities, label: str) -> None:
    """encrypt's EnvelopeInfo must describe the envelope it wrote, as inspect and decrypt will read it.

    RecipientInfos is a SET OF: its DER sorts the elements, so the order in the file need not be the order
    of EnvelopeSpec.recipients; recipient_index from decrypt counts in file order.
    """
    kdf = Pbkdf2Params(salt=b"order-salt", iterations=1)
    spec = EnvelopeSpec(
        recipients=_recipients(label, identities, kdf, PASSWORD), content_cipher=ContentCipher.AES128_CBC
    )
    data, written = _encrypt(b"order", spec)
    # The inner digest is inside the encryption: the writer knows it, inspect cannot.
    assert cms.inspect(io.BytesIO(data), size=len(data)) == replace(written, digest=None)


def test_subject_key_identifier_without_the_extension_is_the_rfc5280_sha1(identities: Identities) -> None:
    holder = identities.recipient_without_ski
    spec = EnvelopeSpec(
        recipients=(
            CertificateRecipient(certificate=holder.certificate, identifier=RecipientIdType.SUBJECT_KEY_ID),
        ),
        content_cipher=ContentCipher.AES256_CBC,
    )
    _, info = _encrypt(b"ski", spec)
    expected = x509.SubjectKeyIdentifier.from_public_key(holder.key.public_key()).digest.hex()
    assert info.recipients[0].subject_key_identifier == expected


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4096, 70 * 1024])
def test_round_trip_at_block_and_chunk_edges(chunk_size: int, size: int) -> None:
    payload = _patterned(size)
    data, info = _encrypt(payload, _password_spec(), chunk_size=chunk_size)
    result, out = _decrypt(
        data, [PasswordCredential(password=PASSWORD)], chunk_size=chunk_size, size=len(data)
    )
    assert out == payload
    assert result.inner.kind == "digested-data"
    assert result.envelope.encrypted_size == info.encrypted_size


def test_signed_content_reports_the_signer(identities: Identities) -> None:
    now = dt.datetime(2030, 5, 17, 23, 59, 58, 999_999, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    signer = identities.signer.certificate
    # RFC 8018's minimum count: fewer would take the envelope outside PS3.15 D.1 (asserted below).
    spec = _password_spec(
        SignedContent(private_key=identities.signer.key, certificate=signer),
        iterations=RFC8018_MIN_ITERATIONS,
    )
    data, info = _encrypt(b"signed payload", spec, now=now)
    result, out = _decrypt(data, [PasswordCredential(password=PASSWORD)])

    assert out == b"signed payload"
    assert info.content_type == "signed-data"
    (report,) = result.inner.signers
    assert report.subject == signer.subject.rfc4514_string()
    assert report.issuer == signer.issuer.rfc4514_string()
    assert report.signing_time == dt.datetime(2030, 5, 18, 6, 59, 58, tzinfo=dt.UTC)
    assert report.certificate_valid_at_signing is True  # the test-only certificate runs 2026-2126
    assert result.conformant


def test_signing_time_outside_the_certificate_is_reported(identities: Identities) -> None:
    signer = identities.signer.certificate
    before = signer.not_valid_before_utc - dt.timedelta(days=2)
    spec = _password_spec(SignedContent(private_key=identities.signer.key, certificate=signer))
    data, _ = _encrypt(b"early", spec, now=before)
    result, _ = _decrypt(data, [PasswordCredential(password=PASSWORD)])
    assert result.inner.signers[0].certificate_valid_at_signing is False


# -- integrity: the inner structure, tampered before encryption ---------------------------------------------------


def _inner_der(spec: cms.InnerSpec, payload: bytes, now: dt.datetime) -> bytes:
    return b"".join(plan_inner(spec, len(payload), now=lambda: now).chunks([payload]))


def _seal_raw(inner: bytes, cipher: ContentCipher = ContentCipher.AES256_CBC) -> bytes:
    """Encrypt ready-made inner bytes as id-data; the reader recognises DigestedData/SignedData by shape."""
    data, _ = _encrypt(inner, _password_spec(RawContent(), cipher=cipher))
    return data


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


PAYLOAD = b"The quick brown fox jumps over the lazy dog. " * 7 + b"End of the payload."


def test_untampered_inner_structures_verify(identities: Identities) -> None:
    now = _signing_now(identities.signer.certificate)
    for spec in (
        DigestedContent(),
        SignedContent(private_key=identities.signer.key, certificate=identities.signer.certificate),
    ):
        result, out = _decrypt(
            _seal_raw(_inner_der(spec, PAYLOAD, now)), [PasswordCredential(password=PASSWORD)]
        )
        assert out == PAYLOAD
        assert result.inner.kind in ("digested-data", "signed-data")
        assert (
            "the envelope labels its content as id-data; the content is " + result.inner.kind
            in result.inner.notes
        )


@pytest.mark.parametrize("digest", list(DigestAlgorithm), ids=str)
def test_digested_data_with_a_changed_payload(digest: DigestAlgorithm) -> None:
    inner = _inner_der(DigestedContent(digest=digest), PAYLOAD, dt.datetime.now(dt.UTC))
    tampered = _replace_once(inner, b"End of the payload.", b"End of the paylOad.")
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _decrypt(_seal_raw(tampered), [PasswordCredential(password=PASSWORD)])


def test_digested_data_with_a_changed_digest() -> None:
    inner = bytearray(_inner_der(DigestedContent(), PAYLOAD, dt.datetime.now(dt.UTC)))
    inner[-1] ^= 0x01
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _decrypt(_seal_raw(bytes(inner)), [PasswordCredential(password=PASSWORD)])


def test_signed_data_with_a_changed_payload(identities: Identities) -> None:
    spec = SignedContent(private_key=identities.signer.key, certificate=identities.signer.certificate)
    inner = _inner_der(spec, PAYLOAD, _signing_now(identities.signer.certificate))
    tampered = _replace_once(inner, b"End of the payload.", b"End of the paylOad.")
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _decrypt(_seal_raw(tampered), [PasswordCredential(password=PASSWORD)])


def test_signed_data_with_a_changed_signature(identities: Identities) -> None:
    spec = SignedContent(private_key=identities.signer.key, certificate=identities.signer.certificate)
    inner = bytearray(_inner_der(spec, PAYLOAD, _signing_now(identities.signer.certificate)))
    inner[-1] ^= 0x01  # the signature OCTET STRING ends the SignerInfo, which ends the SignedData
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _decrypt(_seal_raw(bytes(inner)), [PasswordCredential(password=PASSWORD)])


def test_signed_data_with_a_changed_signing_time(identities: Identities) -> None:
    spec = SignedContent(private_key=identities.signer.key, certificate=identities.signer.certificate)
    now = dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    inner = _inner_der(spec, PAYLOAD, now)
    tampered = _replace_once(inner, b"310102030405Z", b"310102030406Z")
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _decrypt(_seal_raw(tampered), [PasswordCredential(password=PASSWORD)])


def _edit_signed_data(inner: bytes, edit: Callable[[asn1_cms.SignedData], None]) -> bytes:
    signed = asn1_cms.SignedData.load(inner)
    edit(signed)
    return bytes(signed.dump(force=True))


def _pss(hash_name: str, mgf_hash: str, salt_length: int) -> Callable[[asn1_cms.SignedData], None]:
    def edit(signed: asn1_cms.SignedData) -> None:
        signed["signer_infos"][0]["signature_algorithm"] = asn1_algos.SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": asn1_algos.RSASSAPSSParams(
                    {
                        "hash_algorithm": {"algorithm": hash_name},
                        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": mgf_hash}},
                        "salt_length": salt_length,
                    }
                ),
            }
        )

    return edit


def _signer_digest(name: str) -> Callable[[asn1_cms.SignedData], None]:
    def edit(signed: asn1_cms.SignedData) -> None:
        signed["signer_infos"][0]["digest_algorithm"] = asn1_algos.DigestAlgorithm({"algorithm": name})

    return edit


def _signature_algorithm(name: str) -> Callable[[asn1_cms.SignedData], None]:
    def edit(signed: asn1_cms.SignedData) -> None:
        signed["signer_infos"][0]["signature_algorithm"] = asn1_algos.SignedDigestAlgorithm(
            {"algorithm": name}
        )

    return edit


def _no_certificates(signed: asn1_cms.SignedData) -> None:
    del signed["certificates"]


def _no_signed_attributes(signed: asn1_cms.SignedData) -> None:
    signed["signer_infos"][0]["signed_attrs"] = asn1_cms.CMSAttributes([])


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (_pss("sha256", "sha256", 32), DecryptionError),  # a PSS claim over a PKCS#1 v1.5 signature
        (_pss("md5", "sha256", 32), DecryptionError),
        (_pss("sha256", "md5", 32), DecryptionError),
        (_pss("sha256", "sha256", -1), DecryptionError),
        (_signer_digest("md5"), DecryptionError),
        (_signature_algorithm("sha256_ecdsa"), DecryptionError),
        (_no_certificates, DecryptionError),
        (_no_signed_attributes, DecryptionError),
    ],
    ids=[
        "pss-over-pkcs1",
        "pss-hash-md5",
        "pss-mgf-md5",
        "pss-negative-salt",
        "signer-digest-md5",
        "ecdsa",
        "no-certificates",
        "no-signed-attributes",
    ],
)
def test_hostile_signer_info_raises_only_dcmseal_errors(
    identities: Identities, edit: Callable[[asn1_cms.SignedData], None], error: type[DcmsealError]
) -> None:
    """Anyone holding a recipient's certificate can put any SignedData in an envelope: refusals stay ours,
    and, decided after decryption, they are all the one wrong-key answer (no oracle on the content).
    """
    spec = SignedContent(private_key=identities.signer.key, certificate=identities.signer.certificate)
    inner = _edit_signed_data(_inner_der(spec, PAYLOAD, _signing_now(identities.signer.certificate)), edit)
    with pytest.raises(error):
        _decrypt(_seal_raw(inner), [PasswordCredential(password=PASSWORD)])


def test_signer_certificate_with_an_even_rsa_exponent(identities: Identities) -> None:
    """cryptography refuses the public key (e must be odd): that is a bad signature, not a ValueError."""
    signer = identities.signer.certificate
    spec = SignedContent(private_key=identities.signer.key, certificate=signer)
    inner = _inner_der(spec, PAYLOAD, _signing_now(signer))
    hostile = _replace_once(inner, bytes.fromhex("0203010001"), bytes.fromhex("0203010002"))  # e = 65538
    with pytest.raises(DcmsealError):
        _decrypt(_seal_raw(hostile), [PasswordCredential(password=PASSWORD)])


def test_signer_identifier_with_an_unassigned_code_point(identities: Identities) -> None:
    """asn1crypto's Name comparison runs stringprep, which raises ValueError on U+0378 in the sid issuer."""
    signer = identities.signer.certificate
    spec = SignedContent(private_key=identities.signer.key, certificate=signer)
    inner = _inner_der(spec, PAYLOAD, _signing_now(signer))
    name = b"TEST ONLY kat recipient"  # UTF8String, in the certificate (issuer, subject) and in the sid
    assert inner.count(name) == 3
    at = inner.rindex(name)
    hostile = inner[:at] + "TEST \u0378LY kat recipient".encode() + inner[at + len(name) :]
    with pytest.raises(DcmsealError):
        _decrypt(_seal_raw(hostile), [PasswordCredential(password=PASSWORD)])


@pytest.mark.parametrize(
    ("offset", "value"),
    [(11, 0x00), (12, 0x03)],
    ids=["empty-version-integer", "version-4"],
)
def test_signer_certificate_that_cryptography_refuses(
    identities: Identities, offset: int, value: int
) -> None:
    """A certificate asn1crypto parses but cryptography refuses (X.509 version field) must not escape as such.

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] EXPLICIT INTEGER version ...: offset 8 is the
    [0] tag, 10 the INTEGER tag, 11 its length, 12 its value (2 = v3).
    """
    signer = identities.signer.certificate
    spec = SignedContent(private_key=identities.signer.key, certificate=signer)
    inner = bytearray(_inner_der(spec, PAYLOAD, _signing_now(signer)))
    start = bytes(inner).index(signer.public_bytes(serialization.Encoding.DER))
    assert inner[start + 8 : start + 13] == bytes.fromhex("a003020102")
    inner[start + offset] = value
    with pytest.raises(DcmsealError):
        _decrypt(_seal_raw(bytes(inner)), [PasswordCredential(password=PASSWORD)])


# -- integrity: tampering with the envelope ---------------------------------------------------------------------


def _content_iv_offset(data: bytes) -> int:
    algorithm = asn1_cms.ContentInfo.load(data)["content"]["encrypted_content_info"][
        "content_encryption_algorithm"
    ]
    iv = algorithm["parameters"].native
    return _unique_offset(data, bytes([0x04, len(iv)]) + iv) + 2


def _unique_offset(data: bytes, needle: bytes) -> int:
    assert data.count(needle) == 1
    return data.index(needle)


@pytest.mark.parametrize("inner_kind", ["digested", "signed"])
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_declared_structure_is_never_opened_as_raw(
    identities: Identities, inner_kind: str, mask: int
) -> None:
    """The content IV is not protected: flipping its first bit flips the first plaintext bit (0x30 -> 0x31).

    An envelope that declares id-digestedData or id-signedData (PS3.15 D.1.1) must then fail; returning the
    damaged DER as a "raw" payload would bypass the digest or signature altogether.
    """
    spec = _password_spec(_inner(inner_kind, DigestAlgorithm.SHA256, identities))
    data, info = _encrypt(PAYLOAD, spec, now=_signing_now(identities.signer.certificate))
    assert info.content_type in ("digested-data", "signed-data")
    tampered = bytearray(data)
    tampered[_content_iv_offset(data)] ^= mask
    try:
        result, out = _decrypt(bytes(tampered), [PasswordCredential(password=PASSWORD)])
    except DcmsealError:
        return
    pytest.fail(f"decrypt returned kind {result.inner.kind!r} and {len(out)} bytes that are not the payload")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"\x02\x01\x77", b"\x02\x01\x00"),  # iterationCount 0
        (b"\x02\x01\x77", b"\x02\x01\xff"),  # iterationCount -1
        (b"\x02\x01\x77", b"\x02\x01\x80"),  # iterationCount -128
    ],
    ids=["iterations-0", "iterations-minus-1", "iterations-minus-128"],
)
def test_hostile_iteration_count_is_refused_as_ours(old: bytes, new: bytes) -> None:
    """RFC 8018: iterationCount INTEGER (1..MAX). A file saying 0 or less is malformed, not a ValueError."""
    salt = b"ITERSALT"
    data, _ = _encrypt(PAYLOAD, _password_spec(iterations=0x77, salt=salt))
    needle = b"\x04\x08" + salt
    hostile = _replace_once(data, needle + old, needle + new)
    cache = Pbkdf2Cache()
    with pytest.raises(DcmsealError):
        _decrypt(hostile, [PasswordCredential(password=PASSWORD)], cache=cache)
    assert cache.derivations == 0


MGF1_OID = bytes.fromhex("06092a864886f70d010108")  # id-mgf1, 1.2.840.113549.1.1.8
NOT_MGF1_OID = bytes.fromhex("06092a864886f70d010109")  # id-pSpecified, 1.2.840.113549.1.1.9


def _hostile_header(label: str, ids: Identities) -> tuple[bytes, list[cms.Credential]]:
    """An envelope whose unencrypted header a byte patch made hostile, and the credential to try on it."""
    password: list[cms.Credential] = [PasswordCredential(password=PASSWORD)]
    key: list[cms.Credential] = [PrivateKeyCredential(private_key=ids.recipient.key)]
    certificate = ids.recipient.certificate
    if label == "pwri-version-6":
        data, _ = _encrypt(PAYLOAD, _password_spec())
        # PasswordRecipientInfo { version 0, [0] keyDerivationAlgorithm ...: CMSVersion has names v0..v5 only.
        return _replace_once(data, b"\x02\x01\x00\xa0", b"\x02\x01\x06\xa0"), password
    if label == "ktri-version-6":
        spec = EnvelopeSpec(
            recipients=(CertificateRecipient(certificate=certificate),),
            content_cipher=ContentCipher.AES256_CBC,
        )
        data, _ = _encrypt(PAYLOAD, spec)
        # KeyTransRecipientInfo { version 0, rid issuerAndSerialNumber SEQUENCE ...
        return _replace_once(data, b"\x02\x01\x00\x30", b"\x02\x01\x06\x30"), key
    if label == "oaep-mask-generation-not-mgf1":
        spec = EnvelopeSpec(
            recipients=(CertificateRecipient(certificate=certificate, key_transport=KeyTransport.RSA_OAEP),),
            content_cipher=ContentCipher.AES256_CBC,
        )
        data, _ = _encrypt(PAYLOAD, spec)
        return _replace_once(data, MGF1_OID, NOT_MGF1_OID), key
    if label == "pbkdf2-params-with-instance-of":
        # iterationCount INTEGER of length 0, so its old value 08 00 reads as a universal tag 8 element.
        data = read_vector("ossl-pwri-aes256-stream-ber.p7m")
        return _replace_once(data, b"\x02\x02\x08\x00", b"\x02\x00\x08\x00"), password
    raise AssertionError(label)


HOSTILE_HEADERS = [
    "pwri-version-6",
    "ktri-version-6",
    "oaep-mask-generation-not-mgf1",
    "pbkdf2-params-with-instance-of",
]


@pytest.mark.parametrize("label", HOSTILE_HEADERS)
def test_hostile_header_raises_only_dcmseal_errors(identities: Identities, label: str) -> None:
    """Found by mutating valid envelopes: every one of these once escaped as TypeError or AttributeError."""
    data, credentials = _hostile_header(label, identities)
    with pytest.raises(DcmsealError):
        _decrypt(data, credentials, size=len(data))


@pytest.mark.parametrize("label", HOSTILE_HEADERS)
def test_hostile_header_inspects_or_raises_only_dcmseal_errors(identities: Identities, label: str) -> None:
    data, _ = _hostile_header(label, identities)
    try:
        info = cms.inspect(io.BytesIO(data), size=len(data))
    except DcmsealError:
        return
    assert info.envelope_size == len(data)


def _edit_pwri(data: bytes, edit: Callable[[asn1_cms.PasswordRecipientInfo], None]) -> bytes:
    info = asn1_cms.ContentInfo.load(data)
    edit(info["content"]["recipient_infos"][0].chosen)
    return bytes(info.dump(force=True))


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("salt", b"", DcmsealError),
        ("key_length", 16, UnsupportedAlgorithmError),
        ("prf", "sha512_256", UnsupportedAlgorithmError),  # an HMAC PBKDF2 allows, we do not
    ],
    ids=["empty-salt", "key-length-16", "prf-sha512-256"],
)
def test_hostile_kdf_parameters(field: str, value: object, error: type[DcmsealError]) -> None:
    data, _ = _encrypt(PAYLOAD, _password_spec(iterations=2))

    def edit(pwri: asn1_cms.PasswordRecipientInfo) -> None:
        params = pwri["key_derivation_algorithm"]["parameters"]
        if field == "salt":
            params["salt"] = asn1_algos.Pbkdf2Salt(name="specified", value=value)
        elif field == "prf":
            params["prf"] = {"algorithm": value, "parameters": None}
        else:
            params[field] = value

    hostile = _edit_pwri(data, edit)
    assert hostile != data
    cache = Pbkdf2Cache()
    with pytest.raises(error):
        _decrypt(hostile, [PasswordCredential(password=PASSWORD)], cache=cache)
    assert cache.derivations == 0


def test_kek_iv_of_the_wrong_size_is_refused() -> None:
    data, _ = _encrypt(PAYLOAD, _password_spec(iterations=2))

    def edit(pwri: asn1_cms.PasswordRecipientInfo) -> None:
        pwri["key_encryption_algorithm"]["parameters"]["parameters"] = b"\x00" * 8

    with pytest.raises(UnsupportedAlgorithmError, match="KEK IV"):
        _decrypt(_edit_pwri(data, edit), [PasswordCredential(password=PASSWORD)])


# -- resource limits and writer contract ---------------------------------------------------------------------------


def test_iteration_cap_is_a_resource_limit() -> None:
    data, _ = _encrypt(PAYLOAD, _password_spec(iterations=5000))
    cache = Pbkdf2Cache()
    with pytest.raises(ResourceLimitError, match="5,000 iterations, above the limit of 1,000"):
        _decrypt(data, [PasswordCredential(password=PASSWORD)], cache=cache, max_iterations=1000)
    assert cache.derivations == 0
    _, out = _decrypt(data, [PasswordCredential(password=PASSWORD)], cache=cache, max_iterations=5000)
    assert out == PAYLOAD
    assert cache.derivations == 1


def test_iteration_cap_does_not_hide_another_recipient(identities: Identities) -> None:
    """A refused PWRI is skipped when the key opens the KTRI; the limit is raised only if nothing opens."""
    kdf = Pbkdf2Params(salt=b"cap-salt", iterations=5000)
    spec = EnvelopeSpec(
        recipients=_recipients("password+cert", identities, kdf, PASSWORD),
        content_cipher=ContentCipher.AES256_CBC,
    )
    data, _ = _encrypt(PAYLOAD, spec)
    credentials: list[cms.Credential] = [
        PasswordCredential(password=PASSWORD),
        PrivateKeyCredential(private_key=identities.recipient.key),
    ]
    result, out = _decrypt(data, credentials, max_iterations=1000)
    assert out == PAYLOAD
    assert result.envelope.recipients[result.recipient_index].kind == "certificate"
    with pytest.raises(ResourceLimitError):
        _decrypt(data, [PasswordCredential(password=PASSWORD)], max_iterations=1000)


@pytest.mark.parametrize("announced", [len(PAYLOAD) - 1, len(PAYLOAD) + 1, 0, 2 * len(PAYLOAD)])
def test_announced_payload_size_must_match_the_source(announced: int) -> None:
    with pytest.raises(ValueError, match="announced payload size"):
        cms.encrypt(
            io.BytesIO(PAYLOAD),
            io.BytesIO(),
            _password_spec(),
            payload_size=announced,
        )


def test_envelope_needs_a_recipient() -> None:
    with pytest.raises(ValueError, match="at least one recipient"):
        EnvelopeSpec(recipients=(), content_cipher=ContentCipher.AES256_CBC)


def test_decrypt_needs_a_credential() -> None:
    data, _ = _encrypt(PAYLOAD, _password_spec())
    with pytest.raises(ValueError, match="at least one credential"):
        _decrypt(data, [])


def test_wrong_password_and_wrong_key_say_the_same(identities: Identities) -> None:
    data, _ = _encrypt(PAYLOAD, _password_spec())
    with pytest.raises(DecryptionError) as wrong_password:
        _decrypt(data, [PasswordCredential(password=b"nope")])
    with pytest.raises(DecryptionError) as key_for_password_only:
        _decrypt(data, [PrivateKeyCredential(private_key=identities.recipient.key)])
    assert str(wrong_password.value) == str(key_for_password_only.value)


# -- damaged input raises only DcmsealError ------------------------------------------------------------------------


class Sample:
    """A valid envelope to damage, what it holds, and what opens it (not a dataclass: hypothesis would
    print every byte of it with each failing example)."""

    __slots__ = ("credentials", "data", "label", "payload")

    def __init__(
        self, label: str, data: bytes, payload: bytes, credentials: tuple[cms.Credential, ...]
    ) -> None:
        self.label, self.data, self.payload, self.credentials = label, data, payload, credentials

    def __repr__(self) -> str:
        return f"Sample({self.label!r}, {len(self.data)} bytes)"


@pytest.fixture(scope="module")
def samples(identities: Identities) -> list[Sample]:
    now = _signing_now(identities.signer.certificate)
    password = [PasswordCredential(password=PASSWORD)]
    key = [
        PrivateKeyCredential(
            private_key=identities.recipient.key, certificate=identities.recipient.certificate
        )
    ]
    signed = SignedContent(private_key=identities.signer.key, certificate=identities.signer.certificate)
    kdf = Pbkdf2Params(salt=b"mutation-salt", iterations=2)
    made: list[Sample] = []

    def add(label: str, spec: EnvelopeSpec, payload: bytes, credentials: Sequence[cms.Credential]) -> None:
        data, _ = _encrypt(payload, spec, now=now)
        made.append(Sample(label, data, payload, tuple(credentials)))

    add("digested-pwri-aes256", _password_spec(iterations=2), _patterned(300), password)
    add(
        "raw-pwri-aes192",
        _password_spec(RawContent(), cipher=ContentCipher.AES192_CBC, iterations=2),
        b"r" * 40,
        password,
    )
    add(
        "signed-pwri+ktri-aes128",
        EnvelopeSpec(
            recipients=_recipients("password+cert", identities, kdf, PASSWORD),
            content_cipher=ContentCipher.AES128_CBC,
            inner=signed,
        ),
        _patterned(200),
        password,
    )
    add(
        "signed-ktri-3des",
        EnvelopeSpec(
            recipients=_recipients("cert-pkcs1v15", identities, kdf, PASSWORD),
            content_cipher=ContentCipher.DES3_CBC,
            inner=signed,
        ),
        _patterned(100),
        key,
    )
    add(
        "digested-sha512-ski+oaep",
        EnvelopeSpec(
            recipients=(
                CertificateRecipient(
                    certificate=identities.recipient.certificate, identifier=RecipientIdType.SUBJECT_KEY_ID
                ),
                CertificateRecipient(
                    certificate=identities.recipient.certificate, key_transport=KeyTransport.RSA_OAEP
                ),
            ),
            content_cipher=ContentCipher.AES256_CBC,
            inner=DigestedContent(digest=DigestAlgorithm.SHA512),
        ),
        b"",
        key,
    )
    made.append(
        Sample(
            "ossl-stream-ber",
            read_vector("ossl-pwri-aes256-stream-ber.p7m"),
            read_vector("synthetic.dcm"),
            tuple(password),
        )
    )
    made.append(
        Sample(
            "ossl-digested-then-pwri",
            read_vector("ossl-digested-then-pwri-aes256.p7m"),
            read_vector("synthetic.dcm"),
            tuple(password),
        )
    )
    return made


positions = st.integers(0, 2**20)
#: One damage: (kind, position, number, bytes); positions wrap around the current length.
Op = tuple[str, int, int, bytes]
mutations = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), positions, st.integers(1, 255), st.just(b"")),
        st.tuples(st.just("set"), positions, st.integers(0, 255), st.just(b"")),
        st.tuples(st.just("truncate"), positions, st.just(0), st.just(b"")),
        st.tuples(st.just("extend"), st.just(0), st.just(0), st.binary(min_size=1, max_size=40)),
        st.tuples(st.just("insert"), positions, st.just(0), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), positions, st.integers(1, 16), st.just(b"")),
    ),
    min_size=1,
    max_size=3,
)


def _mutate(data: bytes, ops: list[Op]) -> bytes:
    out = bytearray(data)
    for kind, where, number, extra in ops:
        if kind == "extend":
            out += extra
            continue
        if not out:
            continue
        position = where % len(out)
        if kind == "flip":
            out[position] ^= number
        elif kind == "set":
            out[position] = number
        elif kind == "truncate":
            del out[position:]
        elif kind == "insert":
            out[position:position] = extra
        elif kind == "delete":
            del out[position : position + number]
    return bytes(out)


def _check_success(sample: Sample, result: cms.DecryptResult, out: bytes) -> None:
    """What a successful decrypt of damaged input may return.

    A verified structure (digested-data, signed-data) must carry the original payload. A raw payload is
    acceptable only when the envelope, as read, declares id-data: then nothing protects the content.
    """
    if result.inner.kind in ("digested-data", "signed-data"):
        assert out == sample.payload, (
            f"{sample.label}: a verified {result.inner.kind} with a different payload"
        )
    else:
        assert result.envelope.content_type == "data", (
            f"{sample.label}: content declared {result.envelope.content_type} opened as raw"
        )
        assert not result.inner.conformant
        assert not result.conformant


def _decrypt_mutated(
    sample: Sample, ops: list[Op], chunk_size: int | None, give_size: bool
) -> tuple[cms.DecryptResult, bytes] | None:
    """Decrypt the mutated sample; None when it raises a DcmsealError (anything else propagates)."""
    data = _mutate(sample.data, ops)
    size = len(data) if give_size else None
    with contextlib.suppress(DcmsealError):
        cms.inspect(io.BytesIO(data), size=size)
    try:
        # Unprotected content accepted: the raw path is exercised too, and still nothing that claims to be
        # verified may carry other content.
        return _decrypt(
            data, list(sample.credentials), chunk_size=chunk_size, size=size, accept_unprotected=True
        )
    except DcmsealError:
        return None


@given(
    index=st.integers(0, 6),
    ops=mutations,
    chunk_size=st.sampled_from([7, 4096, None]),
    give_size=st.booleans(),
)
def test_mutated_envelope_raises_only_dcmseal_errors(
    samples: list[Sample], index: int, ops: list[Op], chunk_size: int | None, give_size: bool
) -> None:
    """Never ValueError, IndexError, KeyError, AssertionError...: a damaged file is a DcmsealError."""
    _decrypt_mutated(samples[index], ops, chunk_size, give_size)


@given(
    index=st.integers(0, 6),
    ops=mutations,
    chunk_size=st.sampled_from([7, 4096, None]),
    give_size=st.booleans(),
)
def test_mutated_envelope_never_verifies_other_content(
    samples: list[Sample], index: int, ops: list[Op], chunk_size: int | None, give_size: bool
) -> None:
    """A decrypt that succeeds on damaged input returns the original payload, or says it was unprotected."""
    sample = samples[index]
    try:
        opened = _decrypt_mutated(sample, ops, chunk_size, give_size)
    except Exception:  # test_mutated_envelope_raises_only_dcmseal_errors reports those
        return
    if opened is not None:
        _check_success(sample, *opened)


@given(
    index=st.integers(0, 6),
    keep=st.integers(0, 2**20),
    tail=st.binary(max_size=200),
)
def test_valid_prefix_then_noise_raises_only_dcmseal_errors(
    samples: list[Sample], index: int, keep: int, tail: bytes
) -> None:
    sample = samples[index]
    data = sample.data[: keep % (len(sample.data) + 1)] + tail
    try:
        result, out = _decrypt(data, list(sample.credentials), size=len(data), accept_unprotected=True)
    except DcmsealError:
        return
    _check_success(sample, result, out)


@given(data=st.binary(max_size=2048), give_size=st.booleans())
def test_random_bytes_raise_only_dcmseal_errors(data: bytes, give_size: bool) -> None:
    size = len(data) if give_size else None
    with pytest.raises(DcmsealError):
        _decrypt(data, [PasswordCredential(password=PASSWORD)], size=size)
    with pytest.raises(DcmsealError):
        cms.inspect(io.BytesIO(data), size=size)


@pytest.mark.parametrize("index", range(7))
def test_every_truncation_raises_only_dcmseal_errors(samples: list[Sample], index: int) -> None:
    """Deterministic companion of the property: every prefix of a valid envelope (BER and DER)."""
    sample = samples[index]
    step = max(1, len(sample.data) // 400)
    for cut in range(0, len(sample.data), step):
        data = sample.data[:cut]
        for size in (len(data), None):
            try:
                result, out = _decrypt(data, list(sample.credentials), size=size)
            except DcmsealError:
                continue
            _check_success(sample, result, out)
