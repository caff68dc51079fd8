"""UDF-only images through 7-Zip: a member 7z cannot read fails alone, links and unsafe names are never read,
and without 7z the image is refused with a line that says what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcmseal.audit import FileSink
from dcmseal.errors import InputError
from dcmseal.media.open import OpenRequest, open_medium
from dcmseal.reader import open_archive
from dcmseal.reader.udf import parse_listing
from dcmseal.scan import scan_paths
from tests.foreign.corpus import ForeignMedium

_LISTING = """\
Path = DICOM/IM1
Folder = -
Size = 1234
Packed Size = 2048
Attributes = A -rw-r--r--

Path = DICOM
Folder = +
Size =
Attributes = D drwxr-xr-x

Path = DICOM/LINK
Folder = -
Size = 11
Attributes = A lrwxrwxrwx
Symbolic Link = /etc/passwd

Path = ../escape
Folder = -
Size = 3
"""


def test_the_technical_listing_is_parsed_with_folders_and_links() -> None:
    entries = {e.path: e for e in parse_listing(_LISTING)}

    assert set(entries) == {"DICOM/IM1", "DICOM", "DICOM/LINK", "../escape"}
    assert (entries["DICOM/IM1"].size, entries["DICOM/IM1"].is_dir, entries["DICOM/IM1"].symlink) == (
        1234,
        False,
        False,
    )
    assert entries["DICOM"].is_dir
    assert entries["DICOM/LINK"].symlink
    assert entries["../escape"].size == 3


def _image_offset(image: bytes, source: Path) -> int:
    """Where the file ``source`` starts in the image (its whole content is unique: its SOP Instance UID)."""
    at = image.find(source.read_bytes())
    assert at > 0
    return at


def test_a_member_7z_cannot_read_fails_alone(
    foreign_corpus: dict[str, ForeignMedium], tmp_path: Path
) -> None:
    """The image cut in the middle of its last DICOM file: that file fails (one line), the others are opened."""
    medium = foreign_corpus["udf-only"]
    image = medium.path.read_bytes()
    staging = medium.path.parent / "udf-only"
    dicom = {name for name, status in medium.expected.items() if status == "copied"}
    offsets = {name: _image_offset(image, staging / name) for name in dicom}
    last = max(offsets, key=lambda n: offsets[n])
    cut = tmp_path / "cut.img"
    cut.write_bytes(image[: offsets[last] + (staging / last).stat().st_size // 2])

    result = open_medium(
        OpenRequest(medium=cut, out=tmp_path / "opened", operator="udf-tester"),
        audit=FileSink(tmp_path / "audit.log"),
    )

    found = {f.path: f for f in result.files}
    assert found[last].status == "failed"
    reason = found[last].reason or ""
    assert "7z could not read it" in reason or "bytes, it holds" in reason, reason
    assert "\n" not in reason
    assert {n for n in dicom if found[n].status == "copied"} == dicom - {last}
    report = {f.path: f for f in scan_paths([cut], workers=1).files}
    assert "container.unreadable" in report[last].codes()
    assert all(report[n].kind == "dicom" for n in dicom - {last})


def test_without_7z_a_udf_only_image_is_refused_saying_what_to_install(
    foreign_corpus: dict[str, ForeignMedium], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no 7z on it

    with pytest.raises(InputError) as refused, open_archive(foreign_corpus["udf-only"].path):
        pass

    assert "apt-get install p7zip-full" in str(refused.value)
    assert "\n" not in str(refused.value)
