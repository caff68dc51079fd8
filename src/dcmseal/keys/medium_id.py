"""Medium IDs (``DCMS-`` and 12 Crockford base32 characters): their alphabet, their form, and reading one typed."""

from __future__ import annotations

import re

__all__ = ["CROCKFORD", "MEDIUM_ID_CHARS", "MEDIUM_ID_PREFIX", "MEDIUM_ID_RE", "normalize_medium_id"]

MEDIUM_ID_PREFIX = "DCMS-"
#: Crockford's base32 (no I, L, O, U): read aloud and typed from a README without confusion.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_READ = str.maketrans({"O": "0", "I": "1", "L": "1"})
MEDIUM_ID_CHARS = 12  # 60 random bits: a collision among a million media has odds of about 4e-7
MEDIUM_ID_RE = re.compile(r"DCMS-[0-9A-HJKMNP-TV-Z]{12}")


def normalize_medium_id(medium_id: str) -> str:
    """Accept what a person types: any case, and O/I/L for 0/1 (Crockford's decoding rules)."""
    text_id = medium_id.strip().upper()
    if text_id.startswith(MEDIUM_ID_PREFIX):
        return MEDIUM_ID_PREFIX + text_id[len(MEDIUM_ID_PREFIX) :].translate(_CROCKFORD_READ)
    return text_id
