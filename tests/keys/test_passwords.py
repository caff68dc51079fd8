"""Tests of the password policy, strength estimate and passphrase generation (PS3.15 D.1)."""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import secrets
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcmseal.cms import Pbkdf2Params, Prf
from dcmseal.config import DEFAULT_PBKDF2_ITERATIONS, DEFAULT_SALT_BYTES
from dcmseal.errors import InputError, WeakPasswordError
from dcmseal.keys import (
    ATTACKER_PBKDF2_ITERATIONS_PER_SECOND,
    MIN_ENTROPY_BITS,
    PasswordStrength,
    check_password,
    encode_password,
    estimate_strength,
    generate_passphrase,
    new_pbkdf2_params,
    passphrase_entropy_bits,
    password_octets,
    sealing_password,
)
from dcmseal.keys import passwords as passwords_module

DATE_MESSAGE = "looks like a date (a birth date is the first thing an attacker tries)"
DIGITS_MESSAGE = "is all digits"
CONTEXT_MESSAGE = "contains the patient's name or ID"
D1_MESSAGE = (
    "PS3.15 D.1 limits passwords to the DICOM Default Character Repertoire (ISO-IR 6, printable ASCII)"
)
STRONG = "Kestrel-amber-Lantern-orbit-velvet"


def _wordlist() -> list[str]:
    text = importlib.resources.files("dcmseal.keys").joinpath("eff_large_wordlist.txt").read_text("ascii")
    return text.split()


def _scripted(indices: Iterable[int]) -> Callable[[int], int]:
    """An rng that returns the given indices in order and records the bound it was asked for."""
    remaining = iter(indices)

    def rng(n: int) -> int:
        assert n == 7776
        return next(remaining)

    return rng


def _has(problems: tuple[str, ...], fragment: str) -> bool:
    return any(fragment in problem for problem in problems)


# -- encode_password ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Correct-Horse 42!", " ~", "a", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"])
def test_encode_password_accepts_iso_ir_6(text: str) -> None:
    assert encode_password(text) == text.encode("ascii")


def test_encode_password_names_first_non_ascii_character() -> None:
    with pytest.raises(InputError) as info:
        encode_password("Pässwörd-ß")
    message = str(info.value)
    assert "character 2" in message
    assert "U+00E4" in message
    assert "U+00F6" not in message  # only the first offender
    assert D1_MESSAGE in message
    assert "Pässwörd-ß" not in message


def test_encode_password_refuses_yen_sign() -> None:
    with pytest.raises(InputError, match=r"character 4 .*U\+00A5") as info:
        encode_password("123¥")
    assert D1_MESSAGE in str(info.value)


@pytest.mark.parametrize(
    ("text", "code"),
    [("tab\there", "U+0009"), ("del\x7fete", "U+007F"), ("line\nbreak", "U+000A"), ("emoji🔒", "U+1F512")],
)
def test_encode_password_refuses_controls_and_beyond_ascii(text: str, code: str) -> None:
    with pytest.raises(InputError, match=r"U\+") as info:
        encode_password(text)
    assert code in str(info.value)


def test_encode_password_refuses_empty() -> None:
    with pytest.raises(InputError, match="empty"):
        encode_password("")


def test_encode_password_error_does_not_echo_a_one_character_password() -> None:
    with pytest.raises(InputError) as info:
        encode_password("é")
    assert "é" not in str(info.value)
    assert "U+00E9" in str(info.value)


def test_check_password_refuses_non_ascii_even_with_allow_weak() -> None:
    with pytest.raises(InputError, match=r"U\+00E9"):
        check_password("correct-horse-battery-staple-café", allow_weak=True)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F)))
def test_encode_password_property_ascii(text: str) -> None:
    printable = bool(text) and all(0x20 <= ord(char) <= 0x7E for char in text)
    if printable:
        assert encode_password(text) == text.encode("ascii")
    else:
        with pytest.raises(InputError):
            encode_password(text)


@given(st.text())
def test_encode_password_property_any_text(text: str) -> None:
    try:
        encoded = encode_password(text)
    except InputError:
        assert not text or any(not 0x20 <= ord(char) <= 0x7E for char in text)
    else:
        assert encoded.decode("ascii") == text


