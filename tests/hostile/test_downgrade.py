"""Issue 12 §1, reproduced: switching the integrity check off from the envelope, and rewriting pixel data.

The attacker has a file from ``dcmseal seal`` (DigestedData inside) and no password. The envelope's
EncryptedContentInfo contentType is not authenticated, the IV is not authenticated, and CBC lets a chosen
plaintext block be rewritten by flipping bits of the ciphertext block before it. Before the fix, the
combination below was written out by ``unseal`` (exit 0) and called "opened and verified" by ``scan``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.cms.algorithms import OID_DATA
from dcmseal.cms.content import plan_inner
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError, UnprotectedContentError
from dcmseal.part10 import seal_file, unseal_file
from tests.cli.conftest import Invoke
from tests.hostile.envelopes import PASSWORD, credentials, layout, set_content_type
from tests.part10.dicomfiles import leftovers, write_part10

CHOSEN = b"ATTACKER-CHOSEN!"  # one AES block of "pixel data" the attacker wants the reader to see
PIXELS = bytes(range(256))


def _sealed_part10(tmp_path: Path) -> tuple[bytes, bytes]:
    """(the envelope, its plaintext as the attacker knows it: DigestedData of a known Part 10 file)."""
    src = write_part10(tmp_path / "plain.dcm", pixel_bytes=len(PIXELS))
    sealed = tmp_path / "sealed.dcm"
    kdf = cms.Pbkdf2Params(salt=b"issue-12-salt-16", iterations=4)
    seal_file(src, sealed, recipients=[cms.PasswordRecipient(password=PASSWORD, kdf=kdf)], durable=False)
    payload = src.read_bytes()  # its preamble is zero already: the sealed payload is these bytes
    plan = plan_inner(cms.DigestedContent(), len(payload), now=lambda: None)  # type: ignore[arg-type,return-value]
    return sealed.read_bytes(), plan.prefix + payload + plan.trailer(hashlib.sha256(payload).digest())


def _attack(data: bytes, plaintext: bytes, *, content_type: bool, iv: bool, pixels: bool) -> bytes:
    """The steps of the report, each optional: label the content id-data, flip an IV bit, CBC-flip a block."""
    where = layout(data)
    out = bytearray(set_content_type(data, OID_DATA) if content_type else data)
    if iv:
        out[where.iv_at] ^= 0x01  # the first decrypted byte becomes 0x31: no longer a SEQUENCE
    if pixels:
        start = plaintext.index(PIXELS) // where.block + 2  # block i and block i-1 both inside the pixels
        assert (start + 1) * where.block <= plaintext.index(PIXELS) + len(PIXELS)
        known = plaintext[start * where.block : (start + 1) * where.block]
        previous = where.block_at(start - 1)
        for k in range(where.block):
            out[previous + k] ^= known[k] ^ CHOSEN[k]
    return bytes(out)


def test_the_reported_attack_is_refused_by_the_library(tmp_path: Path) -> None:
    data, plaintext = _sealed_part10(tmp_path)
    forged = tmp_path / "forged.dcm"
    forged.write_bytes(_attack(data, plaintext, content_type=True, iv=True, pixels=True))
    out = tmp_path / "out"
    with pytest.raises(UnprotectedContentError, match="no digest or signature") as info:
        unseal_file(forged, out / "x.dcm", credentials=credentials())
    assert info.value.exit_code == 1
    assert "\n" not in str(info.value)
    assert leftovers(out) == []


@pytest.mark.parametrize(
    ("content_type", "iv"),
    [(False, False), (True, False), (False, True)],
    ids=["pixels-only", "relabelled-id-data", "iv-flipped-still-labelled-digested"],
)
@pytest.mark.parametrize("accept_unprotected", [False, True])
def test_partial_attacks_are_the_one_wrong_key_answer(
    tmp_path: Path, content_type: bool, iv: bool, accept_unprotected: bool
) -> None:
    """Whatever the envelope says and whatever the caller accepts: altered DigestedData never verifies."""
    data, plaintext = _sealed_part10(tmp_path)
    forged = tmp_path / "forged.dcm"
    forged.write_bytes(_attack(data, plaintext, content_type=content_type, iv=iv, pixels=True))
    out = tmp_path / "out"
    with pytest.raises(DecryptionError) as info:
        unseal_file(forged, out / "x.dcm", credentials=credentials(), accept_unprotected=accept_unprotected)
    assert str(info.value) == f"{forged}: {WRONG_KEY_MESSAGE}"
    assert leftovers(out) == []


def test_with_accept_unprotected_the_forgery_opens_only_as_not_verified(tmp_path: Path) -> None:
    """The explicit option does what it says, and says it: the attacker's block is there, unverified."""
    data, plaintext = _sealed_part10(tmp_path)
    forged = tmp_path / "forged.dcm"
    forged.write_bytes(_attack(data, plaintext, content_type=True, iv=True, pixels=True))
    result = unseal_file(forged, tmp_path / "x.out", credentials=credentials(), accept_unprotected=True)
    assert CHOSEN in result.destination.read_bytes()  # the reproduction is faithful: the CBC flip landed
    assert not result.verified
    assert result.to_json()["integrity"] == "not-verified"
    assert any("integrity NOT verified" in note for note in result.notes)


def test_the_reported_attack_through_the_command_line(
    invoke: Invoke, password_file: Path, tmp_path: Path
) -> None:
    data, plaintext = _sealed_part10(tmp_path)
    medium = tmp_path / "medium"
    medium.mkdir()
    (medium / "IM0001").write_bytes(_attack(data, plaintext, content_type=True, iv=True, pixels=True))
    out = tmp_path / "out"

    unsealed = invoke("unseal", medium, "--out", out, "--password-file", password_file, "--json")
    assert unsealed.code == 1
    (entry,) = unsealed.json()["files"]
    assert entry["status"] == "failed"
    assert "no digest or signature" in entry["reason"]
    assert "\n" not in entry["reason"]
    assert leftovers(out) == []

    scanned = invoke("scan", medium, "--password-file", password_file, "--json")
    assert scanned.code == 4  # findings
    (report,) = scanned.json()["files"]
    codes = [f["code"] for f in report["findings"]]
    assert codes == ["secure.unprotected"]
    assert "opened and verified;" not in scanned.stdout  # the success finding's words

    accepted = invoke(
        "unseal", medium, "--out", out, "--password-file", password_file, "--accept-unprotected", "--json"
    )
    assert accepted.code == 0
    (entry,) = accepted.json()["files"]
    assert entry["integrity"] == "not-verified"
    assert accepted.json()["summary"]["not_verified"] == 1
