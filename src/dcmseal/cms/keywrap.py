"""RFC 3211 §2.3 key wrap (id-alg-PWRI-KEK): the CEK wrapped under a password-derived KEK with CBC, twice."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from dcmseal.cms.algorithms import ContentCipher
from dcmseal.errors import DecryptionError

__all__ = ["unwrap_key", "wrap_key"]


def wrap_key(
    kek: bytes, iv: bytes, cek: bytes, kek_cipher: ContentCipher, *, rng: Callable[[int], bytes] = os.urandom
) -> bytes:
    """Wrap ``cek`` under ``kek`` per RFC 3211 §2.3.1; returns the encryptedKey octets.

    Raises
    ------
    ValueError
        The CEK is shorter than 3 bytes (the check value) or longer than 255 (the count byte).
    """
    if not 3 <= len(cek) <= 255:
        # One count byte, and a check value made of the first three CEK bytes (RFC 3211 §2.3.1).
        raise ValueError("the CEK length must be 3..255 bytes")
    block = kek_cipher.block_size
    # 1) Format: count byte, check value = complement of the first three CEK bytes, CEK.
    formatted = bytes([len(cek)]) + bytes(b ^ 0xFF for b in cek[:3]) + cek
    # 2) Pad with random bytes to a multiple of the block size, at least two blocks.
    padded_len = max(2 * block, -(-len(formatted) // block) * block)
    formatted += rng(padded_len - len(formatted))
    # 3) and 4) Encrypt twice; the second pass continues the chain from the last ciphertext block,
    # which a single CBC context over the doubled input does exactly.
    encryptor = kek_cipher.encryptor(kek, iv)
    first = encryptor.update(formatted)
    second = encryptor.update(first) + encryptor.finalize()
    return second


def unwrap_key(
    kek: bytes, iv: bytes, wrapped: bytes, kek_cipher: ContentCipher, *, expected_length: int
) -> bytes:
    """Unwrap per RFC 3211 §2.3.2 and return the CEK.

    Every check (block structure, check bytes, count byte, expected CEK length) is made before one
    decision, and any failure raises :class:`DecryptionError` with the one wrong-key message.
    """
    block = kek_cipher.block_size
    n = len(wrapped) // block
    if len(wrapped) % block or n < 2:
        raise DecryptionError() from None
    # 1) Decrypt the last block with the previous block as IV, giving the IV of the first pass.
    last_iv = kek_cipher.decryptor(kek, wrapped[(n - 2) * block : (n - 1) * block]).update(
        wrapped[(n - 1) * block :]
    )
    # 2) Decrypt the first n-1 blocks with that IV (undoes the second pass for those blocks).
    head = kek_cipher.decryptor(kek, last_iv).update(wrapped[: (n - 1) * block])
    # 3) The recovered first-pass ciphertext is head || last_iv; decrypt it with the KEK IV.
    formatted = kek_cipher.decryptor(kek, iv).update(head + last_iv)
    count = formatted[0]
    check = bytes(b ^ 0xFF for b in formatted[4:7])
    # 4) Decide once: check value, count within the data, count equal to the content cipher's key length.
    checks_ok = hmac.compare_digest(check, formatted[1:4])
    length_ok = 4 + count <= len(formatted) and count == expected_length and count >= 3
    if not (checks_ok and length_ok):
        raise DecryptionError() from None
    return formatted[4 : 4 + count]
