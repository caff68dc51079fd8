"""ISO 9660 Level 1 (+ UDF) images: names as PS3.12 wants them, checked with isoinfo, xorriso and our reader."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pycdlib
import pytest

from dcmseal.errors import InputError, ResourceLimitError
from dcmseal.media.iso import sanitize_volume_id, write_iso
from dcmseal.reader.iso import is_iso_image
from dcmseal.reader.isofiles import IsoEntry, extract_iso, list_iso
from dcmseal.reader.medium import medium_as_folder
from dcmseal.reader.zipfiles import extract_zip
from tests.peers.tools import run_tool

MIB = 1024 * 1024


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and directory (None) under ``root``, by relative POSIX path."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in dirnames:
            found[(here / name).relative_to(root).as_posix()] = None
        for name in filenames:
            found[(here / name).relative_to(root).as_posix()] = (here / name).read_bytes()
    return found


def _make_writable(root: Path) -> None:
    """xorriso restores ISO 9660 permissions (read-only without Rock Ridge); let tmp_path clean up."""
    for dirpath, _dirnames, _filenames in os.walk(root):
        os.chmod(dirpath, stat.S_IRWXU)


def _no_leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


# --- writing, checked by other programs ---------------------------------------------------------------------


@pytest.mark.interop
def test_isoinfo_sees_level1_names_and_no_joliet_nor_rock_ridge(
    staged_fileset: Path, tmp_path: Path, isoinfo_bin: str
) -> None:
    out = tmp_path / "out.iso"
    summary = write_iso(staged_fileset, out, volume_id="dcmseal test disc", udf=False)

    assert summary.path == out
    assert summary.size == out.stat().st_size
    assert summary.file_count == 7
    assert summary.udf is False

    listing = run_tool([isoinfo_bin, "-l", "-i", str(out)])
    assert listing.returncode == 0, listing.stderr
    names = set(re.findall(r"\]\s+(\S+)\s*$", listing.stdout.decode(), flags=re.MULTILINE))
    assert {"DICOMDIR.;1", "README.TXT;1", "INDEX.HTM;1", "DICOM", "PAT00001", "IM000001.;1"} <= names
    # PS3.12 F.3 warns of tools that append ";1" twice; and nothing lowercase, no Joliet/RR alternate names.
    assert not [n for n in names if n.count(";") > 1 or n != n.upper()]
    assert "Directory listing of /DICOM/PAT00001/STU00001/SER00001/" in listing.stdout.decode()

    info = run_tool([isoinfo_bin, "-d", "-i", str(out)]).stdout.decode()
    assert "NO Joliet present" in info
    assert "NO Rock Ridge present" in info
    assert "Volume id: DCMSEAL_TEST_DISC" in info


@pytest.mark.interop
def test_xorriso_extracts_byte_identical_files(
    staged_fileset: Path, tmp_path: Path, xorriso_bin: str
) -> None:
    out = tmp_path / "out.iso"
    write_iso(staged_fileset, out, volume_id="DICOM", udf=False)
    extracted = tmp_path / "xorriso"

    result = run_tool([xorriso_bin, "-osirrox", "on", "-indev", str(out), "-extract", "/", str(extracted)])
    try:
        assert result.returncode == 0, result.stderr
        assert _tree(extracted) == _tree(staged_fileset)
    finally:
        _make_writable(extracted)


@pytest.mark.interop
def test_udf_bridge_holds_the_same_tree(staged_fileset: Path, tmp_path: Path, isoinfo_bin: str) -> None:
    out = tmp_path / "dvd.iso"
    summary = write_iso(staged_fileset, out, volume_id="DVD", udf=True)
    assert summary.udf is True

    # ECMA-167 Volume Recognition Sequence right after the ISO 9660 descriptors: BEA01, NSR02/03, TEA01.
    head = out.read_bytes()[16 * 2048 : 40 * 2048]
    assert b"BEA01" in head
    assert b"NSR02" in head or b"NSR03" in head
    assert b"TEA01" in head

    iso = pycdlib.PyCdlib()
    iso.open(str(out))
    try:
        assert iso.has_udf()
        assert not iso.has_joliet()
        assert not iso.has_rock_ridge()
        for relative, content in _tree(staged_fileset).items():
            if content is None:
                assert iso.get_record(udf_path=f"/{relative}").is_dir()
                continue
            buffer = io.BytesIO()
            iso.get_file_from_iso_fp(buffer, udf_path=f"/{relative}")
            assert buffer.getvalue() == content, relative
        udf_root_names = {entry.file_identifier().decode() for entry in iso.list_children(udf_path="/")}
        assert udf_root_names == {"DICOM", "DICOMDIR", "README.TXT", "INDEX.HTM"}
    finally:
        iso.close()

    # The ISO 9660 tree is still there for readers that only know ISO 9660 (PS3.12 Annex P).
    info = run_tool([isoinfo_bin, "-d", "-i", str(out)]).stdout.decode()
    assert "CD-ROM is in ISO 9660 format" in info
    assert "NO Joliet present" in info


def test_without_udf_there_is_no_udf_tree(staged_fileset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cd.iso"
    write_iso(staged_fileset, out, volume_id="CD", udf=False)
    assert b"BEA01" not in out.read_bytes()[16 * 2048 : 40 * 2048]


@pytest.mark.parametrize("udf", [False, True])
def test_list_and_extract_round_trip(staged_fileset: Path, tmp_path: Path, udf: bool) -> None:
    out = tmp_path / "out.iso"
    write_iso(staged_fileset, out, volume_id="RT", udf=udf)

    entries = list_iso(out)
    by_path = {e.iso_path: e for e in entries}
    assert by_path["/DICOMDIR.;1"] == IsoEntry(
        iso_path="/DICOMDIR.;1", size=(staged_fileset / "DICOMDIR").stat().st_size, is_dir=False
    )
    assert by_path["/README.TXT;1"].relative_path.as_posix() == "README.TXT"
    assert by_path["/DICOM/PAT00001"].is_dir
    deepest = "/DICOM/PAT00001/STU00001/SER00002/IM000001.;1"
    assert by_path[deepest].size == 70_000
    assert by_path[deepest].relative_path.as_posix() == "DICOM/PAT00001/STU00001/SER00002/IM000001"
    assert {e.relative_path.as_posix() for e in entries} == set(_tree(staged_fileset))

    dest = tmp_path / "extracted"
    files = extract_iso(out, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in files) == sorted(
        k for k, v in _tree(staged_fileset).items() if v is not None
    )
    assert _tree(dest) == _tree(staged_fileset)


class _InMemory:
    """Reserved files whose bytes exist only in memory, written into the open image by :meth:`fill`."""

    def __init__(self, files: dict[Path, bytes]) -> None:
        self.files = files
        self.filled: list[Path] = []

    def sizes(self) -> dict[Path, int]:
        return {path: len(data) for path, data in self.files.items()}

    def fill(self, fd: int, offsets: Mapping[Path, int]) -> None:
        for path, offset in offsets.items():
            os.pwrite(fd, self.files[path], offset)
            self.filled.append(path)


@pytest.mark.parametrize("udf", [False, True])
def test_reserved_files_go_in_with_their_folders_as_if_they_were_there(
    staged_fileset: Path, tmp_path: Path, udf: bool
) -> None:
    memory = _InMemory(
        {
            staged_fileset / "DICOM" / "PAT00001" / "STU00001" / "SER00002" / "IM000009": b"\x30" * 3000,
            staged_fileset / "DICOM" / "NEWPAT" / "NEWSTU" / "IM000001": os.urandom(5000),
            staged_fileset / "EXTRA.TXT": b"",
        }
    )
    out = tmp_path / "out.iso"
    summary = write_iso(
        staged_fileset, out, volume_id="ST", udf=udf, reserved=memory.sizes(), fill=memory.fill
    )

    expected = _tree(staged_fileset)
    for path, data in memory.files.items():
        relative = path.relative_to(staged_fileset)
        expected[relative.as_posix()] = data
        for parent in relative.parents[:-1]:
            expected[parent.as_posix()] = None
        assert memory.filled.count(path) == 1
        assert not path.exists()  # nothing was written to disk for it
    assert summary.file_count == len([v for v in expected.values() if v is not None])
    dest = tmp_path / "extracted"
    extract_iso(out, dest)
    assert _tree(dest) == expected


@pytest.mark.parametrize(
    ("relative", "message"),
    [("DICOM", "a folder where a file is planned"), ("README.TXT/IM1", "a file where a folder is planned")],
)
def test_a_reserved_file_cannot_take_the_place_of_a_folder_or_file(
    staged_fileset: Path, tmp_path: Path, relative: str, message: str
) -> None:
    memory = _InMemory({staged_fileset / relative: b"x"})
    with pytest.raises(ValueError, match=message):
        write_iso(
            staged_fileset,
            tmp_path / "out.iso",
            volume_id="ST",
            udf=False,
            reserved=memory.sizes(),
            fill=memory.fill,
        )
    assert not (tmp_path / "out.iso").exists()


def test_progress_is_reported_up_to_the_total(staged_fileset: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    write_iso(
        staged_fileset,
        tmp_path / "out.iso",
        volume_id="P",
        udf=False,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1][0] == calls[-1][1]


def test_seven_path_components_are_accepted(tmp_path: Path) -> None:
    # ECMA-119 §6.8.2.1: 8 levels with the root as level 1; pycdlib counts the file as a level.
    stage = tmp_path / "stage"
    deepest = stage.joinpath(*(f"L{i}" for i in range(2, 8)))
    deepest.mkdir(parents=True)
    (deepest / "IM000001").write_bytes(b"x")
    out = tmp_path / "deep.iso"
    write_iso(stage, out, volume_id="DEEP", udf=True)
    assert [e.iso_path for e in list_iso(out)][-1] == "/L2/L3/L4/L5/L6/L7/IM000001.;1"


@pytest.mark.parametrize(
    ("relative", "is_dir"),
    [
        ("im000001", False),  # lowercase
        ("IM0000001", False),  # 9 characters
        ("IM-00001", False),  # not a d-character
        ("REPORT.HTML", False),  # extension longer than 3
        ("A.B.C", False),  # two dots
        ("DICOM/sub", True),  # lowercase directory
        ("DIR.EXT", True),  # Level 1 directories have no extension
        ("L2/L3/L4/L5/L6/L7/L8/L9", True),  # a directory 9 levels down (root = 1)
        ("L2/L3/L4/L5/L6/L7/L8/IM000001", False),  # 8 components: pycdlib counts the file as a level
    ],
)
def test_non_conformant_names_are_refused(tmp_path: Path, relative: str, is_dir: bool) -> None:
    stage = tmp_path / "stage"
    (stage / "DICOM").mkdir(parents=True)
    (stage / "DICOMDIR").write_bytes(b"d")
    target = stage / relative
    if is_dir:
        target.mkdir(parents=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")
    out = tmp_path / "bad.iso"

    with pytest.raises(ValueError, match=re.escape(str(stage))) as info:
        write_iso(stage, out, volume_id="BAD", udf=False)
    assert target.name in str(info.value) or "path components" in str(info.value)
    assert not out.exists()
    assert _no_leftovers(tmp_path) == []


def test_symlinked_directories_are_refused(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (stage / "LINK").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="neither a regular file nor a directory"):
        write_iso(stage, tmp_path / "out.iso", volume_id="L", udf=False)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("dcmseal disc", "DCMSEAL_DISC"),
        ("Müller: CT 2024/05", "M_LLER__CT_2024_05"),
        ("", "DICOM"),
        ("!!!", "DICOM"),
        ("A" * 40, "A" * 32),
    ],
)
def test_volume_id_is_reduced_to_d_characters(label: str, expected: str) -> None:
    assert sanitize_volume_id(label) == expected


def test_existing_image_is_kept_unless_overwrite(staged_fileset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.iso"
    out.write_bytes(b"keep me")
    with pytest.raises(InputError, match="already exists") as info:
        write_iso(staged_fileset, out, volume_id="X", udf=False)
    assert info.value.path == out
    assert out.read_bytes() == b"keep me"

    write_iso(staged_fileset, out, volume_id="X", udf=False, overwrite=True)
    assert is_iso_image(out)
    assert _no_leftovers(tmp_path) == []


def test_image_inside_the_staging_tree_is_refused(staged_fileset: Path) -> None:
    with pytest.raises(ValueError, match="inside the staging directory"):
        write_iso(staged_fileset, staged_fileset / "OUT.ISO", volume_id="X", udf=False)


# Runs in a child with a file size limit, the closest to a full disk we get without root: writes past it
# fail with EFBIG (SIGXFSZ ignored), as they would with ENOSPC.
_FULL_DISK_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from dcmseal.errors import InputError
    from dcmseal.media.iso import write_iso

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
    try:
        write_iso(Path(sys.argv[1]), Path(sys.argv[2]), volume_id="FULL", udf=False)
    except InputError as exc:
        print(str(exc))
        sys.exit(0)
    sys.exit("no error raised")
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE semantics")
def test_write_failure_leaves_no_partial_image(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "DICOM").mkdir(parents=True)
    (stage / "DICOM" / "BIG").write_bytes(os.urandom(2 * MIB))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "full.iso"

    child = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(stage), str(out), str(MIB)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith(f"{out}: cannot write the ISO image:")
    assert list(out_dir.iterdir()) == []


_MEMORY_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dcmseal.media.iso import write_iso

    def hwm_kib():
        with open("/proc/self/status") as fp:
            return int(next(line for line in fp if line.startswith("VmHWM:")).split()[1])

    before = hwm_kib()
    summary = write_iso(Path(sys.argv[1]), Path(sys.argv[2]), volume_id="BIG", udf=True)
    print(before, hwm_kib(), summary.size)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS read from /proc/self/status")
def test_300_mib_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "DICOM").mkdir(parents=True)
    big = stage / "DICOM" / "IM000001"
    block = os.urandom(MIB)
    with open(big, "wb") as fp:
        for _ in range(300):
            fp.write(block)
    out = tmp_path / "big.iso"

    child = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(stage), str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    before_kib, after_kib, size = (int(v) for v in child.stdout.split())
    assert size >= 300 * MIB
    # The peak resident set may grow by the copy buffer and pycdlib's bookkeeping, never by the content.
    assert (after_kib - before_kib) * 1024 < 100 * 1000 * 1000, (before_kib, after_kib)
    with open(out, "rb") as fp:
        iso = pycdlib.PyCdlib()
        iso.open_fp(fp)
        try:
            with iso.open_file_from_iso(iso_path="/DICOM/IM000001.;1") as data:
                assert data.read(MIB) == block
        finally:
            iso.close()


# --- reading hostile or broken images -----------------------------------------------------------------------


@pytest.mark.parametrize(("udf", "keep"), [(False, 0.5), (True, 0.5), (False, 0.01)])
def test_truncated_image_is_an_input_error(
    staged_fileset: Path, tmp_path: Path, udf: bool, keep: float
) -> None:
    (staged_fileset / "DICOM" / "BIG").write_bytes(os.urandom(MIB))
    whole = tmp_path / "whole.iso"
    write_iso(staged_fileset, whole, volume_id="T", udf=udf)
    truncated = tmp_path / "truncated.iso"
    data = whole.read_bytes()
    truncated.write_bytes(data[: int(len(data) * keep)])
    dest = tmp_path / "dest"

    with pytest.raises(InputError) as listed:
        list_iso(truncated)
    assert listed.value.path == truncated
    assert "truncated" in str(listed.value)
    with pytest.raises(InputError) as extracted:
        extract_iso(truncated, dest)
    assert extracted.value.path == truncated
    assert not dest.exists() or list(dest.iterdir()) == []


def test_a_file_past_the_end_of_the_image_is_refused(staged_fileset: Path, tmp_path: Path) -> None:
    # The volume size field claims the cut image is whole: the per-file check must still notice.
    (staged_fileset / "DICOM" / "BIG").write_bytes(os.urandom(MIB))
    whole = tmp_path / "whole.iso"
    write_iso(staged_fileset, whole, volume_id="T", udf=False)
    data = bytearray(whole.read_bytes()[: -MIB // 2])
    blocks = len(data) // 2048
    pvd = 16 * 2048
    data[pvd + 80 : pvd + 88] = blocks.to_bytes(4, "little") + blocks.to_bytes(4, "big")
    cut = tmp_path / "cut.iso"
    cut.write_bytes(bytes(data))
    dest = tmp_path / "dest"

    with pytest.raises(InputError, match=r"truncated ISO image: /DICOM/BIG\.;1") as info:
        extract_iso(cut, dest)
    assert info.value.path == cut
    assert not dest.exists()


def test_not_an_image_is_an_input_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_bytes(os.urandom(64 * 1024))
    with pytest.raises(InputError, match="not a readable ISO 9660 image") as info:
        list_iso(junk)
    assert info.value.path == junk


def test_names_that_would_escape_are_refused(tmp_path: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1)
    iso.add_fp(io.BytesIO(b"evil"), 4, iso_path="/QQ.;1")
    clean = tmp_path / "clean.iso"
    iso.write(str(clean))
    iso.close()
    hostile = tmp_path / "hostile.iso"
    # "QQ.;1" becomes "...;1", which a careless reader would clean to "..".
    hostile.write_bytes(clean.read_bytes().replace(b"QQ", b".."))
    dest = tmp_path / "dest"

    with pytest.raises(InputError, match="unsafe as a path component") as info:
        extract_iso(hostile, dest)
    assert info.value.path == hostile
    assert not (tmp_path / "evil").exists()
    assert not dest.exists() or list(dest.iterdir()) == []


def test_extraction_never_overwrites(staged_fileset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.iso"
    write_iso(staged_fileset, out, volume_id="X", udf=False)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "README.TXT").write_bytes(b"mine")
    with pytest.raises(InputError, match="already exists"):
        extract_iso(out, dest)
    assert (dest / "README.TXT").read_bytes() == b"mine"
    assert [p.name for p in dest.iterdir()] == ["README.TXT"]


def test_extraction_limit(staged_fileset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.iso"
    write_iso(staged_fileset, out, volume_id="X", udf=False)
    with pytest.raises(ResourceLimitError, match="more than the limit of 1000"):
        extract_iso(out, tmp_path / "dest", max_total_bytes=1000)


# --- zip archives and media ---------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../evil", "DICOM/../../evil", "/tmp/evil", "..\\evil", "C:/evil"])
def test_zip_members_escaping_the_destination_are_refused(tmp_path: Path, evil: str) -> None:
    archive = _zip(tmp_path / "evil.zip", {"DICOM/IM1": b"fine", evil: b"evil"})
    work = tmp_path / "work"
    with pytest.raises(InputError, match="refusing the member") as info:
        medium_as_folder(archive, work)
    assert info.value.path == archive
    assert repr(evil) in str(info.value)
    assert not (tmp_path / "evil").exists()
    assert list(work.iterdir()) == []  # nothing extracted, not even the harmless member


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("LINK")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        extract_zip(archive, tmp_path / "dest")


def test_zip_bomb_is_refused_by_ratio(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"ZEROS": bytes(20 * MIB)})
    assert archive.stat().st_size < 100 * 1024
    work = tmp_path / "work"
    with pytest.raises(ResourceLimitError, match="expands") as info:
        medium_as_folder(archive, work)
    assert info.value.path == archive
    assert list(work.iterdir()) == []


def test_zip_is_refused_beyond_the_total(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {"A": os.urandom(3000)}, compression=zipfile.ZIP_STORED)
    with pytest.raises(ResourceLimitError, match="more than the limit of 2000"):
        medium_as_folder(archive, tmp_path / "work", max_total_bytes=2000)
    # Within the limits the same archive opens.
    root = medium_as_folder(archive, tmp_path / "work", max_total_bytes=4000)
    assert (root / "A").stat().st_size == 3000


def test_open_medium_by_kind(staged_fileset: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    assert medium_as_folder(staged_fileset, work) == staged_fileset

    image = tmp_path / "disc.bin"  # found by content, not by name
    write_iso(staged_fileset, image, volume_id="X", udf=True)
    root = medium_as_folder(image, work)
    assert root.parent == work
    assert _tree(root) == _tree(staged_fileset)

    archive = _zip(tmp_path / "usb.zip", {"DICOMDIR": b"d", "DICOM/IM1": b"one", "DICOM/": b""})
    root = medium_as_folder(archive, work)
    assert _tree(root) == {"DICOMDIR": b"d", "DICOM": None, "DICOM/IM1": b"one"}

    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(InputError, match="not a medium") as info:
        medium_as_folder(other, work)
    assert info.value.path == other
    with pytest.raises(InputError, match="no such file or folder"):
        medium_as_folder(tmp_path / "missing", work)
