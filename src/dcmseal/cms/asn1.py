"""The asn1crypto adapter: registers what asn1crypto lacks (id-alg-PWRI-KEK) and translates its parse errors."""

from __future__ import annotations

from typing import Any, TypeVar

from asn1crypto import algos, cms, core

from dcmseal.cms.algorithms import OID_PWRI_KEK
from dcmseal.errors import MalformedEnvelopeError

__all__ = ["PWRI_KEK", "load", "parse_fully"]

#: asn1crypto 1.5 has no name for id-alg-PWRI-KEK (wbond/asn1crypto#287). RFC 3211 §2.3 gives it an
#: AlgorithmIdentifier of the inner CBC cipher (with its IV) as parameters; registering it once here
#: lets PasswordRecipientInfo parse and dump like any other structure.
PWRI_KEK = "pwri_kek"
cms.KeyEncryptionAlgorithmId._map.setdefault(OID_PWRI_KEK, PWRI_KEK)
cms.KeyEncryptionAlgorithmId._reverse_map = None
cms.KeyEncryptionAlgorithm._oid_specs[PWRI_KEK] = algos.EncryptionAlgorithm

T = TypeVar("T", bound=core.Asn1Value)


def parse_fully(value: Any) -> None:
    """Force asn1crypto's lazy parser through every nested value, so errors surface here."""
    value.native  # noqa: B018 - evaluated for its side effect: a full parse


def load(spec: type[T], data: bytes, context: str) -> T:
    """Parse ``data`` as ``spec`` completely, or raise :class:`MalformedEnvelopeError` naming ``context``."""
    try:
        value: T = spec.load(data)
        parse_fully(value)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        # asn1crypto appends "while parsing ..." lines: the first says what is wrong, in one line.
        reason = next(iter(str(exc).splitlines()), "").strip() or type(exc).__name__
        raise MalformedEnvelopeError(f"{context} does not parse: {reason}") from exc
    return value
