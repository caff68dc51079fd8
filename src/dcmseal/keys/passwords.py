"""Password policy, strength estimate and passphrase generation (PS3.15 D.1: ISO-IR 6 only).

The policy lives here, not in the command line: every path that seals for a password (the
:func:`dcmseal.seal` recipe, :func:`dcmseal.media.burn.burn`, :func:`dcmseal.media.rekey.rekey`, the
``seal`` command) applies :func:`check_password` and draws its salt with :func:`new_pbkdf2_params`;
:func:`sealing_password` does both at once for one set sealed now.

How a password becomes PBKDF2's octet string (RFC 8018 §3 leaves the encoding to the application and
suggests UTF-8 of a normalised text): a ``str`` is NFC-normalised (Unicode UAX #15), then UTF-8 encoded.
To seal, PS3.15 D.1 further limits passwords to ISO-IR 6 (printable ASCII), where NFC changes nothing and
UTF-8 is ASCII, so the rule is only visible on opening: a password of another writer's envelope may be
any Unicode text (:func:`password_octets`). ``bytes`` are taken as the octets themselves.
"""

from __future__ import annotations

import calendar
import functools
import importlib.resources
import logging
import math
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dcmseal import cms
from dcmseal.cms.kdf import RFC8018_MIN_SALT_BYTES
from dcmseal.config import DEFAULT_PBKDF2_ITERATIONS, DEFAULT_SALT_BYTES
from dcmseal.errors import InputError, WeakPasswordError

__all__ = [
    "ATTACKER_PBKDF2_ITERATIONS_PER_SECOND",
    "MIN_ENTROPY_BITS",
    "MIN_PASSPHRASE_BITS",
    "MIN_ZXCVBN_SCORE",
    "PasswordStrength",
    "SealingPassword",
    "check_password",
    "encode_password",
    "estimate_strength",
    "generate_passphrase",
    "new_pbkdf2_params",
    "passphrase_entropy_bits",
    "password_octets",
    "password_tuple",
    "sealing_password",
]

logger = logging.getLogger(__name__)

#: The offline attacker we price a password against: 8 current GPUs running hashcat on PBKDF2-HMAC
#: (hashcat modes 12000, 10900, 12100 scaled from single-GPU benchmarks of an RTX 4090 class card).
#: The unit is PBKDF2 *iterations* per second for the whole rig, so the guess rate is this divided by
#: the iteration count of the envelope. Round numbers on purpose: the estimate is an order of magnitude.
ATTACKER_PBKDF2_ITERATIONS_PER_SECOND: dict[str, float] = {
    "sha1": 2.0e11,
    "sha224": 7.0e10,
    "sha256": 7.0e10,
    "sha384": 2.5e10,
    "sha512": 2.5e10,
}

#: zxcvbn scores 0..4; 3 is "safely unguessable: moderate protection from offline slow-hash scenario".
MIN_ZXCVBN_SCORE = 3
#: log2 of zxcvbn's guess estimate; at 600,000 PBKDF2-SHA256 iterations the rig needs about 150 years
#: on average for 2**50 guesses.
MIN_ENTROPY_BITS = 50.0
#: Generated passphrases must reach this: 7 EFF words give 90.5 bits, 6 words only 77.5.
MIN_PASSPHRASE_BITS = 80.0

_ISO_IR_6_FIRST = 0x20
_ISO_IR_6_LAST = 0x7E
_D1_RULE = "PS3.15 D.1 limits passwords to the DICOM Default Character Repertoire (ISO-IR 6, printable ASCII)"

#: zxcvbn refuses longer input by default because some of its matchers are quadratic; beyond this we
#: estimate the prefix (the explicit rules below always see the whole password).
_ZXCVBN_MAX_CHARS = 72
#: zxcvbn keeps the user inputs in a module-level dictionary that each call replaces.
_ZXCVBN_LOCK = threading.Lock()

#: The EFF Large Wordlist for Passphrases (7776 words, five dice), Electronic Frontier Foundation,
#: https://www.eff.org/dice, licensed CC BY 3.0 US; vendored unmodified except that the dice numbers
#: are stripped, one word per line.
_WORDLIST_RESOURCE = "eff_large_wordlist.txt"
_WORDLIST_SIZE = 7776

