"""An encrypted ISO is sealed while the image is written: no sealed copy of the medium on disk first."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.audit import FileSink
from dcmseal.errors import InputError
from dcmseal.events import on_progress
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, burn
from dcmseal.media.open import OpenRequest, open_medium
from dcmseal.reader.isofiles import extract_iso
from tests.media.conftest import MediaEscrow, medium_files, write_series
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    try:
        yield reg
    finally:
        reg.close()


def _request(sources: Path, out: Path, escrow: MediaEscrow, **options: object) -> BurnRequest:
    return BurnRequest(
        sources=(str(sources),),
        out=out,
        operator="stream-tester",
        output_format=str(options.pop("output_format", "iso")),
        password=PASSWORD.encode(),
        escrow_certificate=escrow.certificate,
        label="STREAMED",
        iterations=FAST_ITERATIONS,
        **options,  # type: ignore[arg-type]
    )


def extract_iso_to(image: Path, dest: Path) -> Path:
    extract_iso(image, dest)
    return dest


def _fileset_bytes_on_disk(parent: Path) -> int:
    """Bytes of the medium's File-set (DICOMDIR and instances) in the burn's staging folders below ``parent``."""
    return sum(
        p.stat().st_size
        for staging in parent.glob(".*.staging")
        for p in (staging / "medium").rglob("*")
        if p.is_file() and (p.name == "DICOMDIR" or p.relative_to(staging / "medium").parts[0] == "DICOM")
    )


@pytest.mark.parametrize("count", [12, 40], ids=["sealed-here", "sealed-by-two-workers"])
def test_the_sealed_files_exist_only_inside_the_image(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow, count: int
) -> None:
    """12 files are sealed in this process; 40 by forked workers writing into the image's extents."""
    sources = write_series(tmp_path / "src", count, pixel_bytes=60_000 if count < 20 else 6_000)
    seen: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "write" and "on_disk" not in seen:
            seen["on_disk"] = _fileset_bytes_on_disk(tmp_path)
        seen[stage] = max(seen.get(stage, 0), done)

    result = burn(
        _request(tmp_path / "src", tmp_path / "m.iso", media_escrow),
        registry=registry,
        audit=FileSink(tmp_path / "audit.log"),
        handlers=[on_progress(progress)],
    )

    assert seen["on_disk"] == 0, seen  # placeholders only: the sealed bytes go straight into the image
    assert (
        seen["seal"] == len(result.files) + 1
    )  # every instance and the DICOMDIR, counted as they are sealed
    assert result.pbkdf2_derivations == 1
    [record] = registry.list_media()
    image_files = sum(
        p.stat().st_size for p in medium_files(extract_iso_to(tmp_path / "m.iso", tmp_path / "x"))
    )
    assert record.total_bytes == image_files  # the streamed files counted, as if they had been on disk
    opened = tmp_path / "opened"
    open_medium(
        OpenRequest(medium=tmp_path / "m.iso", out=opened, operator="t", passwords=(PASSWORD.encode(),)),
        audit=FileSink(tmp_path / "open-audit.log"),
    )
    by_uid = {dcmread(p).SOPInstanceUID: p for p in medium_files(opened) if p.name != "DICOMDIR"}
    assert {dcmread(p).SOPInstanceUID for p in sources} == set(by_uid)
    for source in sources:
        assert by_uid[dcmread(source).SOPInstanceUID].read_bytes()[128:] == source.read_bytes()[128:]


@pytest.mark.parametrize("count", [3, 40], ids=["sealed-here", "sealed-by-two-workers"])
def test_a_source_changed_during_the_burn_fails_it_and_leaves_nothing(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow, count: int
) -> None:
    sources = write_series(tmp_path / "src", count)

    changed: list[Path] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "write" and not changed:
            # The image is being written: every file was planned (its size fixed) already. The source is
            # staged as a hard link (zero preamble, nothing to convert), so the change reaches the burn.
            with open(sources[-1], "ab") as fp:
                fp.write(b"\0\0")
            changed.append(sources[-1])

    with pytest.raises(InputError, match="cannot seal") as info:
        burn(
            _request(tmp_path / "src", tmp_path / "m.iso", media_escrow),
            registry=registry,
            audit=FileSink(tmp_path / "audit.log"),
            handlers=[on_progress(progress)],
        )
    assert str(info.value).startswith(f"{sources[-1]}: cannot seal")  # the user's file, not its staged copy
    assert not (tmp_path / "m.iso").exists()
    assert list(tmp_path.glob(".*.staging")) == []
    assert registry.list_media() == []


def test_a_folder_medium_is_still_sealed_file_by_file(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    write_series(tmp_path / "src", 3)
    result = burn(
        _request(tmp_path / "src", tmp_path / "m", media_escrow, output_format="dir"),
        registry=registry,
        audit=FileSink(tmp_path / "audit.log"),
    )
    sealed = [
        p for p in medium_files(tmp_path / "m") if p.name not in ("README.TXT",) and "VIEWER" not in p.parts
    ]
    assert len([p for p in sealed if p.read_bytes()[:1] == b"\x30"]) == len(result.files) + 1
    shutil.rmtree(tmp_path / "m")
