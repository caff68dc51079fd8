"""USB media: a folder or mounted stick as the target, what --force may replace, FAT images, the registry.

A real FAT file system is the target where one can be had without a kernel driver: the FAT image of
``--format usb-image`` (made by mkfs.fat and mtools, checked with ``fsck.fat -n``, read back with mtools).
A mounted stick is stood in for by a real mount point (tmpfs, as root): what matters there is that the
target cannot be renamed, that its free space is checked first, and what dcmseal says when it is done.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmseal.audit import FileSink
from dcmseal.errors import InputError
from dcmseal.events import on_progress
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, BurnResult, burn
from dcmseal.media.fatimage import fat_layout
from dcmseal.media.open import OpenRequest, open_medium
from dcmseal.media.rekey import RekeyRequest, rekey
from dcmseal.media.target import (
    FAT_MAX_FILE_BYTES,
    MANIFEST_NAME,
    FileSystem,
    annex_r_notes,
    check_fits,
    file_system_of,
    mount_of,
    write_folder,
)
from dcmseal.part10 import SealPlan, UnsealPlan, seal_tree, unseal_tree
from dcmseal.reader.fat import is_fat_image
from tests.media.conftest import (
    MediaEscrow,
    medium_files,
    mounted_exfat,
    mounted_tmpfs,
    write_series,
)
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD, fast_kdf
from tests.peers.tools import require_tool, run_tool


@pytest.fixture
def study(tmp_path: Path) -> Path:
    write_series(tmp_path / "study", 3)
    return tmp_path / "study"


@pytest.fixture
def small_mount_point(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "small-stick", "256k") as point:
        yield point


def _burn(
    study: Path,
    out: Path,
    registry: Registry,
    escrow: MediaEscrow,
    *,
    output_format: str = "dir",
    force: bool = False,
) -> BurnResult:
    return burn(
        BurnRequest(
            sources=(str(study),),
            out=out,
            operator="usb-tester",
            output_format=output_format,
            password=PASSWORD.encode(),
            escrow_certificate=escrow.certificate,
            label="USB TEST",
            iterations=FAST_ITERATIONS,
            overwrite=force,
        ),
        registry=registry,
        audit=FileSink(out.parent / "audit.log"),
    )


def _recorded(registry: Registry) -> list[str]:
    return [m.medium_id for m in registry.list_media()]


def _manifest(folder: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads((folder / MANIFEST_NAME).read_bytes())
    return document


# --- folders: empty, foreign, ours --------------------------------------------------------------------------


def test_an_empty_folder_is_a_target_without_force_and_the_manifest_lists_every_file(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    out = tmp_path / "empty"
    out.mkdir()

    result = _burn(study, out, registry, media_escrow)

    manifest = _manifest(out)
    listed = {f["path"] for f in manifest["files"]}  # type: ignore[attr-defined]
    assert listed == {p.relative_to(out).as_posix() for p in medium_files(out)}
    assert "DICOMDIR" in listed
    assert manifest["complete"] is True
    assert manifest["medium_id"] == result.medium_id
    assert _recorded(registry) == [result.medium_id]
    assert sorted(p.name for p in tmp_path.glob(".*.staging")) == []


@pytest.mark.parametrize("force", [False, True])
def test_a_users_file_is_never_deleted_nor_written_beside(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow, force: bool
) -> None:
    out = tmp_path / "holiday"
    out.mkdir()
    (out / "photo.jpg").write_bytes(b"\xff\xd8 a photo")
    (out / "letters").mkdir()

    with pytest.raises(InputError, match=r"photo\.jpg") as refused:
        _burn(study, out, registry, media_escrow, force=force)

    assert "did not write" in str(refused.value)
    assert "letters/" in str(refused.value)
    assert (out / "photo.jpg").read_bytes() == b"\xff\xd8 a photo"
    assert sorted(p.name for p in out.iterdir()) == ["letters", "photo.jpg"]
    assert _recorded(registry) == []


def test_force_replaces_only_what_dcmseal_wrote(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    out = tmp_path / "medium"
    first = _burn(study, out, registry, media_escrow)

    with pytest.raises(InputError, match=rf"holds medium {first.medium_id} written by dcmseal; use --force"):
        _burn(study, out, registry, media_escrow)
    second = _burn(study, out, registry, media_escrow, force=True)

    assert _manifest(out)["medium_id"] == second.medium_id
    assert {f["path"] for f in _manifest(out)["files"]} == {  # type: ignore[attr-defined]
        p.relative_to(out).as_posix() for p in medium_files(out)
    }
    # A file the user put there since, or one of ours the user changed: --force stops and names it.
    (out / "photo.jpg").write_bytes(b"a photo")
    with pytest.raises(InputError, match=r"photo\.jpg"):
        _burn(study, out, registry, media_escrow, force=True)
    (out / "photo.jpg").unlink()
    with (out / "README.TXT").open("ab") as readme:
        readme.write(b"my notes\r\n")
    with pytest.raises(InputError, match=r"changed since dcmseal wrote them .*README\.TXT"):
        _burn(study, out, registry, media_escrow, force=True)
    assert (out / "README.TXT").read_bytes().endswith(b"my notes\r\n")
    assert sorted(_recorded(registry)) == sorted([first.medium_id, second.medium_id])


def test_rekey_and_open_into_a_folder_follow_the_same_rule(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """Every folder dcmseal writes: a user's file stops it (with --force too), an empty folder does not."""
    medium = tmp_path / "medium"
    _burn(study, medium, registry, media_escrow)
    target = tmp_path / "target"
    target.mkdir()
    (target / "photo.jpg").write_bytes(b"a photo")

    with pytest.raises(InputError, match=r"photo\.jpg"):
        rekey(
            RekeyRequest(
                medium=medium,
                out=target,
                operator="usb-tester",
                passwords=(PASSWORD.encode(),),
                new_password=b"Harbor-lichen-Copper-saddle-whistle",
                iterations=FAST_ITERATIONS,
                output_format="dir",
                overwrite=True,
            ),
            registry=registry,
            audit=FileSink(tmp_path / "rekey-audit.log"),
        )
    with pytest.raises(InputError, match=r"photo\.jpg"):
        open_medium(
            OpenRequest(
                medium=medium,
                out=target,
                operator="usb-tester",
                passwords=(PASSWORD.encode(),),
                overwrite=True,
            ),
            audit=FileSink(tmp_path / "open-audit.log"),
        )
    assert sorted(p.name for p in target.iterdir()) == ["photo.jpg"]

    (target / "photo.jpg").unlink()
    rekeyed = rekey(
        RekeyRequest(
            medium=medium,
            out=target,
            operator="usb-tester",
            passwords=(PASSWORD.encode(),),
            new_password=b"Harbor-lichen-Copper-saddle-whistle",
            iterations=FAST_ITERATIONS,
            output_format="dir",
        ),
        registry=registry,
        audit=FileSink(tmp_path / "rekey-audit.log"),
    )
    assert _manifest(target)["medium_id"] == rekeyed.medium_id


