"""Weak PBKDF2 parameters given to the expert-level recipe never pass for PS3.15 D.1 (issue 17 §1)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.cms.kdf import RFC8018_MIN_ITERATIONS, RFC8018_MIN_SALT_BYTES
from dcmseal.part10 import SealPlan, inspect_file, seal_file
from tests.part10.dicomfiles import FAST_ITERATIONS
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")


def _seal(tmp_path: Path, kdf: cms.Pbkdf2Params, password: bytes = b"a") -> cms.EnvelopeInfo:
    sealed = tmp_path / "CT1"
    result = seal_file(CT_SMALL, sealed, recipients=[cms.PasswordRecipient(password=password, kdf=kdf)])
    # What the writer reports and what a reader finds in the file agree.
    assert inspect_file(sealed).envelope.in_profile is result.envelope.in_profile
    return result.envelope


def test_the_issue_example_is_not_in_profile(tmp_path: Path) -> None:
    # Issue 17: b"a", a 1-byte salt, 1 iteration and SHA-1 sealed CT_small and reported in_profile=True.
    envelope = _seal(tmp_path, cms.Pbkdf2Params(salt=b"s", iterations=1, prf=cms.Prf.SHA1))
    assert envelope.in_profile is False
    (recipient,) = envelope.recipients
    assert recipient.in_profile is False


@pytest.mark.parametrize(
    ("salt", "iterations"),
    [
        pytest.param(b"1234567", FAST_ITERATIONS, id="7-byte-salt"),
        pytest.param(b"0123456789abcdef", RFC8018_MIN_ITERATIONS - 1, id="999-iterations"),
    ],
)
def test_each_rfc_8018_minimum_is_required(tmp_path: Path, salt: bytes, iterations: int) -> None:
    envelope = _seal(tmp_path, cms.Pbkdf2Params(salt=salt, iterations=iterations, prf=cms.Prf.SHA256))
    assert envelope.in_profile is False


def test_the_minimums_themselves_are_in_profile(tmp_path: Path) -> None:
    kdf = cms.Pbkdf2Params(
        salt=bytes(RFC8018_MIN_SALT_BYTES), iterations=RFC8018_MIN_ITERATIONS, prf=cms.Prf.SHA256
    )
    assert _seal(tmp_path, kdf, password=b"Kestrel-amber-Lantern-orbit-velvet").in_profile is True


def test_a_foreign_envelope_with_weak_parameters_is_described_as_outside(tmp_path: Path) -> None:
    # The reader's view (inspect, open) applies the same rule to what another writer made.
    out = io.BytesIO()
    spec = cms.EnvelopeSpec(
        recipients=(cms.PasswordRecipient(password=b"a", kdf=cms.Pbkdf2Params(salt=b"ab", iterations=2)),),
        content_cipher=cms.ContentCipher.AES128_CBC,
    )
    cms.encrypt(io.BytesIO(b"payload"), out, spec, payload_size=7)
    info = cms.inspect(io.BytesIO(out.getvalue()), size=len(out.getvalue()))
    (recipient,) = info.recipients
    assert (recipient.salt, recipient.iterations) == (b"ab".hex(), 2)
    assert recipient.in_profile is False


def test_a_seal_plan_with_weak_parameters_says_it_is_outside_the_profile() -> None:
    plan = SealPlan(password=b"a", kdf=cms.Pbkdf2Params(salt=b"s", iterations=1, prf=cms.Prf.SHA1))
    (deviation,) = plan.outside_profile()
    assert "1-byte salt and 1 iterations is outside PS3.15 D.1" in deviation
    strong = cms.Pbkdf2Params(salt=bytes(16), iterations=FAST_ITERATIONS, prf=cms.Prf.SHA256)
    assert SealPlan(password=b"a", kdf=strong).outside_profile() == ()
