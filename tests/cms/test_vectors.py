"""Known answers from OpenSSL 3.0.19, step by step: KEK, CEK, plaintext, then our writer byte for byte."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dcmseal import cms
from dcmseal.cms import (
    ContentCipher,
    DigestAlgorithm,
    EnvelopeSpec,
    PasswordCredential,
    PasswordRecipient,
    Pbkdf2Cache,
    Pbkdf2Params,
    Prf,
    PrivateKeyCredential,
    RawContent,
    unwrap_key,
    wrap_key,
)
from dcmseal.cms.content import UNPROTECTED_NOTE
from dcmseal.errors import (
    WRONG_KEY_MESSAGE,
    DcmsealError,
    DecryptionError,
    ResourceLimitError,
)
from tests.vectors import (
    PASSWORD,
    UTF8_PASSWORD,
    VECTORS_DIR,
    load_intermediates,
    read_vector,
    vector_params,
)

MAX_ITERATIONS = 1_000_000
RAW_NOTE = UNPROTECTED_NOTE
CONTENT_INFO_NOTE = "the encrypted content is a ContentInfo, not the bare structure RFC 5652 §6.1 names"
RELABEL_NOTE = "the envelope labels its content as id-data; the content is digested-data"

#: The vectors openssl made with plain.txt that intermediates.json describes (DER, one PWRI recipient).
OSSL_PLAIN_AES = ("ossl-pwri-aes256", "ossl-pwri-aes128", "ossl-pwri-aes256-utf8pw")
#: DER vectors with a password recipient only: the writer can reproduce them from their own parameters.
DER_PASSWORD_ONLY = (*OSSL_PLAIN_AES, "ossl-pwri-des3-default", "ossl-digested-then-pwri-aes256")


@dataclass(frozen=True)
class Expected:
    password: bytes
    plaintext: str
    kind: str
    cipher: ContentCipher
    ber: bool
    recipients: tuple[str, ...]
    password_index: int


EXPECTED: dict[str, Expected] = {
    "ossl-pwri-aes256.p7m": Expected(
        PASSWORD, "plain.txt", "raw", ContentCipher.AES256_CBC, False, ("password",), 0
    ),
    "ossl-pwri-aes128.p7m": Expected(
        PASSWORD, "plain.txt", "raw", ContentCipher.AES128_CBC, False, ("password",), 0
    ),
    "ossl-pwri-des3-default.p7m": Expected(
        PASSWORD, "plain.txt", "raw", ContentCipher.DES3_CBC, False, ("password",), 0
    ),
    "ossl-pwri-aes256-utf8pw.p7m": Expected(
        UTF8_PASSWORD, "plain.txt", "raw", ContentCipher.AES256_CBC, False, ("password",), 0
    ),
    "ossl-pwri-aes256-stream-ber.p7m": Expected(
        PASSWORD, "synthetic.dcm", "raw", ContentCipher.AES256_CBC, True, ("password",), 0
    ),
    "ossl-ktri-pwri-aes256.p7m": Expected(
        PASSWORD, "synthetic.dcm", "raw", ContentCipher.AES256_CBC, False, ("certificate", "password"), 1
    ),
    "ossl-digested-then-pwri-aes256.p7m": Expected(
        PASSWORD, "synthetic.dcm", "digested-data", ContentCipher.AES256_CBC, False, ("password",), 0
    ),
}
ALL_VECTORS = sorted(EXPECTED)


# -- helpers: independent of the module under test ------------------------------------------------------------


def _cipher_of(name: str) -> ContentCipher:
    return {
        "aes128_cbc": ContentCipher.AES128_CBC,
        "aes192_cbc": ContentCipher.AES192_CBC,
        "aes256_cbc": ContentCipher.AES256_CBC,
        "tripledes_3key": ContentCipher.DES3_CBC,
    }[name]


def _cbc(cipher: ContentCipher, key: bytes, iv: bytes) -> Cipher[modes.CBC]:
    algorithm = TripleDES(key) if cipher is ContentCipher.DES3_CBC else algorithms.AES(key)
    return Cipher(algorithm, modes.CBC(iv))


def _formatted_block(kek: bytes, iv: bytes, wrapped: bytes, cipher: ContentCipher) -> bytes:
    """standards.md §3.4 Unwrap steps 1-3: F = count || check value || CEK || random padding."""
    b = cipher.block_size
    n = len(wrapped) // b
    last = _cbc(cipher, kek, wrapped[(n - 2) * b : (n - 1) * b]).decryptor().update(wrapped[(n - 1) * b :])
    first = _cbc(cipher, kek, last).decryptor().update(wrapped[: (n - 1) * b])
    return _cbc(cipher, kek, iv).decryptor().update(first + last)


def _scripted_rng(*values: bytes) -> Callable[[int], bytes]:
    """An rng that returns `values` in order, checking each requested length, and fails when asked for more."""
    queue: Iterator[bytes] = iter(values)

    def rng(n: int) -> bytes:
        value = next(queue, None)
        assert value is not None, f"the writer asked for {n} more random bytes than scripted"
        assert len(value) == n, f"the writer asked for {n} random bytes, the script has {len(value)}"
        return value

    return rng


@dataclass(frozen=True)
class _Pwri:
    salt: bytes
    iterations: int
    prf: str
    key_length: int | None
    kek_cipher: ContentCipher
    kek_iv: bytes
    encrypted_key: bytes


@dataclass(frozen=True)
class _Parts:
    """What asn1crypto reads from an envelope (BER chunks joined)."""

    version: int
    pwri: _Pwri | None
    content_type: str
    content_cipher: ContentCipher
    content_iv: bytes
    ciphertext: bytes


def _parts(data: bytes) -> _Parts:
    enveloped = asn1_cms.ContentInfo.load(data)["content"]
    pwri = None
    for info in enveloped["recipient_infos"]:
        if info.name != "pwri":
            continue
        chosen = info.chosen
        params = chosen["key_derivation_algorithm"]["parameters"]
        kek_alg = chosen["key_encryption_algorithm"]["parameters"]
        pwri = _Pwri(
            salt=params["salt"].chosen.native,
            iterations=params["iteration_count"].native,
            prf=params["prf"]["algorithm"].native,
            key_length=params["key_length"].native,
            kek_cipher=_cipher_of(kek_alg["algorithm"].native),
            kek_iv=kek_alg["parameters"].native,
            encrypted_key=chosen["encrypted_key"].native,
        )
    eci = enveloped["encrypted_content_info"]
    algorithm = eci["content_encryption_algorithm"]
    return _Parts(
        version=int(enveloped["version"].native[1:]),
        pwri=pwri,
        content_type=eci["content_type"].dotted,
        content_cipher=_cipher_of(algorithm["algorithm"].native),
        content_iv=algorithm["parameters"].native,
        ciphertext=eci["encrypted_content"].native,
    )


def _tlv(data: bytes, pos: int) -> tuple[int, int, int | None]:
    """(tag, content offset, length or None) of the element at `pos` (one-octet tags only)."""
    tag, first = data[pos], data[pos + 1]
    assert tag & 0x1F != 0x1F
    if first < 0x80:
        return tag, pos + 2, first
    if first == 0x80:
        return tag, pos + 2, None
    count = first & 0x7F
    return tag, pos + 2 + count, int.from_bytes(data[pos + 2 : pos + 2 + count], "big")


def _skip(data: bytes, pos: int) -> int:
    _, content, length = _tlv(data, pos)
    if length is not None:
        return content + length
    pos = content
    while data[pos : pos + 2] != b"\x00\x00":
        pos = _skip(data, pos)
    return pos + 2


def _ciphertext_offsets(data: bytes) -> list[int]:
    """The file offset of every encryptedContent octet, in order (primitive, or BER segments)."""
    _, pos, _ = _tlv(data, 0)  # ContentInfo
    pos = _skip(data, pos)  # contentType
    _, pos, _ = _tlv(data, pos)  # [0] EXPLICIT
    _, pos, _ = _tlv(data, pos)  # EnvelopedData
    pos = _skip(data, pos)  # version
    if data[pos] == 0xA0:
        pos = _skip(data, pos)  # originatorInfo
    pos = _skip(data, pos)  # recipientInfos
    _, pos, _ = _tlv(data, pos)  # EncryptedContentInfo
    pos = _skip(data, _skip(data, pos))  # contentType, contentEncryptionAlgorithm
    tag, pos, length = _tlv(data, pos)
    if tag == 0x80:
        assert length is not None
        return list(range(pos, pos + length))
    assert tag == 0xA0
    end = None if length is None else pos + length
    offsets: list[int] = []
    while (data[pos : pos + 2] != b"\x00\x00") if end is None else (pos < end):
        _, content, segment = _tlv(data, pos)
        assert segment is not None
        offsets.extend(range(content, content + segment))
        pos = content + segment
    return offsets


class _DecryptOptions(TypedDict, total=False):
    """The options of cms.decrypt a test sets; the rest keep the library's defaults."""

    chunk_size: int