# -- dates, digits, context -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "19700101",  # YYYYMMDD
        "01121970",  # DDMMYYYY
        "12311970",  # MMDDYYYY
        "1970-01-01",  # YYYY-MM-DD
        "1970.01.01",
        "1970/01/01",
        "1970 01 01",
        "01.01.1970",  # DD.MM.YYYY
        "31/12/1970",  # DD/MM/YYYY
        "12/31/1970",  # MM/DD/YYYY
        "31-12-1970",
        "1.1.1970",
        "700101",  # YYMMDD
        "311270",  # DDMMYY
        "31.12.70",
        "Jane1970-01-01!",
        "Radiology#19700101#Vault",
        "kestrel-amber-31.12.1970-lantern-orbit",
        "Orbit x0119700101x lantern velvet",
        "born 2004 02 29 in kestrel amber",
    ],
)
def test_dates_are_refused(password: str) -> None:
    strength = estimate_strength(password)
    assert DATE_MESSAGE in strength.problems
    with pytest.raises(WeakPasswordError, match="looks like a date") as info:
        check_password(password)
    assert password not in str(info.value)


@pytest.mark.parametrize(
    "password",
    [
        STRONG,
        "Zebra-Mosaic-99999999-Lantern",  # no year 1900..2099 with a month 1..12
        "Kestrel-1850-01-01-amber-orbit",  # year out of range
        "Kestrel-13/13/1970-amber-orbit",  # no month 13 either way round
        "Kestrel-31/02/1970-amber-orbit",  # 31 February
        "Kestrel-1900-02-29-amber-orbit",  # 1900 was not a leap year
        "Kestrel-amber-v1.2.10-orbit-velvet",  # a version number
        "Kestrel-amber-4821-orbit-velvet-77",
    ],
)
def test_non_dates_are_not_called_dates(password: str) -> None:
    assert DATE_MESSAGE not in estimate_strength(password).problems


@pytest.mark.parametrize("password", ["4155550123123", "415-555-0123", "(415) 555 0123 99", "078-05-1120"])
def test_all_digits_are_refused(password: str) -> None:
    strength = estimate_strength(password)
    assert _has(strength.problems, DIGITS_MESSAGE)
    with pytest.raises(WeakPasswordError, match="all digits") as info:
        check_password(password)
    assert password not in str(info.value)


def test_digits_among_words_are_not_all_digits() -> None:
    assert not _has(estimate_strength("Kestrel-amber-4155550123-orbit").problems, DIGITS_MESSAGE)


@pytest.mark.parametrize(
    ("password", "context"),
    [
        ("JaneDoeRocks2024!xq", ["Doe^Jane"]),
        ("Kestrel-DOE-amber-Lantern-orbit", ["Doe^Jane^^^"]),
        ("kestrel amber doe jane lantern", ["Doe^Jane"]),
        ("Kestrel-Lantern-doejane-orbit", ["Doe^Jane"]),
        ("Kestrel-amber-pid00427731-orbit", ["PID-0042-7731"]),
        ("Kestrel-amber-PID-0042-7731-orbit", ["pid00427731"]),
        ("Kestrel-ambER-ST-MARY-orbit-velvet", ["Doe^Jane", "PID7", "St Mary"]),
    ],
)
def test_context_is_refused(password: str, context: list[str]) -> None:
    assert not _has(estimate_strength(password).problems, CONTEXT_MESSAGE)
    strength = estimate_strength(password, context=context)
    assert _has(strength.problems, CONTEXT_MESSAGE)
    with pytest.raises(WeakPasswordError, match="patient's name or ID") as info:
        check_password(password, context=context)
    message = str(info.value)
    assert password not in message
    assert all(item not in message for item in context)


def test_short_context_items_are_ignored() -> None:
    strength = estimate_strength("lilac-quartz-wubbing-violin-orbit", context=["Li^Wu", "42"])
    assert not _has(strength.problems, CONTEXT_MESSAGE)


def test_context_as_bare_string_is_a_bug() -> None:
    with pytest.raises(ValueError, match="sequence"):
        estimate_strength(STRONG, context="Doe^Jane")


# -- zxcvbn and length ----------------------------------------------------------------------------------


def test_common_password_is_refused_with_zxcvbn_warning() -> None:
    strength = estimate_strength("password123456")
    assert strength.score < 3
    assert _has(strength.problems, "too easy to guess: This is similar to a commonly used password")
    with pytest.raises(WeakPasswordError, match=r"^password refused: too easy to guess") as info:
        check_password("password123456")
    assert "password123456" not in str(info.value)


@pytest.mark.parametrize("password", ["qwertyuiopasdfgh", "abcdefghijklmnop", "zzzzzzzzzzzzzzzz"])
def test_patterns_are_refused(password: str) -> None:
    assert _has(estimate_strength(password).problems, "too easy to guess")


