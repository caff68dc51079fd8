"""One answer for every wrong key (issue 12 §3): what depends on the key, the padding or the digest looks alike.

A wrong password, a last block whose padding breaks, a second-to-last block whose padding may or may not
survive (the case of the report), a garbled block the digest catches, a broken signature: the same message
and exit code per file in ``unseal --json``, so that no answer tells an attacker which check failed.
"""

from __future__ import annotations

from pathlib import Path

from dcmseal import cms
from dcmseal.errors import WRONG_KEY_MESSAGE
from tests.cli.conftest import Invoke
from tests.hostile.envelopes import layout, load_signer, seal
from tests.part10.dicomfiles import leftovers, write_part10


def test_every_key_padding_and_digest_failure_is_one_answer(
    invoke: Invoke, password_file: Path, tmp_path: Path, test_cert_and_key: tuple[Path, Path]
) -> None:
    payload = write_part10(tmp_path / "plain.dcm", pixel_bytes=200).read_bytes()
    medium = tmp_path / "medium"
    medium.mkdir()
    good = seal(payload)
    where = layout(good)
    blocks = where.content_length // where.block

    def flipped(block: int, offset: int, bit: int = 0x01) -> bytes:
        data = bytearray(good)
        data[where.block_at(block) + offset] ^= bit
        return bytes(data)

    (medium / "WRONGPW").write_bytes(
        seal(
            payload,
            recipients=[
                cms.PasswordRecipient(
                    password=b"another-password", kdf=cms.Pbkdf2Params(salt=b"s" * 16, iterations=4)
                )
            ],
        )
    )
    (medium / "LASTBLK").write_bytes(flipped(blocks - 1, 3))  # the padding block garbled
    # The second-to-last block's last byte flips the pad length of the last block: 256 variants, some of
    # which leave valid padding (then the digest fails), most of which do not.
    for value in range(0, 256, 37):
        (medium / f"PAD{value:03d}").write_bytes(flipped(blocks - 2, where.block - 1, value or 0x80))
    (medium / "MIDDLE").write_bytes(flipped(blocks // 2, 5))  # a block of the payload: the digest catches it
    signer = load_signer(*test_cert_and_key)
    signed = seal(payload, signer.spec)
    broken = bytearray(signed)
    broken[-1] ^= 0x01  # the last ciphertext byte: padding, or the signature's last bytes
    (medium / "SIGNED").write_bytes(bytes(broken))

    out = tmp_path / "out"
    result = invoke("unseal", medium, "--out", out, "--password-file", password_file, "--json")
    assert result.code == 1
    files = result.json()["files"]
    assert len(files) == len(list(medium.iterdir()))
    for entry in files:
        assert entry["status"] == "failed"
        assert entry["reason"] == f"{entry['source']}: {WRONG_KEY_MESSAGE}", entry
    assert leftovers(out) == []
