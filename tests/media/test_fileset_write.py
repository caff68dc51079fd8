"""build_fileset's own write (hard links, no reload) gives the DICOMDIR pydicom's write gives, byte for byte."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.fileset import FileInstance, FileSet

from dcmseal.media import fileset as fileset_module
from dcmseal.media.fileset import build_fileset
from dcmseal.media.profiles import Profile
from tests.media.conftest import write_series

FILESET_UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def _sources(tmp_path: Path) -> list[Path]:
    # Two series of one study, plus pydicom's CT and MR samples (other patients, studies).
    series = write_series(tmp_path / "a", 40, pixel_bytes=256) + write_series(
        tmp_path / "b", 7, pixel_bytes=64
    )
    samples = [Path(str(get_testdata_file(name))) for name in ("CT_small.dcm", "MR_small.dcm")]
    return series + samples


def test_the_dicomdir_is_what_pydicoms_write_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = _sources(tmp_path)
    ours = build_fileset(
        sources, tmp_path / "ours", fileset_id="CMP", profile=Profile.CD, fileset_uid=FILESET_UID
    )
    # The same plan written by pydicom's FileSet.write (copies, then reloads the DICOMDIR).
    with monkeypatch.context() as patch:
        patch.setattr(fileset_module._PlanningFileSet, "write", FileSet.write)
        patch.setattr(
            fileset_module._PlanningFileSet,
            "add_source",
            _add_source_with_stage_link(fileset_module._PlanningFileSet.add_source),
        )
        theirs = build_fileset(
            sources, tmp_path / "theirs", fileset_id="CMP", profile=Profile.CD, fileset_uid=FILESET_UID
        )
    assert ours.dicomdir.read_bytes() == theirs.dicomdir.read_bytes()
    assert [(f.source, f.file_id) for f in ours.files] == [(f.source, f.file_id) for f in theirs.files]
    for planned in ours.files:
        assert planned.staged.read_bytes() == planned.source.read_bytes()


_AddSource = Callable[[Any, Dataset, Path], FileInstance]


def _add_source_with_stage_link(add_source: _AddSource) -> _AddSource:
    """pydicom's write copies each instance from its stage: give it the symbolic link it expects."""

    def linked(self: Any, ds: Dataset, source: Path) -> FileInstance:
        instance = add_source(self, ds, source)
        os.symlink(source.resolve(), instance.path)
        return instance

    return linked


def test_instances_are_linked_not_copied(tmp_path: Path) -> None:
    sources = write_series(tmp_path / "a", 5, pixel_bytes=256)
    plan = build_fileset(sources, tmp_path / "fs", profile=Profile.CD)
    for planned in plan.files:
        # Same filesystem here: a hard link to the source, no second copy of the bytes.
        assert os.path.samefile(planned.staged, planned.source)


def test_one_series_of_many_images_keeps_every_image(tmp_path: Path) -> None:
    """The keyed child index finds every image record of a large series (none merged, none lost)."""
    sources = write_series(tmp_path / "a", 300, pixel_bytes=16)
    plan = build_fileset(sources, tmp_path / "fs", profile=Profile.CD)
    assert len(plan.files) == 300
    assert len({f.file_id for f in plan.files}) == 300
    assert len({f.file_id[:-1] for f in plan.files}) == 1  # one patient / study / series


def test_planning_gives_the_garbage_collector_back_as_it_found_it(tmp_path: Path) -> None:
    sources = write_series(tmp_path / "a", 3, pixel_bytes=16)
    assert gc.isenabled()
    build_fileset(sources, tmp_path / "one", profile=Profile.CD)
    assert gc.isenabled()
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "leftover").write_bytes(b"x")
    with pytest.raises(ValueError, match="must be empty"):
        build_fileset(sources, tmp_path / "two", profile=Profile.CD)
    assert gc.isenabled()
    gc.disable()
    try:
        build_fileset(sources, tmp_path / "three", profile=Profile.CD)
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()


def test_a_failure_while_planning_turns_the_collector_back_on(tmp_path: Path) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM" * 10)
    with pytest.raises(Exception):  # noqa: B017, PT011 - whichever error: the point is the collector
        build_fileset([broken], tmp_path / "fs", profile=Profile.CD)
    assert gc.isenabled()
