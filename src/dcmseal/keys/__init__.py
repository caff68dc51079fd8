"""Keys and passwords: the password policy of PS3.15 D.1 and passphrase generation."""

from __future__ import annotations

from dcmseal.keys.passwords import (
    ATTACKER_PBKDF2_ITERATIONS_PER_SECOND,
    MIN_ENTROPY_BITS,
    MIN_PASSPHRASE_BITS,
    MIN_ZXCVBN_SCORE,
    PasswordStrength,
    check_password,
    encode_password,
    estimate_strength,
    generate_passphrase,
    passphrase_entropy_bits,
)

__all__ = [
    "ATTACKER_PBKDF2_ITERATIONS_PER_SECOND",
    "MIN_ENTROPY_BITS",
    "MIN_PASSPHRASE_BITS",
    "MIN_ZXCVBN_SCORE",
    "PasswordStrength",
    "check_password",
    "encode_password",
    "estimate_strength",
    "generate_passphrase",
    "passphrase_entropy_bits",
]
