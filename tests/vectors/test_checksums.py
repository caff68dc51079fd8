"""The vector files are byte for byte those listed in SHA256SUMS."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.vectors import VECTORS_DIR

_LINE = re.compile(r"^(?P<digest>[0-9a-f]{64}) [ *](?P<name>\S.*)$")
# Files that describe the vectors rather than being vectors, and so are not listed in SHA256SUMS.
_UNLISTED = {"README.md", "SHA256SUMS"}


def _sums() -> list[tuple[str, str]]:
    entries = []
    for number, line in enumerate((VECTORS_DIR / "SHA256SUMS").read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"SHA256SUMS line {number} is not '<sha256>  <file>': {line!r}")
        entries.append((match["name"], match["digest"]))
    return entries


SUMS = _sums()


def test_sums_are_not_empty() -> None:
    assert SUMS


@pytest.mark.parametrize(("name", "digest"), SUMS, ids=[name for name, _ in SUMS])
def test_vector_matches_its_sum(name: str, digest: str) -> None:
    path = VECTORS_DIR / name
    assert path.is_file(), f"{name} is listed in SHA256SUMS but missing"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{name} differs from SHA256SUMS"


def test_every_vector_is_listed() -> None:
    present = {
        path.name
        for path in VECTORS_DIR.iterdir()
        if path.is_file() and path.suffix not in {".py", ".pyc"} and path.name not in _UNLISTED
    }
    assert present - {name for name, _ in SUMS} == set()