_DATE_MESSAGE = "looks like a date (a birth date is the first thing an attacker tries)"
_DIGITS_MESSAGE = "is all digits (like a phone number, social security or medical record number)"
_CONTEXT_MESSAGE = "contains the patient's name or ID (or another word of the context)"
_CONTEXT_MIN_CHARS = 3

_DIGIT_RUN = re.compile(r"[0-9]+")
# Day, month and year separated by - . / or space; each separator may differ ("1970-01/01" is still a date).
_SEPARATED_DATE = re.compile(r"(?<![0-9])([0-9]{1,4})[-./ ]([0-9]{1,2})[-./ ]([0-9]{1,4})(?![0-9])")
_NUMBER_PUNCTUATION = re.compile(r"[-./ ()+#]")
_NOT_ALNUM = re.compile(r"[^0-9a-z]")
# DICOM PN separates components with ^ and representations with =; names also contain spaces.
_NAME_SEPARATORS = re.compile(r"[\^= ]+")


# -- ISO-IR 6 -------------------------------------------------------------------------------------------


def encode_password(text: str) -> bytes:
    """Encode a password for PBKDF2, refusing anything outside ISO-IR 6.

    Parameters
    ----------
    text : str
        The password as typed.

    Returns
    -------
    bytes
        The password in ISO-IR 6 (US-ASCII, 0x20..0x7E), one byte per character.

    Raises
    ------
    InputError
        If ``text`` is empty or holds a character outside 0x20..0x7E (PS3.15 D.1). The message names the
        first offending character by position and code point, never the password.
    """
    if not text:
        raise InputError("the password is empty")
    for position, char in enumerate(text, start=1):
        if not _ISO_IR_6_FIRST <= ord(char) <= _ISO_IR_6_LAST:
            raise InputError(f"character {position} of the password is {_describe(char)}: {_D1_RULE}")
    return text.encode("ascii")


def _describe(char: str) -> str:
    # The code point and the Unicode name, not the character itself: control characters would garble
    # the terminal, and a one-character password would otherwise appear in the message.
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{code} ({name})" if name else code


def password_octets(password: str | bytes) -> bytes:
    """The octet string PBKDF2 derives from (RFC 8018 §3), for opening an envelope.

    Parameters
    ----------
    password : str or bytes
        A ``str`` is NFC-normalised, then UTF-8 encoded (an ISO-IR 6 password is its ASCII bytes); ``bytes``
        are used as given.

    Returns
    -------
    bytes
        The password's octets. No policy applies: opening must work with what another writer accepted.

    Raises
    ------
    TypeError
        If ``password`` is neither ``str`` nor ``bytes``.
    InputError
        If the password is empty.
    """
    if isinstance(password, str):
        octets = unicodedata.normalize("NFC", password).encode("utf-8")
    elif isinstance(password, bytes | bytearray | memoryview):
        octets = bytes(password)
    else:
        raise TypeError(f"a password is str or bytes, not {type(password).__name__}")
    if not octets:
        raise InputError("the password is empty")
    return octets


def password_tuple(passwords: Iterable[str | bytes]) -> tuple[bytes, ...]:
    """The octets of each password a request opens with (:func:`password_octets`), in order.

    Raises
    ------
    TypeError
        If a password is neither ``str`` nor ``bytes`` (a lone ``str`` or ``bytes`` is refused too: it
        would be taken for a sequence of one-character passwords).
    InputError
        If a password is empty.
    """
    if isinstance(passwords, str | bytes | bytearray | memoryview):
        raise TypeError("passwords are a sequence of str or bytes, not a single password")
    return tuple(password_octets(p) for p in passwords)


def _password_text(password: str | bytes) -> str:
    """The text of a password given to seal for: a ``str`` NFC-normalised, ``bytes`` read as ISO-IR 6."""
    if isinstance(password, str):
        return unicodedata.normalize("NFC", password)
    if not isinstance(password, bytes | bytearray | memoryview):
        raise TypeError(f"a password is str or bytes, not {type(password).__name__}")
    octets = bytes(password)
    for position, byte in enumerate(octets, start=1):
        if not _ISO_IR_6_FIRST <= byte <= _ISO_IR_6_LAST:
            raise InputError(f"byte {position} of the password is 0x{byte:02X}: {_D1_RULE}")
    return octets.decode("ascii")


