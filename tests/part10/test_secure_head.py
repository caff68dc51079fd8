"""One test of "is this file sealed" (issue 17 §5): part10.is_secure_head, which media, scan and the reader use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dcmseal
from dcmseal.part10 import is_secure_file, is_secure_head
from dcmseal.part10.secure import SECURE_HEAD_BYTES
from tests.part10.dicomfiles import envelope_bytes, write_part10


def test_a_sealed_file_is_told_by_content_and_a_plain_one_is_not(tmp_path: Path) -> None:
    plain = write_part10(tmp_path / "plain.dcm")
    sealed = tmp_path / "IM0001"  # no extension: content decides, never the name
    sealed.write_bytes(envelope_bytes(plain.read_bytes()))
    assert is_secure_head(sealed.read_bytes()[:SECURE_HEAD_BYTES])
    assert is_secure_file(sealed)
    assert not is_secure_head(plain.read_bytes())
    assert not is_secure_file(plain)


@pytest.mark.parametrize("head", [b"", b"\x30", b"\x30\x80", b"PK\x03\x04" + bytes(28), bytes(132)])
def test_short_or_foreign_heads_are_not_sealed(head: bytes) -> None:
    assert not is_secure_head(head)


def test_only_part10_asks_cms_whether_a_file_is_sealed() -> None:
    root = Path(dcmseal.__file__).parent
    askers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "cms" not in path.relative_to(root).parts[:1]
        and re.search(r"\bis_enveloped_data\b", path.read_text(encoding="utf-8"))
    )
    assert askers == ["part10/secure.py"]