def test_a_manifest_cannot_point_force_outside_its_folder(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """A stick's manifest is input: one that names ../ is not dcmseal's, so nothing there is ours."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "stick"
    out.mkdir()
    (out / "DICOMDIR").write_bytes(b"x")
    (out / MANIFEST_NAME).write_text(
        json.dumps(
            {
                "schema": "dcmseal.manifest/1",
                "complete": True,
                "files": [{"path": "../victim.txt", "size": 7, "sha256": None}, {"path": "DICOMDIR"}],
            }
        )
    )

    with pytest.raises(InputError, match=r"did not write .*DICOMDIR"):
        _burn(study, out, registry, media_escrow, force=True)

    assert victim.read_text() == "keep me"
    assert (out / "DICOMDIR").read_bytes() == b"x"


def test_an_image_output_is_a_file_not_a_folder(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    folder = tmp_path / "discs"
    folder.mkdir()
    (folder / "old.iso").write_bytes(b"keep")

    for output_format in ("iso", "usb-image"):
        with pytest.raises(InputError, match="is a folder"):
            _burn(study, folder, registry, media_escrow, output_format=output_format, force=True)

    assert (folder / "old.iso").read_bytes() == b"keep"
    assert _recorded(registry) == []


# --- a mount point (a stick) ----------------------------------------------------------------------------------


def test_a_mount_point_is_written_in_place_and_replaced_with_force(
    mount_point: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """The root of an empty stick needs no --force; with --force the old medium is replaced (no EBUSY)."""
    (mount_point / "System Volume Information").mkdir()  # what Windows leaves on every stick

    first = _burn(study, mount_point, registry, media_escrow)
    folder = (mount_point / first.files[0].file_id).parent
    (folder / ".DS_Store").write_bytes(b"what a Mac leaves in every folder it shows")
    second = _burn(study, mount_point, registry, media_escrow, force=True)

    assert _manifest(mount_point)["medium_id"] == second.medium_id
    assert (mount_point / "System Volume Information").is_dir()
    assert second.safe_to_remove is not None
    assert f"unmount (eject) {mount_point}" in second.safe_to_remove
    assert "tmpfs, not FAT16/FAT32" in " ".join(second.notes)
    assert sorted(_recorded(registry)) == sorted([first.medium_id, second.medium_id])
    assert (folder / ".DS_Store").exists()  # not ours: kept
    assert not [
        p for p in mount_point.rglob(".*") if p.name not in (MANIFEST_NAME, ".DS_Store")
    ]  # no temporary
    assert not list(mount_point.parent.glob(".*.staging"))


def test_an_exfat_stick_is_written_as_the_documented_extension_and_stays_clean(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """exFAT (how sticks over 32 GB come) through exfat-fuse on a loop device: a real removable file system."""
    fsck = require_tool("fsck.exfat", "exfatprogs")
    with mounted_exfat(tmp_path / "exfat.img", tmp_path / "stick") as (stick, image):
        assert file_system_of(stick).is_exfat
        first = _burn(study, stick, registry, media_escrow)
        second = _burn(study, stick, registry, media_escrow, force=True)
        opened = open_medium(
            OpenRequest(
                medium=stick, out=tmp_path / "opened", operator="usb-tester", passwords=(PASSWORD.encode(),)
            ),
            audit=FileSink(tmp_path / "open-audit.log"),
        )
        listed = {f["path"] for f in _manifest(stick)["files"]}  # type: ignore[attr-defined]
        on_stick = {p.relative_to(stick).as_posix() for p in medium_files(stick)}

    assert any("exFAT is a dcmseal extension" in note for note in second.notes)
    assert second.safe_to_remove is not None
    assert "synced to /dev/loop" in second.safe_to_remove
    assert listed == on_stick
    assert opened.failed == ()
    assert sum(1 for f in opened.files if f.status == "opened") == len(second.files) + 1
    assert sorted(_recorded(registry)) == sorted([first.medium_id, second.medium_id])
    checked = run_tool([fsck, "-n", str(image)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("output_format", ["iso", "usb-image"])
def test_an_image_burned_onto_a_stick_is_staged_off_it(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow, output_format: str
) -> None:
    """Plaintext copies never touch the stick (deleted data lingers on flash); only the finished image goes there."""
    seen_on_stick: list[list[str]] = []
    with mounted_exfat(tmp_path / "exfat.img", tmp_path / "stick") as (stick, _image):
        out = stick / "disc.img"

        def look(stage: str, _done: int, _total: int) -> None:
            if stage in ("collect", "conform"):
                seen_on_stick.append(sorted(p.name for p in stick.rglob("*")))

        result = burn(
            BurnRequest(
                sources=(str(study),),
                out=out,
                operator="usb-tester",
                output_format=output_format,
                password=PASSWORD.encode(),
                escrow_certificate=media_escrow.certificate,
                iterations=FAST_ITERATIONS,
            ),
            registry=registry,
            audit=FileSink(tmp_path / "audit.log"),
            handlers=[on_progress(look)],
        )
        left = sorted(p.name for p in stick.rglob("*"))
        opened = open_medium(
            OpenRequest(
                medium=out, out=tmp_path / "opened", operator="usb-tester", passwords=(PASSWORD.encode(),)
            ),
            audit=FileSink(tmp_path / "open-audit.log"),
        )

    assert seen_on_stick
    assert all(names == [] for names in seen_on_stick)
    assert left == ["disc.img"]
    assert result.safe_to_remove is not None
    assert opened.failed == ()
    assert sum(1 for f in opened.files if f.status == "opened") == len(result.files) + 1


def test_seal_and_unseal_write_onto_an_exfat_stick(tmp_path: Path, study: Path) -> None:
    """exfat-fuse opens unnamed files (O_TMPFILE) but cannot link them in (EPERM): outputs are staged instead."""
    sources = sorted(study.iterdir())
    with mounted_exfat(tmp_path / "exfat.img", tmp_path / "stick") as (stick, _image):
        plan = SealPlan(password=PASSWORD.encode(), kdf=fast_kdf())
        one = seal_tree([sources[0]], stick / "one", plan, workers=1)  # one file: written on its own
        sealed = seal_tree([study], stick / "sealed", plan, workers=1)  # several: written as a batch
        opened = unseal_tree(
            [stick / "sealed"], stick / "opened", UnsealPlan(passwords=(PASSWORD.encode(),)), workers=1
        )
        names = sorted(p.relative_to(stick).as_posix() for p in stick.rglob("*"))
        same = [(stick / "opened" / s.name).read_bytes()[132:] == s.read_bytes()[132:] for s in sources]

    assert one.failed == ()
    assert sealed.failed == ()
    assert opened.failed == ()
    assert all(same)
    assert names == [
        "one",
        f"one/{sources[0].name}",
        "opened",
        *[f"opened/{s.name}" for s in sources],
        "sealed",
        *[f"sealed/{s.name}" for s in sources],
    ]


def test_a_stick_too_small_is_refused_before_a_byte_is_written(
    small_mount_point: Path, tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    large = write_series(tmp_path / "large", 8, pixel_bytes=60_000)  # 480 kB into a 256 KiB stick

    with pytest.raises(InputError, match=r"the medium needs .* bytes but .* free"):
        _burn(large[0].parent, small_mount_point, registry, media_escrow)

    assert list(small_mount_point.iterdir()) == []
    assert _recorded(registry) == []


def test_force_on_a_stick_without_room_for_both_media_removes_the_old_one_first(
    mount_point: Path, tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """8 MiB: an old medium of about 3 MB and a new one of about 5.5 MB do not fit side by side."""
    small = write_series(tmp_path / "small", 50, pixel_bytes=60_000)[0].parent
    large = write_series(tmp_path / "large", 90, pixel_bytes=60_000)[0].parent
    first = _burn(small, mount_point, registry, media_escrow)

    second = _burn(large, mount_point, registry, media_escrow, force=True)

    assert _manifest(mount_point)["medium_id"] == second.medium_id
    assert len(second.files) == 90
    assert {f["path"] for f in _manifest(mount_point)["files"]} == {  # type: ignore[attr-defined]
        p.relative_to(mount_point).as_posix() for p in medium_files(mount_point)
    }
    assert sorted(_recorded(registry)) == sorted([first.medium_id, second.medium_id])


def test_a_stick_that_fills_up_while_written_keeps_its_old_medium(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """Bytes to spare but too few directory entries (tmpfs nr_inodes, as a FAT16 root fills up): the write
    fails midway with ENOSPC; the old medium is left as it was, the new one is neither there nor recorded."""
    with mounted_tmpfs(tmp_path / "stick", "8m,nr_inodes=40") as stick:
        first = _burn(study, stick, registry, media_escrow)
        before = {p.relative_to(stick).as_posix(): p.read_bytes() for p in stick.rglob("*") if p.is_file()}
        larger = write_series(tmp_path / "larger", 30)[0].parent

        with pytest.raises(InputError, match="cannot write the medium: No space left on device"):
            _burn(larger, stick, registry, media_escrow, force=True)

        after = {p.relative_to(stick).as_posix(): p.read_bytes() for p in stick.rglob("*") if p.is_file()}
    assert after == before
    assert _recorded(registry) == [first.medium_id]


def test_file_system_of_a_mount_point(mount_point: Path) -> None:
    found = file_system_of(mount_point / "not-yet" / "there")

    assert found.mount_point == mount_point
    assert found.fs_type == "tmpfs"
    assert found.free_bytes is not None
    assert 0 < found.free_bytes <= 8 * 1024 * 1024
    assert not found.is_fat


#: Lines of /proc/self/mountinfo as Linux writes them for a FAT32 stick, an exFAT stick (kernel driver and
#: FUSE) and a folder on the station's disk; a space in a mount point is escaped as \040.
MOUNTINFO = "\n".join(
    [
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
        "85 22 8:17 / /media/clerk/NO\\040NAME rw,nosuid,nodev,relatime shared:45 - vfat /dev/sdb1 rw,fmask=0022",
        "86 22 8:33 / /media/usb rw,nosuid,nodev,relatime shared:46 - exfat /dev/sdc1 rw,fmask=0022",
        "87 22 0:52 / /mnt/big rw,nosuid,nodev,relatime shared:47 - fuseblk.exfat /dev/sdd1 rw,user_id=0",
    ]
)


@pytest.mark.parametrize(
    ("path", "mount_point", "fs_type", "source"),
    [
        ("/media/clerk/NO NAME/DICOM", "/media/clerk/NO NAME", "vfat", "/dev/sdb1"),
        ("/media/usb", "/media/usb", "exfat", "/dev/sdc1"),
        ("/mnt/big/x", "/mnt/big", "fuseblk.exfat", "/dev/sdd1"),
        ("/media/usb2", "/", "ext4", "/dev/sda1"),  # a name that only starts like a mount point
    ],
)
def test_the_mount_of_a_path(path: str, mount_point: str, fs_type: str, source: str) -> None:
    assert mount_of(Path(path), MOUNTINFO) == (Path(mount_point), fs_type, source)


def test_fat_has_the_4_gib_limit_and_exfat_is_the_documented_extension() -> None:
    def on(fs_type: str) -> FileSystem:
        return FileSystem(
            mount_point=Path("/media/usb"),
            fs_type=fs_type,
            source="/dev/sdb1",
            free_bytes=None,
            cluster_bytes=4096,
        )

    assert on("vfat").is_fat
    assert on("vfat").max_file_bytes == FAT_MAX_FILE_BYTES
    assert on("exfat").is_exfat
    assert on("fuseblk.exfat").is_exfat
    assert on("exfat").max_file_bytes is None
    assert not on("ext4").is_fat


@pytest.mark.parametrize(
    ("fs_type", "out", "expected"),
    [
        ("vfat", "/media/usb", []),  # the root of a FAT stick: as Annex R has it
        ("vfat", "/media/usb/case1", ["not the root of the stick (/media/usb)"]),
        ("exfat", "/media/usb", ["exFAT is a dcmseal extension"]),
        ("ext4", "/media/usb", ["is ext4, not FAT16/FAT32"]),
        ("ext4", "/media/usb/exports", []),  # a folder on a disk is no USB medium
    ],
)
def test_what_departs_from_annex_r_is_said(fs_type: str, out: str, expected: list[str]) -> None:
    file_system = FileSystem(
        mount_point=Path("/media/usb"),
        fs_type=fs_type,
        source="/dev/sdb1",
        free_bytes=None,
        cluster_bytes=4096,
    )

    notes = annex_r_notes(file_system, Path(out))

    assert len(notes) == len(expected)
    for note, fragment in zip(notes, expected, strict=True):
        assert fragment in note


def test_a_new_folder_on_another_file_system_is_copied_and_a_failed_commit_leaves_nothing(
    mount_point: Path, tmp_path: Path
) -> None:
    """The staging folder is on the station's disk, the output on the stick: files are copied, never renamed
    across; a failure of the registry record (before_commit) leaves no file and no folder behind."""
    built = tmp_path / "built"
    (built / "DICOM").mkdir(parents=True)
    (built / "DICOMDIR").write_bytes(b"d" * 100)
    (built / "DICOM" / "IM1").write_bytes(b"i" * 5000)
    out = mount_point / "new"

    def refuse() -> None:
        raise InputError("the registry refuses")

    with pytest.raises(InputError, match="the registry refuses"):
        write_folder(built, out, overwrite=False, medium_id="DCMS-TEST", before_commit=refuse)
    assert not out.exists()
    assert sorted(mount_point.iterdir()) == []

    written = write_folder(built, out, overwrite=False, medium_id="DCMS-TEST")
    assert written.size_bytes == 5100
    assert (out / "DICOM" / "IM1").read_bytes() == b"i" * 5000
    assert (built / "DICOMDIR").exists()  # copied, not moved: the staging folder is removed by its owner
    assert {e.path for e in written.entries} == {"DICOMDIR", "DICOM/IM1"}


def test_the_fat_limits_are_checked_before_writing(tmp_path: Path) -> None:
    """PS3.12 Annex R media are FAT16/FAT32: no file of 4 GiB or more; and all files in whole clusters."""
    with pytest.raises(InputError, match=r"DICOM/IM1 is 4,294,967,296 bytes: .* holds no file over"):
        check_fits(
            [("DICOMDIR", 10), ("DICOM/IM1", FAT_MAX_FILE_BYTES + 1)],
            where=tmp_path,
            max_file_bytes=FAT_MAX_FILE_BYTES,
            free_bytes=None,
            cluster_bytes=4096,
            fs_name="vfat",
        )
    # Three files of one byte take three clusters.
    assert (
        check_fits(
            [("a", 1), ("b", 1), ("c", 1)],
            where=tmp_path,
            max_file_bytes=None,
            free_bytes=12288,
            cluster_bytes=4096,
            fs_name="vfat",
        )
        == 12288
    )
    with pytest.raises(InputError, match="needs 12,288 bytes but"):
        check_fits(
            [("a", 1), ("b", 1), ("c", 1)],
            where=tmp_path,
            max_file_bytes=None,
            free_bytes=12287,
            cluster_bytes=4096,
            fs_name="vfat",
        )


# --- the registry: a medium is recorded only when it is in place -----------------------------------------------


def test_a_burn_that_fails_while_its_files_take_their_names_is_not_in_the_registry(
    tmp_path: Path,
    study: Path,
    registry: Registry,
    media_escrow: MediaEscrow,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record is written when every file is on the target; a failure after that takes it back."""
    out = tmp_path / "stick"
    out.mkdir()
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src: str | Path, dst: str | Path) -> None:
        if str(src).endswith(".dcmseal-part"):
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(5, "Input/output error (the stick was pulled)")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)

    with pytest.raises(InputError, match="cannot write the medium: Input/output error"):
        _burn(study, out, registry, media_escrow)

    assert _recorded(registry) == []
    assert not [p for p in out.rglob("*.dcmseal-part")]
    # What the cut write left is known as dcmseal's: --force clears it, nothing else is needed.
    assert _manifest(out)["complete"] is False
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.raises(InputError, match="interrupted"):
        _burn(study, out, registry, media_escrow)
    result = _burn(study, out, registry, media_escrow, force=True)
    assert _recorded(registry) == [result.medium_id]
    assert _manifest(out)["complete"] is True