def _decrypt(
    data: bytes,
    credentials: list[cms.Credential],
    *,
    kdf_cache: Pbkdf2Cache | None = None,
    size: int | None = None,
    chunk_size: int | None = None,
) -> tuple[cms.DecryptResult, bytes]:
    """Open a vector; OpenSSL's plain ``-encrypt`` vectors hold no digest, so unprotected content is
    accepted here (and must then be reported as not verified); the refusal by default is tested in
    tests/hostile."""
    sink = io.BytesIO()
    extra: _DecryptOptions = {} if chunk_size is None else {"chunk_size": chunk_size}
    result = cms.decrypt(
        io.BytesIO(data),
        sink,
        credentials,
        context=None if kdf_cache is None else cms.Context(kdf_cache=kdf_cache),
        max_iterations=MAX_ITERATIONS,
        size=size,
        accept_unprotected=True,
        **extra,
    )
    assert result.inner.verified is (result.inner.kind != cms.ContentKind.RAW)
    return result, sink.getvalue()


def _wrong_key_error(data: bytes, credentials: list[cms.Credential]) -> DecryptionError:
    with pytest.raises(DecryptionError) as excinfo:
        _decrypt(data, credentials, size=len(data))
    assert type(excinfo.value) is DecryptionError
    return excinfo.value