def new_pbkdf2_params(
    *,
    iterations: int = DEFAULT_PBKDF2_ITERATIONS,
    prf: cms.Prf | str = cms.Prf.SHA256,
    salt_bytes: int = DEFAULT_SALT_BYTES,
    rng: Callable[[int], bytes] = os.urandom,
) -> cms.Pbkdf2Params:
    """PBKDF2 parameters for one set sealed with a password, with a salt drawn now (RFC 8018 §4.1).

    One set (a file, a batch, a medium) gets one salt, so its reader derives the key once; every set gets a
    new one. The defaults are the named security defaults of :mod:`dcmseal.config`.

    Parameters
    ----------
    iterations : int
        PBKDF2 iteration count; :data:`~dcmseal.config.DEFAULT_PBKDF2_ITERATIONS` (600,000) unless given.
    prf : Prf or str
        The PRF: ``"sha256"`` unless given.
    salt_bytes : int
        Salt length; :data:`~dcmseal.config.DEFAULT_SALT_BYTES` (16) unless given.
    rng : callable, optional
        ``rng(n)`` returns ``n`` random bytes; :func:`os.urandom` unless given (for known-answer tests).

    Returns
    -------
    Pbkdf2Params
        The parameters, with a fresh salt. Fewer than 1,000 iterations are accepted (tests use them) but
        the envelope then reports itself outside PS3.15 D.1 (RFC 8018 §4.2).

    Raises
    ------
    ValueError
        If ``salt_bytes`` is below RFC 8018's 8 octets, ``iterations`` below 1, or ``prf`` unknown.
    """
    if salt_bytes < RFC8018_MIN_SALT_BYTES:
        raise ValueError(f"a PBKDF2 salt must be at least {RFC8018_MIN_SALT_BYTES} bytes (RFC 8018 §4.1)")
    salt = rng(salt_bytes)
    if len(salt) != salt_bytes:
        raise ValueError(f"rng({salt_bytes}) returned {len(salt)} bytes")
    return cms.Pbkdf2Params(salt=salt, iterations=iterations, prf=cms.Prf(prf))


# -- strength -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordStrength:
    """How guessable a password is and why the policy refuses it; holds nothing of the password itself.

    Attributes
    ----------
    score : int
        zxcvbn score, 0 (too guessable) to 4 (very unguessable).
    guesses_log10 : float
        log10 of zxcvbn's estimate of the guesses an attacker needs.
    entropy_bits : float
        The same estimate as log2(guesses).
    crack_time_seconds : float
        Average time for the offline attacker of :data:`ATTACKER_PBKDF2_ITERATIONS_PER_SECOND`.
    crack_time_display : str
        ``crack_time_seconds`` for people: ``"3 hours"``, ``"centuries"``.
    problems : tuple of str
        Why the password is refused, in the order checked; empty if acceptable.
    """

    score: int
    guesses_log10: float
    entropy_bits: float
    crack_time_seconds: float
    crack_time_display: str
    problems: tuple[str, ...]

    @property
    def acceptable(self) -> bool:
        """Whether the policy accepts the password (no problems)."""
        return not self.problems

    def to_json(self) -> dict[str, object]:
        """Return the estimate as JSON-ready data with stable snake_case keys."""
        return {
            "score": self.score,
            "guesses_log10": self.guesses_log10,
            "entropy_bits": self.entropy_bits,
            "crack_time_seconds": self.crack_time_seconds,
            "crack_time_display": self.crack_time_display,
            "acceptable": self.acceptable,
            "problems": list(self.problems),
        }