# --- the FAT image ----------------------------------------------------------------------------------------------


def test_a_usb_image_is_a_clean_fat_file_system_that_opens(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    fsck = require_tool("fsck.fat", "dosfstools")
    mdir = require_tool("mdir", "mtools")
    image = tmp_path / "stick.img"

    result = _burn(study, image, registry, media_escrow, output_format="usb-image")

    assert is_fat_image(image)
    checked = run_tool([fsck, "-n", str(image)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listing = subprocess.run(
        [mdir, "-b", "-/", "-i", str(image), "::/"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    names = {line.removeprefix("::/") for line in listing.split()}
    assert {"DICOMDIR", "README.TXT", "INDEX.HTM"} <= names
    assert {f.file_id for f in result.files} <= names
    boot = image.read_bytes()[:512]
    assert boot[54:59] == b"FAT16"  # a small medium: FAT16, as Annex R allows
    assert _recorded(registry) == [result.medium_id]

    opened = open_medium(
        OpenRequest(
            medium=image, out=tmp_path / "opened", operator="usb-tester", passwords=(PASSWORD.encode(),)
        ),
        audit=FileSink(tmp_path / "open-audit.log"),
    )
    assert opened.failed == ()
    assert sum(1 for f in opened.files if f.status == "opened") == len(result.files) + 1  # and the DICOMDIR


def test_force_replaces_an_image_but_never_another_file(
    tmp_path: Path, study: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    notes = tmp_path / "notes.img"
    notes.write_bytes(b"not an image at all" * 100)

    with pytest.raises(InputError, match="already exists"):
        _burn(study, notes, registry, media_escrow, output_format="usb-image")
    with pytest.raises(InputError, match="is not a FAT image"):
        _burn(study, notes, registry, media_escrow, output_format="usb-image", force=True)
    assert notes.read_bytes() == b"not an image at all" * 100

    image = tmp_path / "stick.img"
    first = _burn(study, image, registry, media_escrow, output_format="usb-image")
    second = _burn(study, image, registry, media_escrow, output_format="usb-image", force=True)
    assert first.medium_id != second.medium_id
    assert is_fat_image(image)


def test_the_fat_layout_grows_from_fat16_to_fat32() -> None:
    """Up to 65,524 clusters FAT16 (of at most 32 KiB: about 2 GB), FAT32 beyond, every file in whole clusters."""
    small = fat_layout([1000] * 10, [3, 10])
    assert (small.fat_bits, small.cluster_bytes) == (16, 2048)
    large = fat_layout([50_000_000] * 60, [1, 60])  # 3 GB
    assert large.fat_bits == 32
    assert large.image_bytes > 3_000_000_000
