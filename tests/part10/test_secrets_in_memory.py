"""No cache keeps a password once the call that used it has returned (issue 12 §5)."""

from __future__ import annotations

import gc
import secrets
import types
from pathlib import Path

from dcmseal import cms
from dcmseal.part10 import SealPlan, UnsealPlan, prepare_seal, seal_file, seal_tree, unseal_file, unseal_tree
from tests.part10.dicomfiles import fast_kdf, write_part10


def _holders(secret: bytearray) -> list[str]:
    """Type names of every live object (frames aside) that references a ``bytes`` equal to ``secret``."""
    gc.collect()
    found: list[str] = []
    for holder in gc.get_objects():
        if isinstance(holder, types.FrameType):
            continue  # the running test's own frames hold the comparison value, nothing else
        referents = gc.get_referents(holder)
        if any(type(r) is bytes and len(r) == len(secret) and r == secret for r in referents):
            found.append(type(holder).__qualname__)
    return found


def _use_password(secret: bytearray, tmp_path: Path) -> None:
    """Seal, plan a seal and unseal with ``secret``; every reference the test makes dies with this frame."""
    source = write_part10(tmp_path / "in.dcm")
    kdf = fast_kdf()
    recipient = cms.PasswordRecipient(password=bytes(secret), kdf=kdf)  # what a library caller would pass
    seal_file(source, tmp_path / "sealed.dcm", recipients=[recipient])
    prepare_seal(source, recipients=[recipient])
    unseal_file(
        tmp_path / "sealed.dcm",
        tmp_path / "out.dcm",
        credentials=[cms.PasswordCredential(password=bytes(secret))],
    )
    # A set, as the commands seal and open one (plans, batches, one derivation shared by the files).
    write_part10(tmp_path / "set" / "a.dcm")
    write_part10(tmp_path / "set" / "b.dcm")
    plan = SealPlan(password=bytes(secret), kdf=fast_kdf())
    assert not seal_tree([tmp_path / "set"], tmp_path / "set-sealed", plan, workers=1).failed
    opened = unseal_tree(
        [tmp_path / "set-sealed"], tmp_path / "set-opened", UnsealPlan(passwords=(bytes(secret),)), workers=1
    )
    assert not opened.failed


def test_no_cache_holds_the_password_after_a_seal(tmp_path: Path) -> None:
    secret = bytearray(secrets.token_urlsafe(30).encode())  # bytearray: not itself a ``bytes`` to find
    assert _holders(secret) == []
    _use_password(secret, tmp_path)
    assert (tmp_path / "out.dcm").read_bytes() == (tmp_path / "in.dcm").read_bytes()
    assert _holders(secret) == []


def test_the_search_finds_a_password_that_is_kept(tmp_path: Path) -> None:
    """The search itself works: a recipient still alive is found holding the password."""
    secret = bytearray(secrets.token_urlsafe(30).encode())
    kept = cms.PasswordRecipient(password=bytes(secret), kdf=fast_kdf())
    assert "PasswordRecipient" in _holders(secret)
    del kept