@pytest.mark.parametrize("password", ["Tr0ub4dor&3xx", "purple-kettle-41"])
def test_a_top_zxcvbn_score_is_never_called_too_easy_to_guess(password: str) -> None:
    # zxcvbn gives these its best score (4 of 4) but under 50 bits: refused for length, in words that agree.
    strength = estimate_strength(password)
    assert strength.score == 4
    assert strength.entropy_bits < MIN_ENTROPY_BITS
    assert len(strength.problems) == 1
    assert "too easy to guess" not in strength.problems[0]
    assert "score 4 of 4 is fine" in strength.problems[0]
    assert "at least 50 bits" in strength.problems[0]


def test_short_password_is_refused() -> None:
    strength = estimate_strength("x7#Kq!2mZ")
    assert "shorter than 12 characters" in strength.problems
    assert "shorter than 8 characters" not in estimate_strength("x7#Kq!2mZ", min_length=8).problems


def test_empty_password_is_estimated_and_refused() -> None:
    strength = estimate_strength("")
    assert strength.score == 0
    assert strength.entropy_bits == 0
    assert "shorter than 12 characters" in strength.problems
    with pytest.raises(InputError, match="empty"):
        check_password("", allow_weak=True)


def test_below_fifty_bits_is_refused_even_at_score_four() -> None:
    strength = estimate_strength("Xk9#mP2$vL7qRt")  # zxcvbn brute force: 10**14 guesses, 46.5 bits
    assert strength.score == 4
    assert strength.entropy_bits < 50
    assert _has(strength.problems, "50 bits")


def test_strong_password_is_accepted() -> None:
    encoded, strength = check_password("correct horse battery staple")
    assert encoded == b"correct horse battery staple"
    assert strength.acceptable
    assert strength.problems == ()
    assert strength.score >= 3
    assert strength.entropy_bits >= 50


def test_all_problems_are_listed_in_the_error() -> None:
    with pytest.raises(WeakPasswordError) as info:
        check_password("19700101")
    message = str(info.value)
    assert message.startswith("password refused: ")
    for fragment in ("shorter than 12 characters", DIGITS_MESSAGE, DATE_MESSAGE, "too easy to guess"):
        assert fragment in message
    assert message.count("; ") >= 3


@pytest.mark.parametrize(
    ("password", "context"),
    [
        ("19700101", []),
        ("password123456", []),
        ("Doe^Jane", ["Doe^Jane"]),
        ("JaneDoeRocks2024!xq", ["Doe^Jane"]),
        ("Tr0ub4d&", []),
        ("4155550123123", []),
    ],
)
def test_messages_never_contain_the_password(password: str, context: list[str]) -> None:
    with pytest.raises(WeakPasswordError) as info:
        check_password(password, context=context)
    assert password not in str(info.value)
    assert password not in repr(info.value)
    strength = estimate_strength(password, context=context)
    assert all(password not in problem for problem in strength.problems)
    assert password not in repr(strength)


def test_allow_weak_returns_bytes_and_problems() -> None:
    encoded, strength = check_password("19700101", allow_weak=True)
    assert encoded == b"19700101"
    assert not strength.acceptable
    assert DATE_MESSAGE in strength.problems


# -- crack time -----------------------------------------------------------------------------------------


def test_passphrase_crack_time_is_centuries() -> None:
    passphrase = generate_passphrase(rng=_scripted([100, 2000, 3000, 4000, 5000, 6000, 7000]))
    strength = estimate_strength(passphrase, iterations=600_000)
    assert strength.crack_time_display == "centuries"
    assert strength.crack_time_seconds > 100 * 365.25 * 86400


def test_crack_time_follows_the_attacker_model() -> None:
    base = estimate_strength(STRONG, iterations=600_000, prf="sha256")
    rate = ATTACKER_PBKDF2_ITERATIONS_PER_SECOND["sha256"] / 600_000
    assert base.crack_time_seconds == pytest.approx(10**base.guesses_log10 / 2 / rate)
    doubled = estimate_strength(STRONG, iterations=1_200_000, prf="sha256")
    assert doubled.crack_time_seconds == pytest.approx(2 * base.crack_time_seconds)
    sha512 = estimate_strength(STRONG, iterations=600_000, prf="sha512")
    assert sha512.crack_time_seconds == pytest.approx(base.crack_time_seconds * 7.0e10 / 2.5e10)
    sha1 = estimate_strength(STRONG, iterations=600_000, prf="SHA1")
    assert sha1.crack_time_seconds == pytest.approx(base.crack_time_seconds * 7.0e10 / 2.0e11)


