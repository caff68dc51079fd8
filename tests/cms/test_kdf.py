"""Tests of PBKDF2 (RFC 8018 §5.2) through the cache that derives each key once and counts the derivations."""

from __future__ import annotations

import pickle

import pytest

from dcmseal.cms import (
    PasswordCredential,
    PasswordRecipient,
    Pbkdf2Cache,
    Pbkdf2Params,
    Prf,
)

PASSWORD = b"correct horse battery staple"
SALT = bytes.fromhex("0011223344556677")


def _params(salt: bytes = SALT, iterations: int = 3, prf: Prf = Prf.SHA256) -> Pbkdf2Params:
    return Pbkdf2Params(salt=salt, iterations=iterations, prf=prf)


# -- known answers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "salt", "iterations", "length", "expected"),
    [
        # RFC 6070 §2, PBKDF2-HMAC-SHA1 test vectors.
        (b"password", b"salt", 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"),
        (b"password", b"salt", 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
        (b"password", b"salt", 4096, 20, "4b007901b765489abead49d926f721d065a429c1"),
        (
            b"passwordPASSWORDpassword",
            b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
            4096,
            25,
            "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
        ),
        (b"pass\x00word", b"sa\x00lt", 4096, 16, "56fa6aa75548099dcc37d7f03425e0c3"),
    ],
    ids=["1-iteration", "2-iterations", "4096-iterations", "long-password-and-salt", "embedded-nul"],
)
def test_rfc6070_hmac_sha1(password: bytes, salt: bytes, iterations: int, length: int, expected: str) -> None:
    cache = Pbkdf2Cache()
    key = cache.derive(password, Pbkdf2Params(salt=salt, iterations=iterations, prf=Prf.SHA1), length)
    assert key.hex() == expected
    assert cache.derivations == 1


def test_prf_defaults_to_hmac_sha1() -> None:
    """RFC 8018 A.2: prf DEFAULT algid-hmacWithSHA1."""
    assert Pbkdf2Params(salt=b"salt", iterations=1).prf is Prf.SHA1
    key = Pbkdf2Cache().derive(b"password", Pbkdf2Params(salt=b"salt", iterations=1), 20)
    assert key.hex() == "0c60c80f961f0e71f3a9b524af6012062fe037a6"


def test_hmac_sha256_known_answer() -> None:
    """PBKDF2-HMAC-SHA256("password", "salt", 1, 32), the widely published SHA-256 counterpart of RFC 6070."""
    key = Pbkdf2Cache().derive(b"password", Pbkdf2Params(salt=b"salt", iterations=1, prf=Prf.SHA256), 32)
    assert key.hex() == "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"


@pytest.mark.parametrize("prf", list(Prf), ids=str)
def test_every_prf_gives_its_own_key(prf: Prf) -> None:
    keys = {p: Pbkdf2Cache().derive(PASSWORD, _params(prf=p), 32) for p in Prf}
    assert len(keys[prf]) == 32
    assert list(keys.values()).count(keys[prf]) == 1


# -- counting ------------------------------------------------------------------------------------------------


def test_same_inputs_derive_once() -> None:
    cache = Pbkdf2Cache()
    first = cache.derive(PASSWORD, _params(), 32)
    again = [cache.derive(PASSWORD, _params(), 32) for _ in range(5)]
    assert again == [first] * 5
    assert cache.derivations == 1


def test_equal_params_objects_share_the_slot() -> None:
    cache = Pbkdf2Cache()
    cache.derive(PASSWORD, Pbkdf2Params(salt=SALT, iterations=3), 32)
    cache.derive(
        b"correct horse " + b"battery staple", Pbkdf2Params(salt=SALT[:4] + SALT[4:], iterations=3), 32
    )
    assert cache.derivations == 1


@pytest.mark.parametrize(
    ("password", "params", "length"),
    [
        (b"another password", _params(), 32),
        (PASSWORD, _params(salt=b"\xff" + SALT[1:]), 32),
        (PASSWORD, _params(salt=SALT + b"\x00"), 32),
        (PASSWORD, _params(iterations=4), 32),
        (PASSWORD, _params(prf=Prf.SHA1), 32),
        (PASSWORD, _params(prf=Prf.SHA512), 32),
        (PASSWORD, _params(), 16),
        (PASSWORD, _params(), 24),
    ],
    ids=["password", "salt", "salt-length", "iterations", "prf-sha1", "prf-sha512", "length-16", "length-24"],
)
def test_any_different_input_is_a_new_derivation(password: bytes, params: Pbkdf2Params, length: int) -> None:
    cache = Pbkdf2Cache()
    base = cache.derive(PASSWORD, _params(), 32)
    other = cache.derive(password, params, length)
    assert other != base
    assert cache.derivations == 2
    assert len(other) == length
    cache.derive(password, params, length)
    cache.derive(PASSWORD, _params(), 32)
    assert cache.derivations == 2


def test_shorter_length_is_not_served_from_the_longer_entry() -> None:
    """PBKDF2 output is a prefix of a longer one; the cache still keys by length and derives again."""
    cache = Pbkdf2Cache()
    long_key = cache.derive(PASSWORD, _params(), 32)
    short_key = cache.derive(PASSWORD, _params(), 16)
    assert short_key == long_key[:16]
    assert cache.derivations == 2


def test_salt_and_iteration_boundaries_do_not_collide() -> None:
    """Slots separate salt and iteration count: ("ab", 12) and ("ab1", 2) are distinct inputs."""
    cache = Pbkdf2Cache()
    one = cache.derive(PASSWORD, _params(salt=b"ab", iterations=12), 32)
    two = cache.derive(PASSWORD, _params(salt=b"ab1", iterations=2), 32)
    assert one != two
    assert cache.derivations == 2


def test_caches_are_independent() -> None:
    first, second = Pbkdf2Cache(), Pbkdf2Cache()
    assert first.derive(PASSWORD, _params(), 32) == second.derive(PASSWORD, _params(), 32)
    assert (first.derivations, second.derivations) == (1, 1)


def test_least_recently_used_entry_is_evicted() -> None:
    cache = Pbkdf2Cache(max_entries=2)
    a, b, c = (_params(salt=bytes([n]) * 8) for n in (1, 2, 3))
    cache.derive(PASSWORD, a, 32)
    cache.derive(PASSWORD, b, 32)
    cache.derive(PASSWORD, a, 32)  # a is now the most recent
    cache.derive(PASSWORD, c, 32)  # evicts b
    assert cache.derivations == 3
    cache.derive(PASSWORD, a, 32)
    cache.derive(PASSWORD, c, 32)
    assert cache.derivations == 3
    cache.derive(PASSWORD, b, 32)
    assert cache.derivations == 4


def test_exported_entries_serve_another_cache() -> None:
    parent = Pbkdf2Cache()
    key = parent.derive(PASSWORD, _params(), 32)
    child = Pbkdf2Cache()
    child.import_entries(parent.export(), parent.slot_key)
    assert child.derive(PASSWORD, _params(), 32) == key
    assert child.derivations == 0


# -- no password kept ----------------------------------------------------------------------------------------


def test_cache_holds_no_password() -> None:
    secret = b"Unmistakable-Secret-0123"
    cache = Pbkdf2Cache()
    cache.derive(secret, _params(), 32)
    text = repr(cache)
    assert text == "Pbkdf2Cache(entries=1, derivations=1)"
    for needle in (secret.decode(), secret.hex(), repr(secret)):
        assert needle not in text
    exported = cache.export()
    assert all(secret not in slot and secret not in key for slot, key in exported)
    assert secret not in pickle.dumps(exported)


def test_password_holders_do_not_show_it() -> None:
    secret = b"Unmistakable-Secret-0123"
    recipient = PasswordRecipient(password=secret, kdf=_params())
    credential = PasswordCredential(password=secret)
    for text in (repr(recipient), str(recipient), repr(credential), str(credential)):
        assert secret.decode() not in text


# -- parameters and the process cache ------------------------------------------------------------------------


@pytest.mark.parametrize("iterations", [0, -1])
def test_iteration_count_below_one_is_refused(iterations: int) -> None:
    with pytest.raises(ValueError, match="iteration"):
        Pbkdf2Params(salt=SALT, iterations=iterations)


def test_empty_salt_is_refused() -> None:
    with pytest.raises(ValueError, match="salt"):
        Pbkdf2Params(salt=b"", iterations=1)
