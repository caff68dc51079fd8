"""Keys and passwords: the password policy of PS3.15 D.1 and passphrase generation."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dcmseal.keys.escrow import (
    EscrowIdentity,
    certificate_fingerprint,
    create_escrow_identity,
    load_escrow_certificate,
    open_escrowed_password,
    seal_password_for_escrow,
    unlock_escrow_key,
)
from dcmseal.keys.passwords import (
    ATTACKER_PBKDF2_ITERATIONS_PER_SECOND,
    MIN_ENTROPY_BITS,
    MIN_PASSPHRASE_BITS,
    MIN_ZXCVBN_SCORE,
    PasswordStrength,
    SealingPassword,
    check_password,
    encode_password,
    estimate_strength,
    generate_passphrase,
    new_pbkdf2_params,
    passphrase_entropy_bits,
    password_octets,
    password_tuple,
    sealing_password,
)

if TYPE_CHECKING:
    from dcmseal.keys.registry import (
        MediumDetails,
        MediumRecord,
        MediumSummary,
        PartnerSummary,
        RecipientRecord,
        RecoveryRecord,
        Registry,
        StudyRecord,
        StudySummary,
        default_registry_path,
    )

__all__ = [
    "ATTACKER_PBKDF2_ITERATIONS_PER_SECOND",
    "MIN_ENTROPY_BITS",
    "MIN_PASSPHRASE_BITS",
    "MIN_ZXCVBN_SCORE",
    "EscrowIdentity",
    "MediumDetails",
    "MediumRecord",
    "MediumSummary",
    "PartnerSummary",
    "PasswordStrength",
    "RecipientRecord",
    "RecoveryRecord",
    "Registry",
    "SealingPassword",
    "StudyRecord",
    "StudySummary",
    "certificate_fingerprint",
    "check_password",
    "create_escrow_identity",
    "default_registry_path",
    "encode_password",
    "estimate_strength",
    "generate_passphrase",
    "load_escrow_certificate",
    "new_pbkdf2_params",
    "open_escrowed_password",
    "passphrase_entropy_bits",
    "password_octets",
    "password_tuple",
    "seal_password_for_escrow",
    "sealing_password",
    "unlock_escrow_key",
]

_REGISTRY_NAMES = frozenset(
    {
        "MediumDetails",
        "MediumRecord",
        "MediumSummary",
        "PartnerSummary",
        "RecipientRecord",
        "RecoveryRecord",
        "Registry",
        "StudyRecord",
        "StudySummary",
        "default_registry_path",
    }
)


def __getattr__(name: str) -> object:
    # SQLAlchemy takes about 0.4 s to import: commands that never open the registry do not pay for it.
    if name in _REGISTRY_NAMES:
        return getattr(importlib.import_module("dcmseal.keys.registry"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