def estimate_strength(
    password: str,
    *,
    context: Sequence[str] = (),
    iterations: int = DEFAULT_PBKDF2_ITERATIONS,
    prf: str = "sha256",
    min_length: int = 12,
) -> PasswordStrength:
    """Estimate how guessable a password is and list every policy rule it breaks.

    zxcvbn gives the score and the guess estimate; explicit rules add what zxcvbn lets through: dates
    anywhere in the password (birth dates), all-digit identifiers, and the patient's name or ID.

    Parameters
    ----------
    password : str
        The password as typed.
    context : sequence of str
        Words the attacker knows: patient name (DICOM PN, ``^`` separated), patient ID, site name.
        Items (and name components) shorter than 3 characters are ignored.
    iterations : int
        PBKDF2 iteration count the password will protect (RFC 8018 §5.2).
    prf : str
        PBKDF2 PRF: ``"sha1"``, ``"sha224"``, ``"sha256"``, ``"sha384"`` or ``"sha512"``.
    min_length : int
        Fewest characters accepted.

    Returns
    -------
    PasswordStrength
        The estimate; ``problems`` is empty if the policy accepts the password.

    Raises
    ------
    ValueError
        If ``iterations`` or ``min_length`` is below 1, ``prf`` is unknown, or ``context`` is a bare string.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    if min_length < 1:
        raise ValueError(f"min_length must be at least 1, not {min_length}")
    if isinstance(context, str):
        raise ValueError("context must be a sequence of strings, not a single string")
    rate = ATTACKER_PBKDF2_ITERATIONS_PER_SECOND.get(str(prf).lower())
    if rate is None:
        known = ", ".join(ATTACKER_PBKDF2_ITERATIONS_PER_SECOND)
        raise ValueError(f"unknown PBKDF2 PRF {prf!r}; expected one of {known}")

    terms = _context_terms(context)
    score, guesses_log10, warning = _zxcvbn(password, sorted(terms))
    entropy_bits = guesses_log10 * math.log2(10)

    problems: list[str] = []
    if any(not _ISO_IR_6_FIRST <= ord(char) <= _ISO_IR_6_LAST for char in password):
        problems.append(f"contains characters outside ISO-IR 6: {_D1_RULE}")
    if len(password) < min_length:
        problems.append(f"shorter than {min_length} characters")
    if _is_all_digits(password):
        problems.append(_DIGITS_MESSAGE)
    if _has_date(password):
        problems.append(_DATE_MESSAGE)
    if _contains_context(password, terms):
        problems.append(_CONTEXT_MESSAGE)
    if score < MIN_ZXCVBN_SCORE:
        reason = f": {warning.rstrip('.')}" if warning else ""
        problems.append(
            f"too easy to guess{reason} (zxcvbn score {score} of 4, about {entropy_bits:.1f} bits; "
            f"at least score {MIN_ZXCVBN_SCORE} and {MIN_ENTROPY_BITS:.0f} bits are required)"
        )
    elif entropy_bits < MIN_ENTROPY_BITS:
        # zxcvbn's score tops out at 10**10 guesses (about 33 bits): a score of 4 is not yet enough for a
        # medium that can be attacked offline for years, so say what is missing, not "too easy to guess".
        problems.append(
            f"not long enough for a medium attacked offline: about {entropy_bits:.1f} bits (zxcvbn score "
            f"{score} of 4 is fine), at least {MIN_ENTROPY_BITS:.0f} bits are required: add words or characters"
        )

    # On average the attacker finds it halfway through the search space.
    guesses_per_second = rate / iterations
    crack_time_seconds = 10.0**guesses_log10 / 2 / guesses_per_second
    return PasswordStrength(
        score=score,
        guesses_log10=guesses_log10,
        entropy_bits=entropy_bits,
        crack_time_seconds=crack_time_seconds,
        crack_time_display=_humanize_seconds(crack_time_seconds),
        problems=tuple(problems),
    )


def check_password(
    password: str | bytes,
    *,
    context: Sequence[str] = (),
    allow_weak: bool = False,
    iterations: int = DEFAULT_PBKDF2_ITERATIONS,
    prf: str = "sha256",
) -> tuple[bytes, PasswordStrength]:
    """Apply the password policy and encode the password for PBKDF2 (PS3.15 D.1).

    Parameters
    ----------
    password : str or bytes
        The password as typed (NFC-normalised), or its ISO-IR 6 bytes.
    context : sequence of str
        Patient name, patient ID and other words the attacker knows (see :func:`estimate_strength`).
    allow_weak : bool
        Return a password the policy refuses instead of raising; the caller must warn. Characters
        outside ISO-IR 6 are refused regardless.
    iterations : int
        PBKDF2 iteration count the password will protect.
    prf : str
        PBKDF2 PRF name.

    Returns
    -------
    tuple of (bytes, PasswordStrength)
        The ISO-IR 6 bytes and the estimate (with its problems when ``allow_weak`` let them through).

    Raises
    ------
    InputError
        If the password is empty or not ISO-IR 6 (from :func:`encode_password`).
    TypeError
        If ``password`` is neither ``str`` nor ``bytes``.
    WeakPasswordError
        If the policy refuses the password and ``allow_weak`` is false. The message lists the problems
        and never contains the password.
    """
    text = _password_text(password)
    encoded = encode_password(text)
    strength = estimate_strength(text, context=context, iterations=iterations, prf=prf)
    if strength.problems and not allow_weak:
        raise WeakPasswordError("password refused: " + "; ".join(strength.problems))
    return encoded, strength


@dataclass(frozen=True, slots=True, kw_only=True)
class SealingPassword:
    """A password the policy accepted, with the PBKDF2 parameters (and fresh salt) of the one set it seals.

    Attributes
    ----------
    password : bytes
        Its ISO-IR 6 octets, what PBKDF2 derives from (never in the repr).
    kdf : Pbkdf2Params
        Salt, iteration count and PRF.
    problems : tuple of str
        Why the policy would refuse it, when ``allow_weak`` let it through (the caller warns); else empty.
    """

    password: bytes = field(repr=False)
    kdf: cms.Pbkdf2Params
    problems: tuple[str, ...] = ()

    def recipient(self) -> cms.PasswordRecipient:
        """The password recipient (PBKDF2 + RFC 3211 key wrap) to seal for."""
        return cms.PasswordRecipient(password=self.password, kdf=self.kdf)


def sealing_password(
    password: str | bytes,
    *,
    context: Sequence[str] = (),
    allow_weak: bool = False,
    iterations: int = DEFAULT_PBKDF2_ITERATIONS,
    prf: cms.Prf | str = cms.Prf.SHA256,
    salt_bytes: int = DEFAULT_SALT_BYTES,
    rng: Callable[[int], bytes] = os.urandom,
) -> SealingPassword:
    """Apply the password policy and draw the salt for one set sealed now: :func:`check_password`, then
    :func:`new_pbkdf2_params`.

    Parameters
    ----------
    password : str or bytes
        The password as typed (NFC-normalised), or its ISO-IR 6 bytes.
    context : sequence of str
        Patient name, patient ID and other words the password must not contain.
    allow_weak : bool
        Accept a password the policy refuses; ``problems`` then says why (characters outside ISO-IR 6
        are refused regardless).
    iterations, prf, salt_bytes
        The PBKDF2 parameters; the named defaults of :mod:`dcmseal.config` unless given.
    rng : callable, optional
        ``rng(n)`` returns ``n`` random bytes (for known-answer tests).

    Returns
    -------
    SealingPassword
        The octets, the parameters with a fresh salt, and the policy's problems.

    Raises
    ------
    InputError
        The password is empty or not ISO-IR 6.
    WeakPasswordError
        The policy refuses it and ``allow_weak`` is false (the message never holds the password).
    ValueError
        A salt shorter than RFC 8018's 8 octets, fewer than 1 iteration, or an unknown PRF.
    """
    prf = cms.Prf(prf)
    octets, strength = check_password(
        password, context=context, allow_weak=allow_weak, iterations=iterations, prf=prf.value
    )
    kdf = new_pbkdf2_params(iterations=iterations, prf=prf, salt_bytes=salt_bytes, rng=rng)
    return SealingPassword(password=octets, kdf=kdf, problems=strength.problems)


def _zxcvbn(password: str, user_inputs: list[str]) -> tuple[int, float, str]:
    """Return zxcvbn's score, log10 of its guess estimate, and its warning ("" if none)."""
    if not password:
        return 0, 0.0, ""  # zxcvbn fails on ""; one guess finds it.
    with _ZXCVBN_LOCK:
        # Imported here: building its frequency dictionaries costs every command ~30 ms, and only a password
        # being chosen needs it (opening never does).
        from zxcvbn import zxcvbn

        result: dict[str, Any] = zxcvbn(password[:_ZXCVBN_MAX_CHARS], user_inputs=user_inputs)
    warning = result.get("feedback", {}).get("warning") or ""
    return int(result["score"]), float(result["guesses_log10"]), str(warning).strip()


