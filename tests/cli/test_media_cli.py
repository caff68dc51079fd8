"""Tests of `dcmseal burn`, `open` and `rekey`: JSON documents, what is printed, exit codes, bad input, disk full."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate, generate_frames

from dcmseal.audit import validate_message
from dcmseal.errors import DecryptionError
from tests.cli.conftest import Invoke, Subprocess
from tests.cli.runner import DCMSEAL, clean_environment
from tests.conftest import RsaIdentityFactory
from tests.media.conftest import (
    MediaEscrow,
    install_escrow,
    make_media_escrow,
    medium_files,
    mount_point,
    write_series,
)
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
MR_SMALL = pydicom_file("MR_small.dcm")
FAST = ("--iterations", str(FAST_ITERATIONS))
NEW_PASSWORD = "Harbor-lichen-Copper-saddle-whistle"
WRONG_PASSWORD = "Quartz-meadow-Falcon-ribbon-tundra"

__all__ = ["mount_point"]  # a fixture


@pytest.fixture(scope="session")
def cli_escrow(tmp_path_factory: pytest.TempPathFactory) -> MediaEscrow:
    return make_media_escrow(tmp_path_factory.mktemp("cli-media-escrow"))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_escrow: MediaEscrow) -> Path:
    """``$XDG_DATA_HOME/dcmseal`` in tmp_path, with the escrow identity installed as `keys init` leaves it."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    install_escrow(cli_escrow, home)
    return home / "dcmseal"


def _audit_lines(data_dir: Path) -> list[bytes]:
    log = data_dir / "audit.log"
    return log.read_bytes().splitlines() if log.exists() else []


def _staging(parent: Path) -> list[Path]:
    return sorted(parent.glob(".*.staging"))


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --- JSON documents -------------------------------------------------------------------------------------------


def test_burn_json_document(invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path) -> None:
    out = tmp_path / "m.iso"

    result = invoke(
        "burn", CT_SMALL, MR_SMALL, "--out", out, "--password-file", password_file, *FAST, "--json"
    )

    assert result.code == 0, result.everything
    document = result.json()
    assert document["schema"] == "dcmseal.burn/1"
    assert document["format"] == "iso"
    assert document["profile"] == "STD-GEN-SEC-CD"
    assert document["summary"]["burned"] == 2
    assert document["summary"]["rejected"] == 0
    assert document["summary"]["pbkdf2_derivations"] == 1
    assert {f["status"] for f in document["files"]} == {"burned"}
    assert document["recipients"][0] == "password"
    assert "dcmseal escrow" in document["recipients"][1]
    assert "generated_password" not in document
    assert PASSWORD not in result.everything
    assert out.is_file()
    [line] = _audit_lines(data_dir)
    assert validate_message(line) == []
    assert b'csd-code="110106"' in line
    assert document["medium_id"].encode() in line