def _kek_cipher(values: dict[str, object]) -> ContentCipher:
    return _cipher_of(str(values["kek_cipher"]))


def _hex(values: dict[str, object], key: str) -> bytes:
    return bytes.fromhex(str(values[key]))


def _prf(values: dict[str, object]) -> Prf:
    return Prf(str(values["prf"]))


@pytest.fixture(scope="module")
def vector_identity(test_cert_and_key: tuple[Path, Path]) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    cert_path, key_path = test_cert_and_key
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return certificate, key


# -- step 1: KEK ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "values"), vector_params())
def test_kek_is_pbkdf2_of_the_password(name: str, values: dict[str, object]) -> None:
    password = _hex(values, "password_utf8_hex")
    assert password == (UTF8_PASSWORD if "utf8pw" in name else PASSWORD)
    assert values["keyLength_field"] is None  # OpenSSL derives the KEK length from the cipher
    cache = Pbkdf2Cache()
    params = Pbkdf2Params(salt=_hex(values, "salt"), iterations=int(str(values["iter"])), prf=_prf(values))

    kek = cache.derive(password, params, _kek_cipher(values).key_size)

    assert kek == _hex(values, "KEK")
    assert cache.derivations == 1
    assert cache.derive(password, params, len(kek)) == kek
    assert cache.derivations == 1


# -- step 2: CEK ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "values"), vector_params())
def test_cek_unwraps_from_the_encrypted_key(name: str, values: dict[str, object]) -> None:
    kek_cipher = _kek_cipher(values)
    content_cipher = _cipher_of(str(values["content_cipher"]))
    assert kek_cipher is content_cipher  # OpenSSL: kekciph = NULL means the content cipher
    cek = unwrap_key(
        _hex(values, "KEK"),
        _hex(values, "kek_iv"),
        _hex(values, "encryptedKey"),
        kek_cipher,
        expected_length=content_cipher.key_size,
    )
    assert cek == _hex(values, "CEK")