def _context_terms(context: Sequence[str]) -> frozenset[str]:
    """Return the normalised words of the context: each item whole and each name component."""
    terms: set[str] = set()
    for item in context:
        pieces = [item, *_NAME_SEPARATORS.split(item)]
        for piece in pieces:
            term = _normalise(piece)
            if len(term) >= _CONTEXT_MIN_CHARS:
                terms.add(term)
    return frozenset(terms)


def _normalise(text: str) -> str:
    # Case-insensitive, and blind to the separators people and DICOM put between name parts
    # ("Doe^Jane", "Jane Doe", "jane.doe", "MRN-0042").
    return _NOT_ALNUM.sub("", text.casefold())


def _contains_context(password: str, terms: frozenset[str]) -> bool:
    flat = _normalise(password)
    return any(term in flat for term in terms)


def _is_all_digits(password: str) -> bool:
    # "415-555-0123" and "123 45 6789" are as guessable as their digits alone.
    digits = _NUMBER_PUNCTUATION.sub("", password)
    return bool(digits) and digits.isascii() and digits.isdigit()


def _has_date(password: str) -> bool:
    """Whether a plausible calendar date appears anywhere in ``password``."""
    for run in _DIGIT_RUN.finditer(password):
        digits = run.group()
        if len(digits) >= 8:
            # YYYYMMDD, DDMMYYYY, MMDDYYYY anywhere inside a longer run ("x19700101x", "0119700101").
            windows = (digits[i : i + 8] for i in range(len(digits) - 7))
            if any(_is_compact_date(window) for window in windows):
                return True
        elif len(digits) == 6 and _is_compact_date(digits):
            # YYMMDD, DDMMYY, MMDDYY only as a whole run: any six random digits are a date one time in ten.
            return True
    return any(_is_separated_date(*match.groups()) for match in _SEPARATED_DATE.finditer(password))