def test_weak_password_cracks_in_less_than_a_second() -> None:
    assert estimate_strength("password123456", iterations=1).crack_time_display == "less than a second"


@pytest.mark.parametrize(
    ("seconds", "display"),
    [
        (0.2, "less than a second"),
        (1.0, "1 second"),
        (42.0, "42 seconds"),
        (60.0, "1 minute"),
        (150.0, "2 minutes"),
        (3 * 3600.0, "3 hours"),
        (2 * 86400.0, "2 days"),
        (5 * 365.25 * 86400, "5 years"),
        (99 * 365.25 * 86400, "99 years"),
        (100 * 365.25 * 86400, "centuries"),
        (1e40, "centuries"),
    ],
)
def test_humanize_seconds(seconds: float, display: str) -> None:
    assert passwords_module._humanize_seconds(seconds) == display


@pytest.mark.parametrize(("option", "value"), [("iterations", 0), ("min_length", 0), ("prf", "md5")])
def test_estimate_strength_refuses_bad_options(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option if option != "prf" else "PRF"):
        estimate_strength(STRONG, **{option: value})  # type: ignore[arg-type]  # bad values on purpose


# -- PasswordStrength -----------------------------------------------------------------------------------


def test_strength_to_json() -> None:
    strength = estimate_strength("19700101")
    data = strength.to_json()
    assert data["score"] == strength.score
    assert data["entropy_bits"] == strength.entropy_bits
    assert data["crack_time_display"] == strength.crack_time_display
    assert data["acceptable"] is False
    assert data["problems"] == list(strength.problems)
    assert set(data) == {
        "score",
        "guesses_log10",
        "entropy_bits",
        "crack_time_seconds",
        "crack_time_display",
        "acceptable",
        "problems",
    }
    assert estimate_strength(STRONG).to_json()["acceptable"] is True


def test_strength_is_frozen() -> None:
    strength = estimate_strength(STRONG)
    assert isinstance(strength, PasswordStrength)
    with pytest.raises(dataclasses.FrozenInstanceError):
        strength.score = 0  # type: ignore[misc]  # assigning a frozen field on purpose
    assert strength.entropy_bits == pytest.approx(strength.guesses_log10 * math.log2(10))


# -- passphrases ----------------------------------------------------------------------------------------


def test_generated_passphrase_is_accepted() -> None:
    passphrase = generate_passphrase()
    encoded, strength = check_password(passphrase)
    assert encoded == passphrase.encode("ascii")
    assert strength.acceptable


def test_generated_passphrase_has_seven_words_from_the_list() -> None:
    wordlist = set(_wordlist())
    words = generate_passphrase(separator=" ").split(" ")
    assert len(words) == 7
    assert all(word in wordlist for word in words)
    assert passphrase_entropy_bits(len(words)) >= 80


def test_wordlist_is_the_eff_large_list() -> None:
    words = _wordlist()
    assert len(words) == len(set(words)) == 7776
    assert passwords_module._wordlist() == tuple(words)


def test_passphrase_entropy_bits() -> None:
    assert passphrase_entropy_bits(7) == pytest.approx(90.47, abs=0.01)
    assert passphrase_entropy_bits(6) == pytest.approx(77.55, abs=0.01)
    assert passphrase_entropy_bits(1) == pytest.approx(math.log2(7776))


def test_generation_is_deterministic_with_an_injected_rng() -> None:
    wordlist = _wordlist()
    indices = [0, 7775, 1, 4242, 17, 3000, 6000]
    passphrase = generate_passphrase(rng=_scripted(indices))
    assert passphrase == "-".join(wordlist[i] for i in indices)
    assert passphrase.startswith("abacus-zoom-abdomen-")
    assert generate_passphrase(words=8, separator=".", rng=_scripted([5] * 8)) == ".".join([wordlist[5]] * 8)


def test_generation_uses_secrets_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_randbelow(n: int) -> int:
        calls.append(n)
        return 1

    monkeypatch.setattr(secrets, "randbelow", fake_randbelow)
    assert generate_passphrase() == "-".join(["abdomen"] * 7)
    assert calls == [7776] * 7


@pytest.mark.parametrize("words", [0, 5, 6])
def test_fewer_than_eighty_bits_is_refused(words: int) -> None:
    with pytest.raises(ValueError, match="fewer than 80"):
        generate_passphrase(words=words)


