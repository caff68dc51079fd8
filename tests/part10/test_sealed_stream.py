"""Sealing into a container being written: a Part 10 file's Secure DICOM File, sized first, written at an offset."""

from __future__ import annotations

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


def _written_at(stream: SealedStream, image: Path, offset: int) -> bytes:
    """``stream`` written into a fresh file at ``offset``; the bytes of its range."""
    with open(image, "wb") as out:
        stream.write_at(out.fileno(), offset)
    data = image.read_bytes()
    assert data[:offset] == bytes(offset)
    return data[offset:]


@pytest.mark.parametrize("offset", [0, 2048, 5000])
def test_the_stream_is_a_secure_dicom_file_of_the_announced_size(tmp_path: Path, offset: int) -> None:
    src = write_part10(tmp_path / "in.dcm", preamble=b"MZ" + bytes(126), pixel_bytes=5000)
    before = src.read_bytes()
    stream = prepare_seal(src, recipients=_recipients(fast_kdf()))

    sealed = _written_at(stream, tmp_path / "image", offset)

    assert len(sealed) == stream.size
    assert stream.meta.preamble is PreambleKind.OTHER
    assert any("preamble zeroed" in n for n in stream.notes)
    (tmp_path / "sealed").write_bytes(sealed)
    unseal_file(tmp_path / "sealed", tmp_path / "out.dcm", credentials=_credentials())
    assert (tmp_path / "out.dcm").read_bytes() == bytes(128) + before[128:]
    assert src.read_bytes() == before


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
    with pytest.raises(InputError) as info:
        _written_at(stream, tmp_path / "image", 0)
    assert str(info.value).startswith(f"{src}: cannot seal")


def test_a_source_that_went_away_is_named(tmp_path: Path) -> None:
    src = write_part10(tmp_path / "in.dcm")
    stream = prepare_seal(src, recipients=_recipients(fast_kdf()))
    os.unlink(src)
    with pytest.raises(InputError) as info:
        _written_at(stream, tmp_path / "image", 0)
    assert str(info.value).startswith(f"{src}: cannot seal")


def test_it_is_written_once(tmp_path: Path) -> None:
    stream = prepare_seal(write_part10(tmp_path / "in.dcm"), recipients=_recipients(fast_kdf()))
    _written_at(stream, tmp_path / "image", 0)
    with pytest.raises(RuntimeError, match="streams once"):
        _written_at(stream, tmp_path / "again", 0)


def test_what_seal_file_refuses_is_refused_before_any_byte(tmp_path: Path) -> None:
    (tmp_path / "text").write_bytes(b"hello" * 40)
    with pytest.raises(NotPart10Error):
        prepare_seal(tmp_path / "text", recipients=_recipients(fast_kdf()))
    with pytest.raises(InputError):
        prepare_seal(tmp_path / "absent", recipients=_recipients(fast_kdf()))


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


def test_a_failure_in_a_fill_worker_is_raised_as_the_stream_raised_it(tmp_path: Path) -> None:
    """The error a forked worker meets reaches the caller with its class and message, as if met here."""
    raised: list[InputError] = []
    for workers in (1, 2):
        sources = [write_part10(tmp_path / f"w{workers}" / f"IM{i:03d}", pixel_bytes=300) for i in range(32)]
        kdf = fast_kdf()
        placed = [(prepare_seal(src, recipients=_recipients(kdf)), i * 4096) for i, src in enumerate(sources)]
        with open(sources[0], "ab") as fp:
            fp.write(b"\0\0")  # changed after it was planned
        with open(tmp_path / f"image{workers}", "wb") as out, pytest.raises(InputError) as info:
            seal_into(out.fileno(), placed, workers=workers)
        raised.append(info.value)
    here, forked = raised
    assert type(forked) is type(here) is InputError
    assert forked.path == sources[0]
    assert str(forked) == str(here).replace("/w1/", "/w2/")
    assert str(forked).startswith(f"{sources[0]}: cannot seal")