def _is_compact_date(digits: str) -> bool:
    if len(digits) == 8:
        candidates = (
            (digits[0:4], digits[4:6], digits[6:8]),  # YYYYMMDD
            (digits[4:8], digits[2:4], digits[0:2]),  # DDMMYYYY
            (digits[4:8], digits[0:2], digits[2:4]),  # MMDDYYYY
        )
    else:
        candidates = (
            (digits[0:2], digits[2:4], digits[4:6]),  # YYMMDD
            (digits[4:6], digits[2:4], digits[0:2]),  # DDMMYY
            (digits[4:6], digits[0:2], digits[2:4]),  # MMDDYY
        )
    return any(_is_plausible_date(year, month, day) for year, month, day in candidates)


def _is_separated_date(first: str, middle: str, last: str) -> bool:
    if len(first) == 4:  # YYYY-MM-DD
        return len(last) <= 2 and _is_plausible_date(first, middle, last)
    if len(last) == 4:  # DD.MM.YYYY, DD/MM/YYYY, MM/DD/YYYY
        return len(first) <= 2 and (
            _is_plausible_date(last, middle, first) or _is_plausible_date(last, first, middle)
        )
    if len(first) == len(middle) == len(last) == 2:  # YY-MM-DD, DD.MM.YY, MM/DD/YY
        return any(
            _is_plausible_date(year, month, day)
            for year, month, day in ((first, middle, last), (last, middle, first), (last, first, middle))
        )
    # "1.2.3" or "1.2.10" reads as a version number more than as a date.
    return False


def _iter_years(year: str) -> Iterator[int]:
    if len(year) == 4:
        yield int(year)
    elif len(year) == 2:
        yield 1900 + int(year)
        yield 2000 + int(year)