@pytest.mark.parametrize(("name", "values"), vector_params())
def test_wrap_reproduces_the_encrypted_key(name: str, values: dict[str, object]) -> None:
    kek_cipher = _kek_cipher(values)
    kek, kek_iv, wrapped, cek = (_hex(values, k) for k in ("KEK", "kek_iv", "encryptedKey", "CEK"))
    formatted = _formatted_block(kek, kek_iv, wrapped, kek_cipher)
    assert formatted[0] == len(cek)
    assert formatted[4 : 4 + len(cek)] == cek
    padding = formatted[4 + len(cek) :]

    assert wrap_key(kek, kek_iv, cek, kek_cipher, rng=_scripted_rng(padding)) == wrapped


@pytest.mark.parametrize(("name", "values"), vector_params(*OSSL_PLAIN_AES))
def test_intermediates_match_the_envelope(name: str, values: dict[str, object]) -> None:
    data = read_vector(f"{name}.p7m")
    parts = _parts(data)
    assert parts.pwri is not None
    assert parts.version == 3
    assert parts.pwri.salt == _hex(values, "salt")
    assert parts.pwri.iterations == values["iter"]
    assert parts.pwri.prf == values["prf"]
    assert parts.pwri.key_length is None
    assert parts.pwri.kek_cipher is _kek_cipher(values)
    assert parts.pwri.kek_iv == _hex(values, "kek_iv")
    assert parts.pwri.encrypted_key == _hex(values, "encryptedKey")
    assert parts.content_cipher is _cipher_of(str(values["content_cipher"]))
    assert parts.content_iv == _hex(values, "content_iv")

    info = cms.inspect(io.BytesIO(data), size=len(data))
    (recipient,) = info.recipients
    assert (recipient.kind, recipient.version, recipient.kdf) == ("password", 0, "pbkdf2")
    assert (recipient.salt, recipient.iterations, recipient.prf) == (values["salt"], values["iter"], "sha1")
    assert recipient.key_length is None
    assert recipient.kek_cipher == values["kek_cipher"]
    assert info.version == 3
    assert info.content_type == "data"


# -- step 3: plaintext ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "values"), vector_params(*OSSL_PLAIN_AES))
def test_plaintext_step_by_step(name: str, values: dict[str, object]) -> None:
    data = read_vector(f"{name}.p7m")
    plain = read_vector("plain.txt")
    cipher = _cipher_of(str(values["content_cipher"]))
    cek, iv = _hex(values, "CEK"), _hex(values, "content_iv")

    # Independently: CBC with the CEK and IV gives plain.txt and PKCS#7 padding (RFC 5652 §6.3).
    decrypted = _cbc(cipher, cek, iv).decryptor().update(_parts(data).ciphertext)
    pad = cipher.block_size - len(plain) % cipher.block_size
    assert decrypted == plain + bytes([pad]) * pad

    # Through the reader, with the cache that already holds the KEK: no second derivation.
    cache = Pbkdf2Cache()
    params = Pbkdf2Params(salt=_hex(values, "salt"), iterations=int(str(values["iter"])), prf=_prf(values))
    cache.derive(_hex(values, "password_utf8_hex"), params, cipher.key_size)
    result, payload = _decrypt(
        data, [PasswordCredential(password=_hex(values, "password_utf8_hex"))], kdf_cache=cache
    )
    assert payload == plain
    assert cache.derivations == 1
    assert result.inner.payload_size == len(plain)


