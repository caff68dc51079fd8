"""Sealing while reading: a Part 10 file's Secure DICOM File made on demand, as a medium image writes it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.errors import InputError, NotPart10Error
from dcmseal.part10 import PreambleKind, SealedStream, prepare_seal, seal_file, seal_into, unseal_file
from tests.part10.dicomfiles import PASSWORD, copy_ct_small, fast_kdf, write_part10


def _recipients(kdf: cms.Pbkdf2Params) -> list[cms.Recipient]:
    return [cms.PasswordRecipient(password=PASSWORD.encode(), kdf=kdf)]


def _credentials() -> list[cms.Credential]:
    return [cms.PasswordCredential(password=PASSWORD.encode())]


def _read_all(stream: SealedStream, size: int) -> bytes:
    reader = stream.open()
    assert reader.seek(0) == 0  # what an image writer does before copying
    parts = []
    while data := reader.read(size):
        parts.append(data)
    reader.close()
    return b"".join(parts)


@pytest.mark.parametrize("read_size", [1, 511, 2048, 1 << 20])
def test_the_stream_is_a_secure_dicom_file_of_the_announced_size(tmp_path: Path, read_size: int) -> None:
    src = write_part10(tmp_path / "in.dcm", preamble=b"MZ" + bytes(126), pixel_bytes=5000)
    before = src.read_bytes()
    done: list[SealedStream] = []
    stream = prepare_seal(src, recipients=_recipients(fast_kdf()), on_done=done.append)

    sealed = _read_all(stream, read_size)

    assert len(sealed) == stream.size
    assert done == [stream]
    assert stream.meta.preamble is PreambleKind.OTHER
    assert any("preamble zeroed" in n for n in stream.notes)
    (tmp_path / "sealed").write_bytes(sealed)
    unseal_file(tmp_path / "sealed", tmp_path / "out.dcm", credentials=_credentials())
    assert (tmp_path / "out.dcm").read_bytes() == bytes(128) + before[128:]
    assert src.read_bytes() == before


def test_every_read_but_the_last_gives_the_bytes_asked_for(tmp_path: Path) -> None:
    src = write_part10(tmp_path / "in.dcm", pixel_bytes=3000)
    stream = prepare_seal(src, recipients=_recipients(fast_kdf()))
    reader = stream.open()
    sizes = []
    while data := reader.read(1000):
        sizes.append(len(data))
    assert sizes[:-1] == [1000] * (len(sizes) - 1)
    assert sum(sizes) == stream.size
    assert 0 < sizes[-1] <= 1000


def test_it_is_the_file_seal_file_writes_but_for_keys_and_iv(tmp_path: Path) -> None:
    src = copy_ct_small(tmp_path / "ct.dcm")
    kdf = fast_kdf()
    sealed = seal_file(src, tmp_path / "ct.p7m", recipients=_recipients(kdf))
    stream = prepare_seal(src, recipients=_recipients(kdf))
    assert stream.size == (tmp_path / "ct.p7m").stat().st_size == sealed.envelope.envelope_size


def test_a_source_that_changed_size_is_named(tmp_path: Path) -> None:
    src = write_part10(tmp_path / "in.dcm")
    stream = prepare_seal(src, recipients=_recipients(fast_kdf()))
    with open(src, "ab") as fp:
        fp.write(b"\0\0")
    reader = stream.open()
    with pytest.raises(InputError) as info:
        reader.read(stream.size)
    assert str(info.value).startswith(f"{src}: cannot seal")
    assert reader.closed


def test_a_source_that_went_away_is_named(tmp_path: Path) -> None:
    src = write_part10(tmp_path / "in.dcm")
    stream = prepare_seal(src, recipients=_recipients(fast_kdf()))
    os.unlink(src)
    with pytest.raises(InputError) as info:
        stream.open().read(10)
    assert str(info.value).startswith(f"{src}: cannot seal")


def test_it_reads_once_from_the_start(tmp_path: Path) -> None:
    stream = prepare_seal(write_part10(tmp_path / "in.dcm"), recipients=_recipients(fast_kdf()))
    reader = stream.open()
    reader.read(10)
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(0)
    assert reader.tell() == 10


def test_what_seal_file_refuses_is_refused_before_any_byte(tmp_path: Path) -> None:
    (tmp_path / "text").write_bytes(b"hello" * 40)
    with pytest.raises(NotPart10Error):
        prepare_seal(tmp_path / "text", recipients=_recipients(fast_kdf()))
    with pytest.raises(InputError):
        prepare_seal(tmp_path / "absent", recipients=_recipients(fast_kdf()))


def test_a_copier_that_stops_at_the_size_ends_the_stream(tmp_path: Path) -> None:
    """pycdlib reads exactly the announced size: the stream must finish (checks, source closed) right then."""
    src = write_part10(tmp_path / "in.dcm", pixel_bytes=4000)
    done: list[SealedStream] = []
    stream = prepare_seal(src, recipients=_recipients(fast_kdf()), on_done=done.append)
    reader = stream.open()
    left = stream.size
    while left:
        left -= len(reader.read(min(1024, left)))
        assert done == ([stream] if left == 0 else [])


@pytest.mark.parametrize("workers", [1, 2], ids=["here", "forked-workers"])
def test_seal_into_fills_each_range_of_one_file(tmp_path: Path, workers: int) -> None:
    sources = [write_part10(tmp_path / "src" / f"IM{i:03d}", pixel_bytes=300 + i) for i in range(40)]
    kdf = fast_kdf()
    streams = [prepare_seal(src, recipients=_recipients(kdf)) for src in sources]
    placed, offset = [], 4096
    for stream in streams:
        placed.append((stream, offset))
        offset += stream.size + 100  # gaps stay zero
    done: list[SealedStream] = []
    image = tmp_path / "image.bin"
    with open(image, "wb") as out:
        seal_into(out.fileno(), placed, workers=workers, on_done=done.append)
    assert sorted(map(id, done)) == sorted(map(id, streams))
    data = image.read_bytes()
    for index, (stream, at) in enumerate(placed):
        (tmp_path / "one").write_bytes(data[at : at + stream.size])
        unseal_file(tmp_path / "one", tmp_path / f"out{index}", credentials=_credentials())
        assert (tmp_path / f"out{index}").read_bytes()[128:] == sources[index].read_bytes()[128:]
    assert data[:4096] == bytes(4096)
