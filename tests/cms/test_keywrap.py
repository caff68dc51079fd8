"""Tests of the RFC 3211 §2.3 key wrap (id-alg-PWRI-KEK) against a reference written from standards.md §3.4."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from dcmseal.cms import ContentCipher, unwrap_key, wrap_key
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError

KEK_IV_BYTE = 0x5A
CEK_BYTE = 0xC3


def _cbc(cipher: ContentCipher, key: bytes, iv: bytes) -> Cipher[modes.CBC]:
    """A CBC cipher straight from `cryptography`, so the reference shares no code with the module under test."""
    algorithm = TripleDES(key) if cipher is ContentCipher.DES3_CBC else algorithms.AES(key)
    return Cipher(algorithm, modes.CBC(iv))


def _reference_wrap(kek: bytes, iv: bytes, cek: bytes, cipher: ContentCipher, padding: bytes) -> bytes:
    """standards.md §3.4 Wrap, steps 1 to 4, with the random padding given."""
    formatted = bytes([len(cek)]) + bytes(b ^ 0xFF for b in cek[:3]) + cek + padding
    assert len(formatted) % cipher.block_size == 0
    first = _cbc(cipher, kek, iv).encryptor().update(formatted)
    return _cbc(cipher, kek, first[-cipher.block_size :]).encryptor().update(first)


def _reference_unwrap_formatted(kek: bytes, iv: bytes, wrapped: bytes, cipher: ContentCipher) -> bytes:
    """standards.md §3.4 Unwrap, steps 1 to 3: the formatted block F (count, check value, CEK, padding)."""
    b = cipher.block_size
    n = len(wrapped) // b
    last = _cbc(cipher, kek, wrapped[(n - 2) * b : (n - 1) * b]).decryptor().update(wrapped[(n - 1) * b :])
    first = _cbc(cipher, kek, last).decryptor().update(wrapped[: (n - 1) * b])
    return _cbc(cipher, kek, iv).decryptor().update(first + last)


def _padded_length(cek_length: int, block: int) -> int:
    return max(2 * block, -(-(4 + cek_length) // block) * block)


def _recording_rng(calls: list[int]) -> Callable[[int], bytes]:
    counter = itertools.count(1)

    def rng(n: int) -> bytes:
        calls.append(n)
        return bytes((next(counter) * 37) & 0xFF for _ in range(n))

    return rng


def _kek(cipher: ContentCipher, fill: int = 0x11) -> bytes:
    return bytes([fill]) * cipher.key_size


def _iv(cipher: ContentCipher) -> bytes:
    return bytes([KEK_IV_BYTE]) * cipher.block_size


# -- round trips and sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
@pytest.mark.parametrize("cek_length", [3, 4, 8, 11, 12, 16, 24, 28, 32, 64, 200, 251, 252, 255])
def test_wrap_then_unwrap_returns_the_cek(cipher: ContentCipher, cek_length: int) -> None:
    cek = bytes((i * 7 + 1) & 0xFF for i in range(cek_length))
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher)

    assert len(wrapped) == _padded_length(cek_length, cipher.block_size)
    assert unwrap_key(_kek(cipher), _iv(cipher), wrapped, cipher, expected_length=cek_length) == cek


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
def test_content_key_of_the_cipher_round_trips(cipher: ContentCipher) -> None:
    cek = bytes([CEK_BYTE]) * cipher.key_size
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher)
    assert unwrap_key(_kek(cipher), _iv(cipher), wrapped, cipher, expected_length=cipher.key_size) == cek


@pytest.mark.parametrize(
    ("cipher", "size"),
    [
        (ContentCipher.AES256_CBC, 48),  # 1 + 3 + 32 = 36 -> 48
        (ContentCipher.AES192_CBC, 32),  # 1 + 3 + 24 = 28 -> 32
        (ContentCipher.AES128_CBC, 32),  # 1 + 3 + 16 = 20 -> 32 (two blocks at least)
        (ContentCipher.DES3_CBC, 32),  # 1 + 3 + 24 = 28 -> 32
    ],
    ids=str,
)
def test_encrypted_key_size_for_the_cipher_key(cipher: ContentCipher, size: int) -> None:
    """standards.md §3.4 step 2 examples: AES-256 48 B, 3DES 32 B, AES-128 32 B."""
    wrapped = wrap_key(_kek(cipher), _iv(cipher), bytes(range(1, cipher.key_size + 1)), cipher)
    assert len(wrapped) == size


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
@pytest.mark.parametrize("cek_length", [3, 4, 12, 13, 16, 24, 28, 32, 255])
def test_wrap_matches_the_reference_and_draws_only_the_padding(
    cipher: ContentCipher, cek_length: int
) -> None:
    """The random bytes are the padding only, exactly padded_len - (4 + len(CEK)) of them, after the CEK."""
    cek = bytes((0xF0 + i) & 0xFF for i in range(cek_length))
    calls: list[int] = []
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher, rng=_recording_rng(calls))

    pad_length = _padded_length(cek_length, cipher.block_size) - (4 + cek_length)
    assert [n for n in calls if n] == ([pad_length] if pad_length else [])
    padding = _recording_rng([])(pad_length)
    assert wrapped == _reference_wrap(_kek(cipher), _iv(cipher), cek, cipher, padding)

    formatted = _reference_unwrap_formatted(_kek(cipher), _iv(cipher), wrapped, cipher)
    assert formatted[0] == cek_length
    assert formatted[1:4] == bytes(b ^ 0xFF for b in cek[:3])
    assert formatted[4 : 4 + cek_length] == cek
    assert formatted[4 + cek_length :] == padding


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
def test_unwrap_accepts_the_reference_wrap(cipher: ContentCipher) -> None:
    cek = bytes(range(100, 100 + cipher.key_size))
    pad_length = _padded_length(len(cek), cipher.block_size) - (4 + len(cek))
    wrapped = _reference_wrap(_kek(cipher), _iv(cipher), cek, cipher, b"\xa5" * pad_length)
    assert unwrap_key(_kek(cipher), _iv(cipher), wrapped, cipher, expected_length=len(cek)) == cek


@given(
    cipher=st.sampled_from(list(ContentCipher)),
    kek_seed=st.binary(min_size=32, max_size=32),
    iv_seed=st.binary(min_size=16, max_size=16),
    cek=st.binary(min_size=3, max_size=255),
    padding_seed=st.binary(min_size=256, max_size=256),
)
def test_wrap_unwrap_round_trip_property(
    cipher: ContentCipher, kek_seed: bytes, iv_seed: bytes, cek: bytes, padding_seed: bytes
) -> None:
    kek, iv = kek_seed[: cipher.key_size], iv_seed[: cipher.block_size]
    wrapped = wrap_key(kek, iv, cek, cipher, rng=lambda n: padding_seed[:n])
    assert len(wrapped) % cipher.block_size == 0
    assert len(wrapped) >= 2 * cipher.block_size
    assert unwrap_key(kek, iv, wrapped, cipher, expected_length=len(cek)) == cek


# -- refusals: one type, one message ---------------------------------------------------------------------


def _assert_wrong_key(excinfo: pytest.ExceptionInfo[DecryptionError]) -> None:
    assert type(excinfo.value) is DecryptionError
    assert str(excinfo.value) == WRONG_KEY_MESSAGE


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
def test_wrong_kek_is_a_decryption_error(cipher: ContentCipher) -> None:
    cek = bytes(range(cipher.key_size))
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher)
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_key(_kek(cipher, 0x12), _iv(cipher), wrapped, cipher, expected_length=cipher.key_size)
    _assert_wrong_key(excinfo)


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
def test_wrong_iv_is_a_decryption_error(cipher: ContentCipher) -> None:
    cek = bytes(range(cipher.key_size))
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher)
    other_iv = bytes([KEK_IV_BYTE ^ 0x80]) * cipher.block_size
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_key(_kek(cipher), other_iv, wrapped, cipher, expected_length=cipher.key_size)
    _assert_wrong_key(excinfo)


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
@pytest.mark.parametrize("delta", [-1, 1, -8, 8])
def test_wrong_expected_length_is_a_decryption_error(cipher: ContentCipher, delta: int) -> None:
    cek = bytes(range(cipher.key_size))
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher)
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_key(_kek(cipher), _iv(cipher), wrapped, cipher, expected_length=cipher.key_size + delta)
    _assert_wrong_key(excinfo)


@pytest.mark.parametrize(
    "cipher", [ContentCipher.AES128_CBC, ContentCipher.AES192_CBC, ContentCipher.AES256_CBC], ids=str
)
def test_every_flipped_byte_of_a_short_encrypted_key_is_refused(cipher: ContentCipher) -> None:
    """With n <= 3 blocks any change reaches the first formatted block (the chain runs twice): check fails."""
    cek = bytes(range(7, 7 + cipher.key_size))
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher, rng=lambda n: b"\x00" * n)
    assert len(wrapped) // cipher.block_size <= 3
    for position in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[position] ^= 0x01
        with pytest.raises(DecryptionError) as excinfo:
            unwrap_key(_kek(cipher), _iv(cipher), bytes(tampered), cipher, expected_length=len(cek))
        _assert_wrong_key(excinfo)


def test_check_value_covers_only_the_first_block() -> None:
    """RFC 3211's check sits in block 0: with 3DES (4 blocks) a change in block 1 passes the unwrap.

    The unwrap then returns a different CEK, exactly as the reference does; the content padding and the
    digest are what catch it (standards.md §3.4: "always verify the content padding and digest as well").
    """
    cipher = ContentCipher.DES3_CBC
    cek = bytes(range(7, 7 + cipher.key_size))
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher, rng=lambda n: b"\x00" * n)
    tampered = bytearray(wrapped)
    tampered[cipher.block_size] ^= 0x01
    unwrapped = unwrap_key(_kek(cipher), _iv(cipher), bytes(tampered), cipher, expected_length=len(cek))
    reference = _reference_unwrap_formatted(_kek(cipher), _iv(cipher), bytes(tampered), cipher)
    assert unwrapped == reference[4 : 4 + len(cek)]
    assert unwrapped[:4] == cek[:4]
    assert unwrapped != cek


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
@pytest.mark.parametrize("blocks", [0, 1])
def test_fewer_than_two_blocks_is_a_decryption_error(cipher: ContentCipher, blocks: int) -> None:
    wrapped = b"\x42" * (blocks * cipher.block_size)
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_key(_kek(cipher), _iv(cipher), wrapped, cipher, expected_length=cipher.key_size)
    _assert_wrong_key(excinfo)


@pytest.mark.parametrize("cipher", list(ContentCipher), ids=str)
@pytest.mark.parametrize("extra", [-1, 1, 3])
def test_length_not_a_multiple_of_the_block_is_a_decryption_error(cipher: ContentCipher, extra: int) -> None:
    cek = bytes(range(cipher.key_size))
    wrapped = wrap_key(_kek(cipher), _iv(cipher), cek, cipher)
    malformed = wrapped[:extra] if extra < 0 else wrapped + b"\x00" * extra
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_key(_kek(cipher), _iv(cipher), malformed, cipher, expected_length=cipher.key_size)
    _assert_wrong_key(excinfo)


@pytest.mark.parametrize("cipher", [ContentCipher.AES256_CBC, ContentCipher.DES3_CBC], ids=str)
def test_count_byte_beyond_the_data_is_a_decryption_error(cipher: ContentCipher) -> None:
    """A formatted block whose check value is right but whose count runs past the end (4 + count > len)."""
    cek = bytes(range(1, cipher.key_size + 1))
    pad_length = _padded_length(len(cek), cipher.block_size) - (4 + len(cek))
    good = _reference_wrap(_kek(cipher), _iv(cipher), cek, cipher, b"\x00" * pad_length)
    total = len(good)
    forged = bytes([total - 3]) + bytes(b ^ 0xFF for b in cek[:3]) + cek + b"\x00" * pad_length
    wrapped = _cbc(cipher, _kek(cipher), _iv(cipher)).encryptor().update(forged)
    wrapped = _cbc(cipher, _kek(cipher), wrapped[-cipher.block_size :]).encryptor().update(wrapped)
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_key(_kek(cipher), _iv(cipher), wrapped, cipher, expected_length=total - 3)
    _assert_wrong_key(excinfo)


@pytest.mark.parametrize("cek_length", [0, 256, 300])
def test_cek_length_outside_one_byte_count_is_a_value_error(cek_length: int) -> None:
    cipher = ContentCipher.AES256_CBC
    with pytest.raises(ValueError, match="CEK length"):
        wrap_key(_kek(cipher), _iv(cipher), b"\x01" * cek_length, cipher)


@pytest.mark.parametrize("cek_length", [1, 2])
def test_cek_shorter_than_the_check_value_is_a_value_error(cek_length: int) -> None:
    """The check value is the complement of the first three CEK bytes (RFC 3211 §2.3.1).

    A 1- or 2-byte CEK cannot carry it, and unwrap_key refuses any count below 3; so wrap_key must refuse
    such a CEK rather than return an encryptedKey that no unwrap accepts.
    """
    cipher = ContentCipher.AES128_CBC
    with pytest.raises(ValueError, match="CEK length"):
        wrap_key(_kek(cipher), _iv(cipher), b"\x01" * cek_length, cipher)