def _is_plausible_date(year: str, month: str, day: str) -> bool:
    """Whether the numbers form a real calendar day between 1900 and 2099."""
    m, d = int(month), int(day)
    if not 1 <= m <= 12 or d < 1:
        return False
    return any(1900 <= y <= 2099 and d <= calendar.monthrange(y, m)[1] for y in _iter_years(year))


_MINUTE_S = 60.0
_HOUR_S = 60 * _MINUTE_S
_DAY_S = 24 * _HOUR_S
_YEAR_S = 365.25 * _DAY_S
_CENTURY_S = 100 * _YEAR_S
_UNITS = (("year", _YEAR_S), ("day", _DAY_S), ("hour", _HOUR_S), ("minute", _MINUTE_S))


def _humanize_seconds(seconds: float) -> str:
    """Render a duration the way people compare them: "less than a second" ... "centuries"."""
    if seconds < 1:
        return "less than a second"
    if seconds >= _CENTURY_S:
        return "centuries"
    unit, size = next(((name, length) for name, length in _UNITS if seconds >= length), ("second", 1.0))
    count = round(seconds / size)
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


# -- passphrases ----------------------------------------------------------------------------------------


@functools.cache
def _wordlist() -> tuple[str, ...]:
    text = importlib.resources.files("dcmseal.keys").joinpath(_WORDLIST_RESOURCE).read_text(encoding="ascii")
    words = tuple(line.strip() for line in text.splitlines() if line.strip())
    # A truncated or duplicated list silently lowers the entropy we promise; that is a packaging bug.
    if len(words) != _WORDLIST_SIZE or len(set(words)) != _WORDLIST_SIZE:
        raise RuntimeError(
            f"{_WORDLIST_RESOURCE} must hold {_WORDLIST_SIZE} distinct words, found {len(set(words))}"
        )
    return words


def passphrase_entropy_bits(words: int) -> float:
    """Return the entropy of a passphrase of ``words`` words drawn uniformly from the EFF large list.

    Parameters
    ----------
    words : int
        Number of words.

    Returns
    -------
    float
        ``words * log2(7776)``: 12.92 bits a word, 90.5 bits for seven.

    Raises
    ------
    ValueError
        If ``words`` is negative.
    """
    if words < 0:
        raise ValueError(f"words must not be negative, not {words}")
    return words * math.log2(_WORDLIST_SIZE)


def generate_passphrase(
    *, words: int = 7, separator: str = "-", rng: Callable[[int], int] | None = None
) -> str:
    """Generate a passphrase of EFF large-list words, at least 80 bits of entropy.

    Parameters
    ----------
    words : int
        Number of words; at least 7 (6 words give only 77.5 bits).
    separator : str
        Printed between the words; printable ASCII without letters, so the words stay apart.
    rng : callable, optional
        ``rng(n)`` returns an int in ``[0, n)``; :func:`secrets.randbelow` unless given (for tests).

    Returns
    -------
    str
        The passphrase, ISO-IR 6 only.

    Raises
    ------
    ValueError
        If ``words`` gives fewer than 80 bits, ``separator`` is empty, holds a letter or is not printable
        ASCII, or ``rng`` returns a number out of range.
    """
    bits = passphrase_entropy_bits(words)
    if bits < MIN_PASSPHRASE_BITS:
        raise ValueError(
            f"{words} words give {bits:.1f} bits, fewer than {MIN_PASSPHRASE_BITS:.0f}; use at least 7 words"
        )
    if (
        not separator
        or any(not _ISO_IR_6_FIRST <= ord(char) <= _ISO_IR_6_LAST for char in separator)
        or any(char.isalpha() for char in separator)
    ):
        raise ValueError(f"separator must be non-empty printable ASCII without letters, not {separator!r}")
    draw = secrets.randbelow if rng is None else rng
    wordlist = _wordlist()
    chosen: list[str] = []
    for _ in range(words):
        index = draw(len(wordlist))
        if not 0 <= index < len(wordlist):
            raise ValueError(f"rng({len(wordlist)}) returned {index}, outside [0, {len(wordlist)})")
        chosen.append(wordlist[index])
    return separator.join(chosen)
