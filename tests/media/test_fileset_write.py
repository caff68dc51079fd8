"""build_fileset's staging: hard links, every image of a large series, the garbage collector.

That the DICOMDIR is byte for byte pydicom's is tested in test_fileset_records.py.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from dcmseal.media.fileset import build_fileset
from dcmseal.media.profiles import Profile
from tests.media.conftest import write_series

FILESET_UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


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