# -- step 4: our writer, byte for byte --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "values"), vector_params(*OSSL_PLAIN_AES))
def test_writer_reproduces_the_vector_byte_for_byte(name: str, values: dict[str, object]) -> None:
    """RawContent (id-data, as openssl writes), PBKDF2-HMAC-SHA1, the vector's salt; rng scripted.

    The writer draws CEK, content IV, KEK IV, then the RFC 3211 padding, which F gives back.
    """
    cipher = _cipher_of(str(values["content_cipher"]))
    kek, kek_iv, wrapped, cek = (_hex(values, k) for k in ("KEK", "kek_iv", "encryptedKey", "CEK"))
    padding = _formatted_block(kek, kek_iv, wrapped, cipher)[4 + len(cek) :]
    plain = read_vector("plain.txt")
    spec = EnvelopeSpec(
        recipients=(
            PasswordRecipient(
                password=_hex(values, "password_utf8_hex"),
                kdf=Pbkdf2Params(
                    salt=_hex(values, "salt"), iterations=int(str(values["iter"])), prf=Prf.SHA1
                ),
            ),
        ),
        content_cipher=cipher,
        inner=RawContent(),
    )
    sink = io.BytesIO()
    cache = Pbkdf2Cache()

    info = cms.encrypt(
        io.BytesIO(plain),
        sink,
        spec,
        payload_size=len(plain),
        context=cms.Context(kdf_cache=cache),
        rng=_scripted_rng(cek, _hex(values, "content_iv"), kek_iv, padding),
    )

    expected = read_vector(f"{name}.p7m")
    assert sink.getvalue() == expected
    assert cache.derivations == 1
    assert info.envelope_size == len(expected)
    assert info.version == 3
    assert info.content_type == "data"
    assert not info.ber


@pytest.mark.parametrize("name", DER_PASSWORD_ONLY)
def test_writer_reproduces_from_the_envelope_parameters(name: str) -> None:
    """Every DER password-only vector, incl. 3DES and the nested ContentInfo: parameters read from the file."""
    data = read_vector(f"{name}.p7m")
    parts = _parts(data)
    assert parts.pwri is not None
    cipher = parts.content_cipher
    password = EXPECTED[f"{name}.p7m"].password
    cache = Pbkdf2Cache()
    kdf = Pbkdf2Params(salt=parts.pwri.salt, iterations=parts.pwri.iterations, prf=Prf(parts.pwri.prf))
    kek = cache.derive(password, kdf, parts.pwri.kek_cipher.key_size)
    cek = unwrap_key(
        kek, parts.pwri.kek_iv, parts.pwri.encrypted_key, cipher, expected_length=cipher.key_size
    )
    padding = _formatted_block(kek, parts.pwri.kek_iv, parts.pwri.encrypted_key, cipher)[4 + len(cek) :]
    padded = _cbc(cipher, cek, parts.content_iv).decryptor().update(parts.ciphertext)
    inner = padded[: -padded[-1]]
    sink = io.BytesIO()

    cms.encrypt(
        io.BytesIO(inner),
        sink,
        EnvelopeSpec(
            recipients=(PasswordRecipient(password=password, kdf=kdf),),
            content_cipher=cipher,
            inner=RawContent(),
        ),
        payload_size=len(inner),
        context=cms.Context(kdf_cache=cache),
        rng=_scripted_rng(cek, parts.content_iv, parts.pwri.kek_iv, padding),
    )

    assert sink.getvalue() == data
    assert cache.derivations == 1


