"""Bounded work on hostile envelopes (issue 12 §2): recipient floods, PBKDF2 per file and per medium.

Work is asserted by counting, never by timing: PBKDF2 derivations actually run (``Pbkdf2Cache.derivations``),
iterations charged (``KdfBudget.spent``), and RecipientInfos sets handed to the ASN.1 parser
(``Context.shapes.full_parses``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.cms.header import MAX_RECIPIENTS
from dcmseal.config import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import ResourceLimitError
from dcmseal.part10 import UnsealPlan, unseal_file, unseal_tree
from tests.cli.conftest import Invoke
from tests.hostile.envelopes import PASSWORD, credentials, readdressed, recipient_parts, seal, with_iterations
from tests.part10.dicomfiles import leftovers

PAYLOAD = b"\x00" * 128 + b"DICM" + b"budgeted payload"


def test_a_recipient_flood_is_refused_before_it_is_parsed() -> None:
    """100,000 one-iteration password recipients fit in the header limit; none is parsed or tried."""
    good = seal(PAYLOAD, iterations=1)
    (one,), *_ = recipient_parts(good)
    flood = readdressed([one] * 100_000, good)
    assert len(flood) < DEFAULT_MAX_HEADER_BYTES
    context = cms.Context()  # the reader's: what it parses and derives is counted there
    with pytest.raises(ResourceLimitError, match=f"more than {MAX_RECIPIENTS} recipients"):
        cms.decrypt(io.BytesIO(flood), io.BytesIO(), credentials(), context=context, max_iterations=1000)
    assert context.kdf_cache.derivations == 0
    assert context.shapes.full_parses["recipientInfos"] == 0  # never handed to asn1crypto


def test_as_many_recipients_as_allowed_still_open() -> None:
    good = seal(PAYLOAD, iterations=1)
    (one,), *_ = recipient_parts(good)
    data = readdressed([one] * MAX_RECIPIENTS, good)
    context = cms.Context()
    out = io.BytesIO()
    result = cms.decrypt(io.BytesIO(data), out, credentials(), context=context, max_iterations=1000)
    assert out.getvalue() == PAYLOAD
    assert result.inner.verified
    assert context.kdf_cache.derivations == 1  # 64 identical recipients: one key
    assert context.shapes.full_parses["recipientInfos"] == 1  # the 64 of them, parsed once
    assert len(result.envelope.recipients) == MAX_RECIPIENTS


def test_the_worst_envelope_in_the_header_limit_costs_no_derivation(tmp_path: Path) -> None:
    """As many password recipients as allowed, each at the iteration cap with its own salt: refused
    before a single derivation (the issue's 200 x 10,000,000 kept unseal busy for minutes)."""
    good = seal(PAYLOAD, iterations=1)
    (one,), *_ = recipient_parts(good)
    worst = readdressed(
        [with_iterations(one, DEFAULT_MAX_PBKDF2_ITERATIONS, os.urandom(16)) for _ in range(MAX_RECIPIENTS)],
        good,
    )
    src = tmp_path / "worst.p7m"
    src.write_bytes(worst)
    cache = cms.Pbkdf2Cache()
    budget = cms.KdfBudget.for_limits(DEFAULT_MAX_PBKDF2_ITERATIONS, 10 * DEFAULT_MAX_PBKDF2_ITERATIONS)
    with pytest.raises(ResourceLimitError, match="budget of 20,000,000 per file") as info:
        unseal_file(
            src,
            tmp_path / "out" / "x",
            credentials=credentials(),
            context=cms.Context(kdf_cache=cache),
            kdf_budget=budget,
        )
    assert str(info.value).startswith(f"{src}: {MAX_RECIPIENTS} password recipient(s) would cost 640,000,000")
    assert cache.derivations == 0
    assert budget.spent == 0
    assert leftovers(tmp_path / "out") == []


def test_two_password_recipients_at_the_cap_fit_a_file(tmp_path: Path) -> None:
    """What ``rekey --keep-recipients`` makes (the old password and a new one) opens with either password."""
    cap = 50
    old = cms.PasswordRecipient(
        password=b"the-old-password", kdf=cms.Pbkdf2Params(salt=b"1" * 16, iterations=cap)
    )
    new = cms.PasswordRecipient(password=PASSWORD, kdf=cms.Pbkdf2Params(salt=b"2" * 16, iterations=cap))
    data = seal(PAYLOAD, recipients=[old, new])
    for password in (b"the-old-password", PASSWORD):
        cache = cms.Pbkdf2Cache()
        budget = cms.KdfBudget.for_limits(cap)
        out = io.BytesIO()
        cms.decrypt(
            io.BytesIO(data),
            out,
            credentials(password),
            context=cms.Context(kdf_cache=cache),
            max_iterations=cap,
            kdf_budget=budget,
        )
        assert out.getvalue() == PAYLOAD
        assert budget.spent == cache.derivations * cap <= 2 * cap
    third = cms.PasswordRecipient(password=b"a-third", kdf=cms.Pbkdf2Params(salt=b"3" * 16, iterations=cap))
    cache = cms.Pbkdf2Cache()
    with pytest.raises(ResourceLimitError, match="per file"):
        cms.decrypt(
            io.BytesIO(seal(PAYLOAD, recipients=[old, new, third])),
            io.BytesIO(),
            credentials(),
            context=cms.Context(kdf_cache=cache),
            max_iterations=cap,
        )
    assert cache.derivations == 0


def test_a_recipient_with_a_derived_key_is_tried_first(tmp_path: Path) -> None:
    """An envelope whose first password recipient is new and costly, and whose second matches a key the
    medium already derived, opens without deriving anything."""
    cache = cms.Pbkdf2Cache()
    shared = cms.Pbkdf2Params(salt=b"medium-salt-0000", iterations=8)
    first = seal(PAYLOAD, recipients=[cms.PasswordRecipient(password=PASSWORD, kdf=shared)])
    cms.decrypt(
        io.BytesIO(first),
        io.BytesIO(),
        credentials(),
        context=cms.Context(kdf_cache=cache),
        max_iterations=1000,
    )
    assert cache.derivations == 1
    costly = cms.PasswordRecipient(
        password=PASSWORD, kdf=cms.Pbkdf2Params(salt=os.urandom(16), iterations=1000)
    )
    sealed = seal(PAYLOAD, recipients=[costly, cms.PasswordRecipient(password=PASSWORD, kdf=shared)])
    infos, *_ = recipient_parts(sealed)
    (known,) = [i for i in infos if b"medium-salt-0000" in i]
    (new,) = [i for i in infos if i != known]
    data = readdressed([new, known], sealed)  # the costly one first, as a hostile writer would put it
    budget = cms.KdfBudget.for_limits(1000)
    out = io.BytesIO()
    cms.decrypt(
        io.BytesIO(data),
        out,
        credentials(),
        context=cms.Context(kdf_cache=cache),
        max_iterations=1000,
        kdf_budget=budget,
    )
    assert out.getvalue() == PAYLOAD
    assert cache.derivations == 1
    assert budget.spent == 0


def _files_with_own_salts(root: Path, count: int, iterations: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = root / f"IM{index:04d}"
        path.write_bytes(seal(PAYLOAD, iterations=iterations))
        paths.append(path)
    return paths


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "pool"])
def test_a_medium_budget_stops_new_derivations_and_names_each_refused_file(
    tmp_path: Path, workers: int
) -> None:
    """20 files, each with its own salt (a hostile medium, or one made file by file with openssl): the
    medium's budget pays for five derivations, across every worker process; files whose key is derived
    already (the same salt as an opened file) still open after the budget is spent."""
    iterations = 100
    hostile = _files_with_own_salts(tmp_path / "medium", 20, iterations)
    shared = cms.Pbkdf2Params(salt=os.urandom(16), iterations=iterations)  # derived by no earlier test
    first = tmp_path / "medium" / "A0000"
    first.write_bytes(seal(PAYLOAD, recipients=[cms.PasswordRecipient(password=PASSWORD, kdf=shared)]))
    same = tmp_path / "medium" / "ZZ000"  # sorted last: opened after the budget is spent
    same.write_bytes(seal(PAYLOAD, recipients=[cms.PasswordRecipient(password=PASSWORD, kdf=shared)]))
    plan = UnsealPlan(passwords=(PASSWORD,), max_iterations=iterations, kdf_budget_per_medium=6 * iterations)
    report = unseal_tree([tmp_path / "medium"], tmp_path / "out", plan, workers=workers)
    opened = {o.source.name for o in report.outcomes if o.status == "unsealed"}
    refused = [o for o in report.outcomes if o.status == "failed"]
    assert {first.name, same.name} <= opened
    assert len(opened) == 2 + 5  # the shared salt once, then five own salts: six derivations in all
    assert len(refused) == len(hostile) - 5
    for outcome in refused:
        assert outcome.reason == (
            f"{outcome.source}: the PBKDF2 budget of 600 iterations for this medium is spent (600); this "
            "file needs a key not derived yet (100 iterations) (raise kdf_budget_per_medium if you trust "
            "this medium)"
        )
        assert outcome.exit_code == 1
    assert {p.name for p in (tmp_path / "out").iterdir()} == opened


def test_the_command_line_names_the_budget(invoke: Invoke, password_file: Path, tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    _files_with_own_salts(medium, 3, 1000)
    out = tmp_path / "out"
    result = invoke(
        "unseal",
        medium,
        "--out",
        out,
        "--password-file",
        password_file,
        "--json",
        env={"DCMSEAL_KDF_BUDGET_PER_MEDIUM": "2000", "DCMSEAL_MAX_PBKDF2_ITERATIONS": "1000"},
    )
    assert result.code == 1
    document = result.json()
    assert document["summary"]["ok"] == 2
    (failed,) = [f for f in document["files"] if f["status"] == "failed"]
    assert "PBKDF2 budget of 2,000 iterations for this medium is spent" in failed["reason"]
