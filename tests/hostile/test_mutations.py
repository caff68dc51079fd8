"""Every byte of a small envelope changed, every length cut or stretched, every truncation (issue 12 §6).

Exhaustive, not sampled: the envelope is a few hundred bytes, PBKDF2 runs 4 iterations, and each attempt
goes through :func:`dcmseal.part10.unseal_file` (the library path ``dcmseal unseal`` takes), so what is
asserted is what a user gets: a DcmsealError with exit code 1 and a one-line message, nothing left in the
output folder, at most one key derived; or, if the change did not matter, the original payload, verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.errors import DcmsealError
from dcmseal.part10 import unseal_file
from tests.hostile.envelopes import counting_cache, credentials, readdressed, recipient_parts, seal

PAYLOAD = b"\x00" * 128 + b"DICM" + b"a small payload, three blocks or so"


@pytest.fixture(scope="module")
def envelope() -> bytes:
    return seal(PAYLOAD)


def _attempt(tmp_path: Path, data: bytes) -> None:
    """Open ``data``; assert it either fails cleanly (nothing written) or gives back the verified payload."""
    src = tmp_path / "in.p7m"
    src.write_bytes(data)
    out = tmp_path / "out"
    cache = counting_cache()
    failure: DcmsealError | None = None
    try:
        result = unseal_file(
            src,
            out / "payload",
            credentials=credentials(),
            context=cms.Context(kdf_cache=cache),
            durable=False,
        )
    except DcmsealError as exc:
        failure = exc
    if failure is not None:
        message = str(failure)
        assert failure.exit_code == 1
        assert message.startswith(f"{src}: ")
        assert "\n" not in message
        assert not out.exists() or not any(out.iterdir()), f"something written for a refused file: {message}"
    else:
        assert result.verified
        assert result.destination.read_bytes() == PAYLOAD
        result.destination.unlink()
    assert cache.derivations <= 1  # bounded work: never more than the one derivation a good file needs


def test_every_bit_flip_fails_closed(tmp_path: Path, envelope: bytes) -> None:
    for position in range(len(envelope)):
        for bit in (0x01, 0x80):
            changed = bytearray(envelope)
            changed[position] ^= bit
            _attempt(tmp_path, bytes(changed))


def test_every_truncation_fails_closed(tmp_path: Path, envelope: bytes) -> None:
    for length in range(len(envelope)):
        _attempt(tmp_path, envelope[:length])


def test_every_appended_byte_fails_closed(tmp_path: Path, envelope: bytes) -> None:
    for extra in (b"\x01", b"\x00\x00", b"\x30\x00", bytes(16)):
        _attempt(tmp_path, envelope + extra)


def _headers(data: bytes, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
    """(offset of the length octets, their count, the length) of every DER element in ``data[start:stop]``."""
    position = start
    while position < stop:
        first = data[position + 1]
        count = 0 if first < 0x80 else first & 0x7F
        length = first if first < 0x80 else int.from_bytes(data[position + 2 : position + 2 + count], "big")
        yield position + 1, 1 + count, length
        content = position + 2 + count
        if data[position] & 0x20:  # constructed: its elements too
            yield from _headers(data, content, content + length)
        position = content + length


def _with_length(data: bytes, at: int, count: int, length: int) -> bytes:
    if length < 0x80:
        octets = bytes([length])
    else:
        body = length.to_bytes((length.bit_length() + 7) // 8, "big")
        octets = bytes([0x80 | len(body)]) + body
    return data[:at] + octets + data[at + count :]


def test_every_length_changed_fails_closed(tmp_path: Path, envelope: bytes) -> None:
    """Each DER length of the envelope one shorter, one longer, zero, indefinite, and absurd."""
    tried = 0
    for at, count, length in _headers(envelope, 0, len(envelope)):
        for new in {length - 1, length + 1, 0, 0x7FFF_FFFF, 2**64 - 1} - {length, -1}:
            _attempt(tmp_path, _with_length(envelope, at, count, new))
            tried += 1
        _attempt(tmp_path, envelope[:at] + b"\x80" + envelope[at + count :])
    assert tried > 40  # every element of the header was reached


@pytest.mark.parametrize("depth", [33, 10_000])
def test_deep_nesting_in_the_header_fails_closed(tmp_path: Path, envelope: bytes, depth: int) -> None:
    """A recipient whose structure nests deeper than any CMS does (BER indefinite lengths: 2 bytes a level)."""
    nested = b"\x30\x80" * depth + b"\x00\x00" * depth
    (one,), *_ = recipient_parts(envelope)
    hostile = readdressed(
        [one, b"\xa4\x80" + nested + b"\x00\x00"], envelope
    )  # ori [4]: other recipient info
    _attempt(tmp_path, hostile)
    src = tmp_path / "in.p7m"
    with pytest.raises(DcmsealError):
        unseal_file(src, tmp_path / "out" / "x", credentials=credentials(), durable=False)