@pytest.mark.parametrize("separator", ["", "x", "é", "\t"])
def test_bad_separator_is_refused(separator: str) -> None:
    with pytest.raises(ValueError, match="separator"):
        generate_passphrase(separator=separator)


@pytest.mark.parametrize("index", [-1, 7776])
def test_rng_out_of_range_is_a_bug(index: int) -> None:
    with pytest.raises(ValueError, match="rng"):
        generate_passphrase(rng=lambda n: index)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=7775), min_size=7, max_size=7, unique=True))
def test_any_generated_passphrase_passes_the_policy(indices: list[int]) -> None:
    passphrase = generate_passphrase(rng=_scripted(indices))
    encoded, strength = check_password(passphrase)
    assert encoded == passphrase.encode("ascii")
    assert DATE_MESSAGE not in strength.problems
    assert strength.acceptable


# -- the policy as the library applies it (issue 17 §1) --------------------------------------------------


def test_check_password_takes_the_iso_ir_6_bytes_too() -> None:
    encoded, strength = check_password(STRONG.encode("ascii"))
    assert encoded == STRONG.encode("ascii")
    assert strength.acceptable
    with pytest.raises(WeakPasswordError, match="password refused"):
        check_password(b"19700101")


def test_check_password_names_a_byte_outside_iso_ir_6_by_position_only() -> None:
    with pytest.raises(InputError) as info:
        check_password("correct-horse-battery-staple-café".encode())
    assert str(info.value) == f"byte 33 of the password is 0xC3: {D1_MESSAGE}"
    with pytest.raises(TypeError):
        check_password(1234)  # type: ignore[arg-type]


def test_a_str_password_is_nfc_normalised_before_the_policy() -> None:
    # "e" + COMBINING ACUTE ACCENT is one character after NFC (else: character 5, U+0301): still refused.
    with pytest.raises(InputError, match=r"character 4 of the password is U\+00E9"):
        check_password("cafe\u0301-horse-battery-staple")


def test_password_octets_for_opening_are_nfc_then_utf_8() -> None:
    assert password_octets(STRONG) == STRONG.encode("ascii")
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert password_octets(decomposed) == password_octets(composed) == b"caf\xc3\xa9"
    assert password_octets(b"\xff raw octets") == b"\xff raw octets"  # bytes are taken as given
    with pytest.raises(InputError, match="empty"):
        password_octets("")
    with pytest.raises(TypeError):
        password_octets(None)  # type: ignore[arg-type]


def test_new_pbkdf2_params_uses_the_named_defaults_and_a_fresh_salt() -> None:
    first, second = new_pbkdf2_params(), new_pbkdf2_params()
    assert (first.iterations, first.prf, len(first.salt)) == (
        DEFAULT_PBKDF2_ITERATIONS,
        Prf.SHA256,
        DEFAULT_SALT_BYTES,
    )
    assert first.salt != second.salt
    drawn: list[int] = []

    def rng(n: int) -> bytes:
        drawn.append(n)
        return bytes(range(n))

    known = new_pbkdf2_params(iterations=1000, prf="sha512", salt_bytes=8, rng=rng)
    assert (known.salt, known.iterations, known.prf, drawn) == (bytes(range(8)), 1000, Prf.SHA512, [8])


def test_new_pbkdf2_params_refuses_a_salt_below_rfc_8018() -> None:
    with pytest.raises(ValueError, match="at least 8 bytes"):
        new_pbkdf2_params(salt_bytes=7)
    with pytest.raises(ValueError, match="at least 1"):
        new_pbkdf2_params(iterations=0)


def test_sealing_password_is_the_policy_and_a_fresh_salt_at_once() -> None:
    def rng(n: int) -> bytes:
        return bytes(range(n))

    sealing = sealing_password(STRONG, iterations=1000, prf="sha512", salt_bytes=8, rng=rng)
    assert sealing.password == STRONG.encode("ascii")
    assert sealing.kdf == Pbkdf2Params(salt=bytes(range(8)), iterations=1000, prf=Prf.SHA512)
    assert sealing.problems == ()
    assert STRONG not in repr(sealing)
    assert sealing.recipient().password == STRONG.encode("ascii")
    with pytest.raises(WeakPasswordError):
        sealing_password("19700101")
    weak = sealing_password("19700101", allow_weak=True)
    assert any("date" in problem for problem in weak.problems)
    assert (weak.kdf.iterations, len(weak.kdf.salt)) == (DEFAULT_PBKDF2_ITERATIONS, DEFAULT_SALT_BYTES)
