"""Opening an ISO image in place: every file read where it lies in the image, no extracted copy, same result."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.audit import FileSink
from dcmseal.errors import InputError
from dcmseal.fsutil import ExtentReader
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, burn
from dcmseal.media.open import OpenRequest, OpenResult, open_medium
from dcmseal.reader import medium as medium_module
from dcmseal.reader.containers import ExtentsReader
from dcmseal.reader.isofiles import extract_iso, iso_file_extents
from tests.media.conftest import medium_files, write_series
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD
from tests.spies import counting


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield reg
    reg.close()


@pytest.fixture
def image(tmp_path: Path, registry: Registry) -> tuple[Path, list[Path]]:
    """An ISO medium of a small series, and the series' files."""
    study = write_series(tmp_path / "study", 24, pixel_bytes=5000)
    out = tmp_path / "m.iso"
    burn(
        BurnRequest(
            sources=(str(study[0].parent),),
            out=out,
            operator="in-place-tester",
            output_format="iso",
            password=PASSWORD.encode(),
            iterations=FAST_ITERATIONS,
        ),
        registry=registry,
        audit=FileSink(tmp_path / "burn-audit.log"),
    )
    return out, study


def _open(medium: Path, out: Path) -> OpenResult:
    request = OpenRequest(medium=medium, out=out, operator="in-place-tester", passwords=(PASSWORD.encode(),))
    return open_medium(request, audit=FileSink(out.parent / "open-audit.log"))


def test_each_extent_holds_exactly_what_extraction_gives(
    image: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    medium, _ = image
    extents = iso_file_extents(medium)
    assert extents is not None
    extracted = extract_iso(medium, tmp_path / "extracted")
    assert sorted(f.relative_path.as_posix() for f in extents) == sorted(
        p.relative_to(tmp_path / "extracted").as_posix() for p in extracted
    )
    for f in extents:
        with ExtentReader(f.extent) as reader:
            assert reader.read() == (tmp_path / "extracted").joinpath(*f.relative_path.parts).read_bytes()


def test_an_iso_medium_opens_without_extracting_it(
    image: tuple[Path, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    medium, study = image
    calls = {"extract": 0}

    def count() -> None:
        calls["extract"] += 1

    monkeypatch.setattr(medium_module, "extract_iso", counting(extract_iso, count))
    result = _open(medium, tmp_path / "opened")
    assert calls["extract"] == 0
    assert result.failed == ()
    assert result.kdf_derivations <= 1  # the burn in this process may have cached the key already
    opened = {
        str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
        for p in medium_files(tmp_path / "opened")
        if p.name != "DICOMDIR"
    }
    for source in study:
        uid = str(dcmread(source, stop_before_pixels=True).SOPInstanceUID)
        assert opened[uid].read_bytes()[128:] == source.read_bytes()[128:]  # the preamble is zeroed on burn


def test_a_file_in_several_extents_reads_as_one_stream(tmp_path: Path) -> None:
    """ISO 9660 multi-extent files (ECMA-119 §9.1.6) are read extent after extent, from the image itself."""
    image = tmp_path / "image"
    data = os.urandom(10_000)
    image.write_bytes(data)
    extents = ((100, 300), (5_000, 1_000), (400, 50))
    expected = data[100:400] + data[5_000:6_000] + data[400:450]
    with io.BufferedReader(ExtentsReader(image, extents)) as reader:
        assert reader.read() == expected
        reader.seek(250)
        assert reader.read(100) == expected[250:350]


def test_a_truncated_image_is_refused_before_anything_is_read(
    image: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    medium, _ = image
    cut = tmp_path / "cut.iso"
    data = medium.read_bytes()
    cut.write_bytes(data[: len(data) - 40_000])
    with pytest.raises(InputError, match="truncated ISO image"):
        iso_file_extents(cut)
    with pytest.raises(InputError):
        _open(cut, tmp_path / "opened")
    assert not (tmp_path / "opened").exists()
