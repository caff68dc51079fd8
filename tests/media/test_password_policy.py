"""Burn and rekey apply the password policy themselves, whoever builds the request (issue 17 §1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcmseal.config import DEFAULT_PBKDF2_ITERATIONS, DEFAULT_SALT_BYTES
from dcmseal.errors import InputError, WeakPasswordError
from dcmseal.media.burn import BurnRequest
from dcmseal.media.rekey import RekeyRequest
from tests.part10.dicomfiles import PASSWORD

WEAK = b"19700101"


def _burn_request(tmp_path: Path, password: bytes, **options: object) -> BurnRequest:
    return BurnRequest(
        sources=(str(tmp_path),),
        out=tmp_path / "disc.iso",
        operator="policy-tester",
        password=password,
        **options,  # type: ignore[arg-type]
    )


def _rekey_request(tmp_path: Path, new_password: bytes, **options: object) -> RekeyRequest:
    return RekeyRequest(
        medium=tmp_path / "disc.iso",
        out=tmp_path / "new.iso",
        operator="policy-tester",
        passwords=(PASSWORD.encode(),),
        new_password=new_password,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("build", [_burn_request, _rekey_request], ids=["burn", "rekey"])
def test_a_weak_password_is_refused_by_the_request(tmp_path: Path, build: object) -> None:
    with pytest.raises(WeakPasswordError, match=r"password refused: .*looks like a date") as info:
        build(tmp_path, WEAK)  # type: ignore[operator]
    assert WEAK.decode() not in str(info.value)


@pytest.mark.parametrize("build", [_burn_request, _rekey_request], ids=["burn", "rekey"])
def test_allow_weak_password_lets_it_through_and_says_why(tmp_path: Path, build: object) -> None:
    request = build(tmp_path, WEAK, allow_weak_password=True)  # type: ignore[operator]
    assert any("looks like a date" in problem for problem in request.password_problems)
    strong = build(tmp_path, PASSWORD.encode())  # type: ignore[operator]
    assert strong.password_problems == ()


@pytest.mark.parametrize("build", [_burn_request, _rekey_request], ids=["burn", "rekey"])
def test_a_password_outside_iso_ir_6_is_refused_even_when_weak_is_allowed(
    tmp_path: Path, build: object
) -> None:
    with pytest.raises(InputError, match="ISO-IR 6"):
        build(tmp_path, "Kestrel-ämber-Lantern-orbit".encode(), allow_weak_password=True)  # type: ignore[operator]


def test_requests_use_the_named_security_defaults(tmp_path: Path) -> None:
    for request in (_burn_request(tmp_path, PASSWORD.encode()), _rekey_request(tmp_path, PASSWORD.encode())):
        assert (request.iterations, request.salt_bytes) == (DEFAULT_PBKDF2_ITERATIONS, DEFAULT_SALT_BYTES)