@pytest.mark.parametrize(("name", "values"), vector_params("proto-pwri-sha256-600k-aes256"))
def test_proto_sha256_600k_through_the_writer(name: str, values: dict[str, object]) -> None:
    """No envelope exists for this entry: the writer, scripted, must give its encryptedKey, and read back.

    One PBKDF2 run (600,000 iterations of HMAC-SHA256) serves derive, encrypt and decrypt.
    """
    cipher = _cipher_of(str(values["content_cipher"]))
    kek, kek_iv, wrapped, cek = (_hex(values, k) for k in ("KEK", "kek_iv", "encryptedKey", "CEK"))
    padding = _formatted_block(kek, kek_iv, wrapped, cipher)[4 + len(cek) :]
    kdf = Pbkdf2Params(salt=_hex(values, "salt"), iterations=int(str(values["iter"])), prf=Prf.SHA256)
    cache = Pbkdf2Cache()
    assert cache.derive(PASSWORD, kdf, cipher.key_size) == kek
    payload = read_vector("synthetic.dcm")
    sink = io.BytesIO()

    cms.encrypt(
        io.BytesIO(payload),
        sink,
        EnvelopeSpec(recipients=(PasswordRecipient(password=PASSWORD, kdf=kdf),), content_cipher=cipher),
        payload_size=len(payload),
        context=cms.Context(kdf_cache=cache),
        rng=_scripted_rng(cek, _hex(values, "content_iv"), kek_iv, padding),
    )

    data = sink.getvalue()
    parts = _parts(data)
    assert parts.pwri is not None
    assert parts.pwri.encrypted_key == wrapped
    assert (parts.pwri.salt, parts.pwri.iterations, parts.pwri.prf) == (kdf.salt, 600_000, "sha256")
    assert parts.content_iv == _hex(values, "content_iv")
    assert parts.content_type == "1.2.840.113549.1.7.5"  # id-digestedData
    sink = io.BytesIO()
    result = cms.decrypt(
        io.BytesIO(data),
        sink,
        [PasswordCredential(password=PASSWORD)],
        context=cms.Context(kdf_cache=cache),
        max_iterations=600_000,
    )
    assert sink.getvalue() == payload
    assert result.inner.kind == "digested-data"
    assert result.inner.digest is DigestAlgorithm.SHA256
    assert result.conformant
    assert cache.derivations == 1

    fresh = Pbkdf2Cache()
    with pytest.raises(ResourceLimitError, match="600,000 iterations"):
        cms.decrypt(
            io.BytesIO(data),
            io.BytesIO(),
            [PasswordCredential(password=PASSWORD)],
            context=cms.Context(kdf_cache=fresh),
            max_iterations=599_999,
        )
    assert fresh.derivations == 0


# -- every vector opens ------------------------------------------------------------------------------------------


def test_every_vector_file_is_described() -> None:
    assert sorted(p.name for p in VECTORS_DIR.glob("*.p7m")) == ALL_VECTORS
    stems = {name.removesuffix(".p7m") for name in ALL_VECTORS}
    assert {name for name in load_intermediates() if name.startswith("ossl-")} <= stems


@pytest.mark.parametrize("name", ALL_VECTORS)
@pytest.mark.parametrize("give_size", [True, False], ids=["size", "no-size"])
def test_vector_opens_with_its_password(name: str, give_size: bool) -> None:
    expected = EXPECTED[name]
    data = read_vector(name)
    cache = Pbkdf2Cache()

    result, payload = _decrypt(
        data,
        [PasswordCredential(password=expected.password)],
        kdf_cache=cache,
        size=len(data) if give_size else None,
    )

    assert payload == read_vector(expected.plaintext)
    assert cache.derivations == 1
    assert result.inner.kind == expected.kind
    assert result.inner.payload_size == len(payload)
    assert result.recipient_index == expected.password_index
    envelope = result.envelope
    assert envelope.version == 3
    assert envelope.ber is expected.ber
    assert envelope.content_cipher is expected.cipher
    assert envelope.content_type == "data"  # the openssl CLI labels everything id-data
    assert tuple(r.kind for r in envelope.recipients) == expected.recipients
    assert envelope.envelope_size == len(data)
    assert envelope.encrypted_size == len(_parts(data).ciphertext)
    assert not result.conformant


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_inspect_agrees_with_decrypt(name: str) -> None:
    expected = EXPECTED[name]
    data = read_vector(name)
    info = cms.inspect(io.BytesIO(data), size=len(data))
    result, _ = _decrypt(data, [PasswordCredential(password=expected.password)])
    assert info == result.envelope
    assert not info.in_profile  # id-data: neither DigestedData nor SignedData is declared


@pytest.mark.parametrize("name", [n for n in ALL_VECTORS if EXPECTED[n].kind == "raw"])
def test_raw_vectors_are_not_conformant(name: str) -> None:
    result, _ = _decrypt(read_vector(name), [PasswordCredential(password=EXPECTED[name].password)])
    assert result.inner.conformant is False
    assert RAW_NOTE in result.inner.notes
    assert result.inner.signers == ()
    assert result.inner.digest is None
    assert result.inner.wrapped_in_content_info is False