def test_open_json_document_in_a_fresh_process(
    invoke: Invoke, dcmseal: Subprocess, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    medium = tmp_path / "m.iso"
    assert (
        invoke("burn", CT_SMALL, MR_SMALL, "--out", medium, "--password-file", password_file, *FAST).code == 0
    )

    run = dcmseal("open", medium, "--out", tmp_path / "opened", "--password-file", password_file, "--json")

    assert run.code == 0, run.stderr
    document = run.json()
    assert document["schema"] == "dcmseal.open/1"
    assert document["kdf_derivations"] == 1
    # skipped: README.TXT and the viewer (INDEX.HTM, VIEWER/VIEWER.JS, VIEWER/VIEWER.CSS)
    assert document["summary"] == {**document["summary"], "opened": 3, "failed": 0, "skipped": 4}
    assert document["disagreements"] == []
    assert document["dicomdir_rebuilt"] is False
    opened = {f["sop_instance_uid"]: f["file_id"] for f in document["files"] if f["sop_instance_uid"]}
    for source in (CT_SMALL, MR_SMALL):
        expected = dcmread(source)
        assert dcmread(tmp_path / "opened" / opened[expected.SOPInstanceUID]) == expected
    _export, open_line = _audit_lines(data_dir)
    assert validate_message(open_line) == []
    assert b'csd-code="110107"' in open_line


def _burned_folder(invoke: Invoke, out: Path, password_file: Path) -> Path:
    """CT_small burned to a folder medium for the password in ``password_file``."""
    burned = invoke(
        "burn", CT_SMALL, "--out", out, "--format", "dir", "--password-file", password_file, *FAST
    )
    assert burned.code == 0, burned.everything
    return out


def test_rekey_json_document(invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path) -> None:
    medium = _burned_folder(invoke, tmp_path / "m", password_file)
    new_password_file = tmp_path / "new.txt"
    new_password_file.write_text(NEW_PASSWORD + "\n")

    result = invoke(
        "rekey",
        medium,
        "--out",
        tmp_path / "new",
        "--password-file",
        password_file,
        "--new-password-file",
        new_password_file,
        *FAST,
        "--json",
    )

    assert result.code == 0, result.everything
    document = result.json()
    assert document["schema"] == "dcmseal.rekey/1"
    assert document["format"] == "dir"
    assert document["files"] == 2  # the instance and the DICOMDIR
    assert document["recipients"][0] == "password"
    assert NEW_PASSWORD not in result.everything
    assert len(_audit_lines(data_dir)) == 2
    opened = invoke(
        "open",
        tmp_path / "new",
        "--out",
        tmp_path / "o",
        "--password-env",
        "NEWPW",
        env={"NEWPW": NEW_PASSWORD},
    )
    assert opened.code == 0, opened.everything


def test_rekey_applies_the_password_policy_to_the_new_password(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    """The escrow identity under ``data_dir`` lets the burn run; the new password meets seal's policy."""
    medium = _burned_folder(invoke, tmp_path / "m", password_file)
    weak = tmp_path / "weak.txt"
    weak.write_text("19700101\n")
    base = ("rekey", medium, "--password-file", password_file, "--new-password-file", weak, *FAST)

    refused = invoke(*base[:2], "--out", tmp_path / "refused", *base[2:])
    assert refused.code == 1
    assert "password refused" in refused.stderr_flat
    assert "19700101" not in refused.everything
    assert not (tmp_path / "refused").exists()

    allowed = invoke(*base[:2], "--out", tmp_path / "allowed", *base[2:], "--allow-weak-password")
    assert allowed.code == 0, allowed.everything
    assert "warning: weak password accepted" in allowed.stderr_flat
    assert "19700101" not in allowed.everything


# --- what burn prints -----------------------------------------------------------------------------------------


def test_burn_prints_the_medium_id_and_a_cover_letter_without_the_password(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    out = tmp_path / "m"

    result = invoke(
        "burn", CT_SMALL, "--out", out, "--format", "dir", "--password-file", password_file, *FAST
    )

    assert result.code == 0, result.everything
    [medium_id] = [w.rstrip(":") for w in result.stdout.split() if w.startswith("DCMS-")][:1]
    assert "Dear colleague" in result.stdout
    assert result.stdout.count(medium_id) >= 2  # the summary line and the letter
    assert PASSWORD not in result.everything
    readme = (out / "README.TXT").read_text("ascii")
    assert medium_id in readme
    assert PASSWORD not in readme


def test_a_generated_password_is_printed_once_and_opens_the_medium(
    invoke: Invoke, tmp_path: Path, data_dir: Path
) -> None:
    out = tmp_path / "m"

    result = invoke("burn", CT_SMALL, "--out", out, "--format", "dir", "--generate-password", *FAST)

    assert result.code == 0, result.everything
    [line] = [text for text in result.stdout.splitlines() if text.startswith("password (shown once")]
    generated = line.rsplit(": ", 1)[1].strip()
    assert len(generated) >= 12
    assert result.everything.count(generated) == 1  # not in the cover letter
    assert generated not in (out / "README.TXT").read_text("ascii")
    assert generated.encode() not in b"".join(_audit_lines(data_dir))
    opened = invoke("open", out, "--out", tmp_path / "o", "--password-env", "GENPW", env={"GENPW": generated})
    assert opened.code == 0, opened.everything


# --- bad input --------------------------------------------------------------------------------------------


def test_a_non_dicom_source_is_left_out_unless_strict(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not DICOM\n")

    lenient = invoke(
        "burn", CT_SMALL, notes, "--out", tmp_path / "a.iso", "--password-file", password_file, *FAST
    )
    strict = invoke(
        "burn",
        CT_SMALL,
        notes,
        "--out",
        tmp_path / "b.iso",
        "--password-file",
        password_file,
        *FAST,
        "--strict",
    )

    assert lenient.code == 0, lenient.everything
    assert f"left out: {notes}: not a DICOM PS3.10 file" in lenient.stderr_flat
    assert (tmp_path / "a.iso").is_file()
    assert strict.code == 1
    [error] = _error_lines(strict.stderr)
    assert "notes.txt" in error
    assert "--strict" in error
    assert not (tmp_path / "b.iso").exists()
    assert _staging(tmp_path) == []


def test_a_truncated_iso_is_one_error_line_naming_it(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    medium = tmp_path / "m.iso"
    assert (
        invoke("burn", CT_SMALL, MR_SMALL, "--out", medium, "--password-file", password_file, *FAST).code == 0
    )
    truncated = tmp_path / "truncated.iso"
    truncated.write_bytes(medium.read_bytes()[: medium.stat().st_size // 2])

    result = invoke("open", truncated, "--out", tmp_path / "opened", "--password-file", password_file)

    assert result.code == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert str(truncated) in line or "truncated.iso" in line
    assert not (tmp_path / "opened").exists()
    assert _staging(tmp_path) == []


def test_a_wrong_password_exits_1_and_creates_no_output(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    medium = tmp_path / "m.iso"
    assert invoke("burn", CT_SMALL, "--out", medium, "--password-file", password_file, *FAST).code == 0

    result = invoke(
        "open", medium, "--out", tmp_path / "opened", "--password-env", "BADPW", env={"BADPW": WRONG_PASSWORD}
    )

    assert result.code == 1
    [error] = _error_lines(result.stderr)
    assert "wrong password" in error
    assert not (tmp_path / "opened").exists()
    assert _staging(tmp_path) == []


def test_a_wrong_password_is_said_once_however_many_files_the_medium_holds(
    invoke: Invoke, dcmseal: Subprocess, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    study = write_series(tmp_path / "study", 12)[0].parent
    medium = tmp_path / "stick"
    assert (
        invoke(
            "burn", study, "--out", medium, "--format", "dir", "--password-file", password_file, *FAST
        ).code
        == 0
    )

    result = dcmseal(
        "open", medium, "--out", tmp_path / "opened", "--password-env", "BADPW", env={"BADPW": WRONG_PASSWORD}
    )

    assert result.code == 1
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"error: {medium}: {DecryptionError().message}"
    ]
    assert not (tmp_path / "opened").exists()


@pytest.mark.parametrize("command", ["seal", "unseal", "open", "burn"])
def test_an_empty_folder_is_an_error_not_a_success(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path, command: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"hidden files do not count")
    out = tmp_path / ("out.iso" if command == "burn" else "out")

    result = invoke(
        command,
        empty,
        "--out",
        out,
        "--password-file",
        password_file,
        *FAST[: 2 if command in ("seal", "burn") else 0],
    )

    assert result.code == 1, result.everything
    [error] = _error_lines(result.stderr)
    assert str(empty) in error or "nothing to burn" in error
    assert "verified" not in result.everything
    assert not out.exists()


def test_one_corrupted_file_is_named_and_the_rest_open(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    study = write_series(tmp_path / "study", 4, pixel_bytes=2048)
    medium = tmp_path / "m"
    burned = invoke(
        "burn",
        study[0].parent,
        "--out",
        medium,
        "--format",
        "dir",
        "--password-file",
        password_file,
        *FAST,
        "--json",
    )
    assert burned.code == 0, burned.everything
    victim = sorted(f["file_id"] for f in burned.json()["files"])[1]
    data = bytearray((medium / victim).read_bytes())
    data[len(data) // 2] ^= 0x80
    (medium / victim).write_bytes(bytes(data))

    result = invoke("open", medium, "--out", tmp_path / "opened", "--password-file", password_file, "--json")

    assert result.code == 1
    document = result.json()
    [failed] = [f for f in document["files"] if f["status"] == "failed"]
    assert failed["path"] == victim
    assert failed["reason"]
    assert document["summary"]["opened"] == 4  # three instances and the DICOMDIR
    opened = [p for p in medium_files(tmp_path / "opened") if p.name != "DICOMDIR"]
    assert len(opened) == 3


def test_an_existing_output_is_refused_without_force_and_force_never_deletes_a_users_file(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    medium, opened = tmp_path / "m.iso", tmp_path / "opened"
    medium.write_bytes(b"an older medium")
    opened.mkdir()
    (opened / "keep.txt").write_text("mine")

    burn_refused = invoke("burn", CT_SMALL, "--out", medium, "--password-file", password_file, *FAST)
    assert burn_refused.code == 1
    assert "already exists" in burn_refused.stderr_flat
    # --force replaces an image, never another file.
    forced_over_a_file = invoke(
        "burn", CT_SMALL, "--out", medium, "--password-file", password_file, *FAST, "--force"
    )
    assert forced_over_a_file.code == 1
    assert "is not an ISO image" in forced_over_a_file.stderr_flat
    assert medium.read_bytes() == b"an older medium"

    medium.unlink()
    assert invoke("burn", CT_SMALL, "--out", medium, "--password-file", password_file, *FAST).code == 0
    first = medium.read_bytes()
    again = invoke("burn", CT_SMALL, "--out", medium, "--password-file", password_file, *FAST, "--force")
    assert again.code == 0, again.everything
    assert medium.read_bytes() != first  # a new medium (new salt, new IDs) in place of the old image

    for force in ((), ("--force",)):
        open_refused = invoke("open", medium, "--out", opened, "--password-file", password_file, *force)
        assert open_refused.code == 1
        [error] = _error_lines(open_refused.stderr)
        assert "keep.txt" in error
        assert "did not write" in error
        assert (opened / "keep.txt").read_text() == "mine"
    (opened / "keep.txt").unlink()
    # An empty folder is a valid output without --force; a File-set of dcmseal's is replaced only with it.
    assert invoke("open", medium, "--out", opened, "--password-file", password_file).code == 0
    refused = invoke("open", medium, "--out", opened, "--password-file", password_file)
    assert refused.code == 1
    assert "use --force to replace it" in refused.stderr_flat
    forced = invoke("open", medium, "--out", opened, "--password-file", password_file, "--force")
    assert forced.code == 0, forced.everything
    assert _staging(tmp_path) == []


def test_the_readme_example_burns_to_a_mounted_stick_and_says_when_to_remove_it(
    invoke: Invoke, mount_point: Path, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    """`dcmseal burn study/ --out /media/usb --format dir`: the root of an empty stick, no --force needed."""
    study = write_series(tmp_path / "study", 2)[0].parent

    burned = invoke(
        "burn", study, "--out", mount_point, "--format", "dir", "--password-file", password_file, *FAST
    )
    again = invoke(
        "burn", study, "--out", mount_point, "--format", "dir", "--password-file", password_file, *FAST
    )
    forced = invoke(
        "burn",
        study,
        "--out",
        mount_point,
        "--format",
        "dir",
        "--password-file",
        password_file,
        *FAST,
        "--force",
    )

    assert burned.code == 0, burned.everything
    assert f"unmount (eject) {mount_point}, then the stick is safe to remove" in burned.stderr_flat
    assert again.code == 1
    [error] = _error_lines(again.stderr)
    assert "use --force to replace it" in error
    assert forced.code == 0, forced.everything
    assert "Traceback" not in forced.everything
    assert len(invoke("keys", "list", "--json").json()["media"]) == 2  # the refused burn recorded nothing


def _undecodable_j2k(path: Path) -> Path:
    """A JPEG 2000 instance whose codestream is zeroed after its first bytes: no decoder can read it."""
    ds = dcmread(pydicom_file("MR_small_jp2klossless.dcm"))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:40] + bytes(len(frame) - 40)])
    ds.save_as(path, enforce_file_format=True)
    return path


def test_an_undecodable_instance_is_left_out_and_the_rest_burned(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    """A CD needs every image decoded; one that cannot be is left out, named as the user knows it."""
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(_undecodable_j2k(tmp_path / "bad.dcm"), "member.dcm")
    (tmp_path / "bad.dcm").unlink()
    medium = tmp_path / "stick"
    args = (CT_SMALL, archive, "--out", medium, "--format", "dir", "--profile", "STD-GEN-SEC-CD")

    partial = invoke("burn", *args, "--password-file", password_file, *FAST)

    assert partial.code == 1, partial.everything
    assert f"left out: {archive}:member.dcm: cannot decode JPEG 2000" in partial.stderr_flat
    assert ".staging" not in partial.everything
    assert "the medium is incomplete: 1 instance(s)" in partial.stderr_flat
    readme = (medium / "README.TXT").read_text()
    assert "Files:      1" in readme
    assert "INCOMPLETE: 1 file(s) of the study could not be put on this" in readme
    assert "It is incomplete: 1 file(s)" in partial.stdout
    audit = _audit_lines(data_dir)[-1]
    assert b'EventOutcomeIndicator="4"' in audit
    assert b"1 instance(s) of the sources left out" in audit
    assert len(invoke("keys", "list", "--json").json()["media"]) == 1  # the medium was written: recorded

    allowed = invoke(
        "burn", *args, "--force", "--allow-partial", "--json", "--password-file", password_file, *FAST
    )
    assert allowed.code == 0, allowed.everything
    document = allowed.json()
    assert document["complete"] is False
    assert document["summary"]["left_out"] == 1
    [left_out] = [r for r in document["rejected"] if r["instance"]]
    assert left_out["name"] == f"{archive}:member.dcm"


def test_a_full_disk_fails_the_burn_cleanly(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_dir: Path
) -> None:
    """RLIMIT_FSIZE (no root needed): each staged file fits, the ISO image does not."""
    study = write_series(tmp_path / "study", 12, pixel_bytes=30_000)
    out_dir = tmp_path / "burner"
    out = out_dir / "m.iso"
    limit = 200_000

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    completed = subprocess.run(
        [
            str(DCMSEAL),
            "burn",
            str(study[0].parent),
            "--out",
            str(out),
            "--password-file",
            str(password_file),
            *FAST,
        ],
        env=clean_environment(Path(os.environ["XDG_CONFIG_HOME"])),
        preexec_fn=limited,  # the limit is for the child alone
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 1, completed.stderr
    [error] = _error_lines(completed.stderr)
    assert "too large" in error.lower() or "no space" in error.lower()
    assert not out.exists()
    assert _staging(out_dir) == []
    assert list(out_dir.iterdir()) == []
    listed = invoke("keys", "list", "--json")
    assert listed.json()["media"] == []  # nothing was recorded for a medium that does not exist


# --- certificates -------------------------------------------------------------------------------------------


def test_an_expired_certificate_is_refused_on_burn_but_its_key_opens(
    invoke: Invoke,
    tmp_path: Path,
    password_file: Path,
    data_dir: Path,
    rsa_identity_factory: RsaIdentityFactory,
) -> None:
    cert, key = rsa_identity_factory(tmp_path, "Expired Partner", not_valid_after_days=-1)
    out = tmp_path / "m.iso"

    refused = invoke("burn", CT_SMALL, "--out", out, "--recipient", cert, *FAST)
    assert refused.code == 1
    [error] = _error_lines(refused.stderr)
    assert "expired" in error
    assert "--allow-expired" in error
    assert not out.exists()

    allowed = invoke("burn", CT_SMALL, "--out", out, "--recipient", cert, "--allow-expired", *FAST, "--json")
    assert allowed.code == 0, allowed.everything
    assert allowed.json()["recipients"][0] == "CN=Expired Partner"
    opened = invoke("open", out, "--out", tmp_path / "opened", "--key", key, "--cert", cert, "--json")
    assert opened.code == 0, opened.everything
    [instance] = [f for f in opened.json()["files"] if f["sop_instance_uid"]]
    assert dcmread(tmp_path / "opened" / instance["file_id"]) == dcmread(CT_SMALL)