def test_des3_default_opens() -> None:
    """The openssl CLI default cipher (des-ede3-cbc for content and KEK)."""
    data = read_vector("ossl-pwri-des3-default.p7m")
    result, payload = _decrypt(data, [PasswordCredential(password=PASSWORD)])
    assert payload == read_vector("plain.txt")
    assert result.envelope.content_cipher is ContentCipher.DES3_CBC
    assert result.envelope.recipients[0].kek_cipher == "tripledes_3key"
    assert result.envelope.encrypted_size == 96  # 89 bytes -> 12 blocks of 8


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 4096])
def test_stream_ber_vector(chunk_size: int) -> None:
    data = read_vector("ossl-pwri-aes256-stream-ber.p7m")
    result, payload = _decrypt(
        data, [PasswordCredential(password=PASSWORD)], size=len(data), chunk_size=chunk_size
    )
    assert payload == read_vector("synthetic.dcm")
    assert result.envelope.ber is True
    assert result.envelope.encrypted_size == 4096 + 608 + 16
    assert len(_ciphertext_offsets(data)) == 4096 + 608 + 16


def test_utf8_password_vector_wants_the_utf8_bytes() -> None:
    """cms works on bytes: the UTF-8 bytes open it, the same text in Latin-1 or NFD does not."""
    data = read_vector("ossl-pwri-aes256-utf8pw.p7m")
    _, payload = _decrypt(data, [PasswordCredential(password=UTF8_PASSWORD)])
    assert payload == read_vector("plain.txt")
    assert UTF8_PASSWORD.hex() == "50c3a4737377c3b672642dc39f"
    for other in ("Pässwörd-ß".encode("latin-1"), "Pa\u0308sswo\u0308rd-ß".encode()):
        assert str(_wrong_key_error(data, [PasswordCredential(password=other)])) == WRONG_KEY_MESSAGE


def test_digested_then_pwri_vector() -> None:
    data = read_vector("ossl-digested-then-pwri-aes256.p7m")
    result, payload = _decrypt(data, [PasswordCredential(password=PASSWORD)], size=len(data))
    assert payload == read_vector("synthetic.dcm")
    inner = result.inner
    assert inner.kind == "digested-data"
    assert inner.wrapped_in_content_info is True
    assert inner.digest is DigestAlgorithm.SHA256
    assert inner.conformant is True
    assert inner.payload_size == len(payload)
    assert CONTENT_INFO_NOTE in inner.notes
    assert RELABEL_NOTE in inner.notes
    assert result.envelope.content_type == "data"
    assert result.conformant is False  # the envelope declares id-data, outside PS3.15 D.1


def test_digested_then_pwri_vector_detects_a_changed_payload() -> None:
    """A flipped ciphertext byte inside the DICOM bytes garbles a block: the SHA-256 digest catches it."""
    data = read_vector("ossl-digested-then-pwri-aes256.p7m")
    offsets = _ciphertext_offsets(data)
    tampered = bytearray(data)
    tampered[offsets[len(offsets) // 2]] ^= 0x40
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _decrypt(bytes(tampered), [PasswordCredential(password=PASSWORD)])


# -- key transport -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_certificate", [True, False], ids=["with-cert", "key-only"])
def test_ktri_pwri_vector_opens_with_the_test_key(
    vector_identity: tuple[x509.Certificate, rsa.RSAPrivateKey], with_certificate: bool
) -> None:
    certificate, key = vector_identity
    data = read_vector("ossl-ktri-pwri-aes256.p7m")
    credential = PrivateKeyCredential(private_key=key, certificate=certificate if with_certificate else None)
    cache = Pbkdf2Cache()

    result, payload = _decrypt(data, [credential], kdf_cache=cache, size=len(data))

    assert payload == read_vector("synthetic.dcm")
    assert result.recipient_index == 0
    assert cache.derivations == 0
    ktri = result.envelope.recipients[0]
    assert (ktri.kind, ktri.version, ktri.key_encryption) == ("certificate", 0, "rsaes_pkcs1v15")
    assert ktri.serial_number == certificate.serial_number
    assert ktri.issuer is not None
    assert "TEST ONLY kat recipient" in ktri.issuer
    assert ktri.in_profile


def test_ktri_pwri_vector_with_both_credentials(
    vector_identity: tuple[x509.Certificate, rsa.RSAPrivateKey],
) -> None:
    certificate, key = vector_identity
    data = read_vector("ossl-ktri-pwri-aes256.p7m")
    credentials: list[cms.Credential] = [
        PasswordCredential(password=b"not the password"),
        PrivateKeyCredential(private_key=key, certificate=certificate),
    ]
    result, payload = _decrypt(data, credentials)
    assert payload == read_vector("synthetic.dcm")
    assert result.recipient_index == 0


def test_ktri_pwri_vector_refuses_another_identity(
    tmp_path: Path, rsa_identity_factory: Callable[..., tuple[Path, Path]]
) -> None:
    cert_path, key_path = rsa_identity_factory(tmp_path, "dcmseal tests not the kat recipient")
    other_cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    other_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(other_key, rsa.RSAPrivateKey)
    data = read_vector("ossl-ktri-pwri-aes256.p7m")
    for certificate in (other_cert, None):
        error = _wrong_key_error(data, [PrivateKeyCredential(private_key=other_key, certificate=certificate)])
        assert str(error) == WRONG_KEY_MESSAGE


def test_ktri_pwri_vector_refuses_the_right_key_with_a_wrong_certificate(
    tmp_path: Path,
    rsa_identity_factory: Callable[..., tuple[Path, Path]],
    vector_identity: tuple[x509.Certificate, rsa.RSAPrivateKey],
) -> None:
    """With a certificate given, the issuer and serial number must match the recipient identifier."""
    cert_path, _ = rsa_identity_factory(tmp_path, "dcmseal tests not the kat recipient")
    other_cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    _, key = vector_identity
    data = read_vector("ossl-ktri-pwri-aes256.p7m")
    error = _wrong_key_error(data, [PrivateKeyCredential(private_key=key, certificate=other_cert)])
    assert str(error) == WRONG_KEY_MESSAGE


# -- invalid: one type, one message --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_wrong_password(name: str) -> None:
    error = _wrong_key_error(read_vector(name), [PasswordCredential(password=b"Test-Passw0rd?")])
    assert str(error) == WRONG_KEY_MESSAGE
    assert error.message == WRONG_KEY_MESSAGE


@pytest.mark.parametrize("name", ALL_VECTORS)
@pytest.mark.parametrize("where", ["last-byte", "padding-byte"])
def test_flipped_ciphertext_looks_like_a_wrong_password(name: str, where: str) -> None:
    """Like test_invalid in cryptography's test_fernet: a changed padding says exactly what a wrong key says.

    "last-byte" garbles the last block; "padding-byte" flips the byte a block earlier, which flips the pad
    length byte itself (so the padding is wrong whatever the data).
    """
    data = read_vector(name)
    offsets = _ciphertext_offsets(data)
    block = EXPECTED[name].cipher.block_size
    assert bytes(data[o] for o in offsets) == _parts(data).ciphertext
    position = offsets[-1] if where == "last-byte" else offsets[-1 - block]
    tampered = bytearray(data)
    tampered[position] ^= 0x01

    flipped = _wrong_key_error(bytes(tampered), [PasswordCredential(password=EXPECTED[name].password)])
    wrong = _wrong_key_error(data, [PasswordCredential(password=b"wrong password")])

    assert type(flipped) is type(wrong) is DecryptionError
    assert str(flipped) == str(wrong) == WRONG_KEY_MESSAGE


@pytest.mark.parametrize("name", ALL_VECTORS)
@pytest.mark.parametrize("cut", [1, 2, 17, 100])
def test_truncated_vector_is_refused(name: str, cut: int) -> None:
    data = read_vector(name)[:-cut]
    for size in (len(data), None):
        with pytest.raises(DcmsealError):
            _decrypt(data, [PasswordCredential(password=EXPECTED[name].password)], size=size)
