"""Opening media: round trips, one PBKDF2 derivation per medium, DICOMDIR disagreements, plain and mixed media,
damaged media and wrong keys."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydicom import dcmread

from dcmseal import cms
from dcmseal.audit import FileSink, validate_message
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError, InputError
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, BurnResult, burn
from dcmseal.media.open import OpenRequest, OpenResult, open_medium
from dcmseal.media.target import MANIFEST_NAME
from dcmseal.part10 import seal_file
from tests.conftest import RsaIdentityFactory
from tests.jsondoc import array_at
from tests.media.conftest import (
    MediaCli,
    MediaEscrow,
    dciodvfy_errors,
    dcmftest_answers,
    medium_files,
    write_series,
)
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD, fast_kdf
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
MR_SMALL = pydicom_file("MR_small.dcm")
US_JPEG = pydicom_file("examples_ybr_color.dcm")
PLAIN_SET = pydicom_file("DICOMDIR").parent  # pydicom's dicomdirtests: 31 instances
PLAIN_FOLDERS = ("77654033", "98892001", "98892003")
WRONG_PASSWORD = "Quartz-meadow-Falcon-ribbon-tundra"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield reg
    reg.close()


def _burn(
    sources: list[Path],
    out: Path,
    registry: Registry,
    *,
    escrow: MediaEscrow | None = None,
    output_format: str = "dir",
    certificates: tuple[x509.Certificate, ...] = (),
    allow_expired: bool = False,
) -> BurnResult:
    request = BurnRequest(
        sources=tuple(map(str, sources)),
        out=out,
        operator="open-tester",
        output_format=output_format,
        password=PASSWORD.encode(),
        escrow_certificate=escrow.certificate if escrow is not None else None,
        iterations=FAST_ITERATIONS,
        certificates=certificates,
        allow_expired=allow_expired,
    )
    return burn(request, registry=registry, audit=FileSink(out.parent / "burn-audit.log"))


def _open(
    medium: Path,
    out: Path,
    *,
    audit_log: Path | None = None,
    passwords: tuple[bytes, ...] = (),
    private_keys: tuple[bytes, ...] = (),
    certificates: tuple[bytes | None, ...] = (),
) -> OpenResult:
    request = OpenRequest(
        medium=medium,
        out=out,
        operator="open-tester",
        passwords=passwords,
        private_keys=private_keys,
        certificates=certificates,
    )
    return open_medium(request, audit=FileSink(audit_log or out.parent / "open-audit.log"))


def _by_status(result: OpenResult) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in result.files:
        found.setdefault(f.status, []).append(f.path)
    return found


def _instances(root: Path) -> dict[str, Path]:
    """SOP Instance UID -> file, for every DICOM file of a File-set but the DICOMDIR."""
    return {
        str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
        for p in medium_files(root)
        if p.name != "DICOMDIR"
    }


def _assert_dicomdir_references_every_file(root: Path) -> None:
    """Each record's File ID exists and holds the SOP Instance UID the record names; no file is unreferenced."""
    dicomdir = dcmread(root / "DICOMDIR")
    referenced = set()
    for record in dicomdir.DirectoryRecordSequence:
        if "ReferencedFileID" not in record:
            continue
        path = root.joinpath(*record.ReferencedFileID)
        assert dcmread(path, stop_before_pixels=True).SOPInstanceUID == record.ReferencedSOPInstanceUIDInFile
        referenced.add(path)
    assert referenced == {p for p in medium_files(root) if p.name != "DICOMDIR"}


# --- round trips ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["iso", "dir"])
@pytest.mark.parametrize("credential", ["password", "escrow-key"])
def test_open_gives_back_identical_data_sets(
    credential: str,
    output_format: str,
    tmp_path: Path,
    registry: Registry,
    media_escrow: MediaEscrow,
    dciodvfy_bin: str,
    dcmftest_bin: str,
) -> None:
    medium = tmp_path / ("m.iso" if output_format == "iso" else "m")
    burned = _burn(
        [CT_SMALL, MR_SMALL, US_JPEG], medium, registry, escrow=media_escrow, output_format=output_format
    )
    if credential == "password":
        result = _open(medium, tmp_path / "opened", passwords=(PASSWORD.encode(),))
    else:
        result = _open(medium, tmp_path / "opened", private_keys=(media_escrow.private_key_der,))

    assert result.failed == ()
    assert result.disagreements == ()
    assert not result.dicomdir_rebuilt
    assert result.kdf_derivations <= 1
    assert sorted(_by_status(result)["opened"]) == sorted(["DICOMDIR", *(f.file_id for f in burned.files)])
    # Outside the File-set: README.TXT, the offline viewer and (folders) the manifest of what dcmseal wrote.
    assert _by_status(result)["skipped"] == [
        *([MANIFEST_NAME] if output_format == "dir" else []),
        "INDEX.HTM",
        "README.TXT",
        "VIEWER/VIEWER.CSS",
        "VIEWER/VIEWER.JS",
    ]
    opened = _instances(tmp_path / "opened")
    for source_path in (CT_SMALL, MR_SMALL, US_JPEG):
        source = dcmread(source_path)
        decrypted = dcmread(opened[str(source.SOPInstanceUID)])
        assert decrypted == source
        assert decrypted.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    files = medium_files(tmp_path / "opened")
    assert set(dcmftest_answers(dcmftest_bin, files).values()) == {"yes"}
    assert dciodvfy_errors(dciodvfy_bin, tmp_path / "opened" / "DICOMDIR") == []
    _assert_dicomdir_references_every_file(tmp_path / "opened")
    document = result.to_json()
    assert document["schema"] == "dcmseal.open/1"


def test_a_500_file_medium_costs_one_pbkdf2_derivation_in_a_fresh_process(
    tmp_path: Path, registry: Registry, media_cli: MediaCli
) -> None:
    sources = write_series(tmp_path / "study", 500)
    medium = tmp_path / "m"
    burned = _burn([sources[0].parent], medium, registry)
    assert len(burned.files) == 500
    assert burned.pbkdf2_derivations == 1
    password_file = tmp_path / "pw.txt"
    password_file.write_text(PASSWORD + "\n")

    run = media_cli.fresh(
        "open", medium, "--out", tmp_path / "opened", "--password-file", password_file, "--json"
    )

    assert run.code == 0, run.stderr
    document = run.json()
    assert document["schema"] == "dcmseal.open/1"
    assert document["kdf_derivations"] == 1
    assert document["summary"]["opened"] == 501  # and the DICOMDIR
    assert document["summary"]["failed"] == 0
    assert len(medium_files(tmp_path / "opened")) == 501


# --- the DICOMDIR against the files -------------------------------------------------------------------------


def test_dicomdir_disagreements_are_reported_and_the_dicomdir_rebuilt(
    tmp_path: Path, registry: Registry, dciodvfy_bin: str
) -> None:
    study = write_series(tmp_path / "a", 4)
    others = write_series(tmp_path / "b", 2)
    medium, other = tmp_path / "A", tmp_path / "B"
    burned = _burn([study[0].parent], medium, registry)
    burned_other = _burn([others[0].parent], other, registry)
    ids = sorted(f.file_id for f in burned.files)
    by_id = {f.file_id: f.sop_instance_uid for f in burned.files}
    other_files = sorted(burned_other.files, key=lambda f: f.file_id)
    # A missing file, an extra (unreferenced) sealed file, a wrong instance under a referenced name.
    (medium / ids[0]).unlink()
    extra = medium / "PT000000" / "ST000000" / "SE000000" / "IM000077"
    shutil.copyfile(other / other_files[0].file_id, extra)
    shutil.copyfile(other / other_files[1].file_id, medium / ids[1])

    result = _open(medium, tmp_path / "opened", passwords=(PASSWORD.encode(),))

    kinds = {(d.kind.value, "/".join(d.file_id)) for d in result.disagreements}
    assert kinds == {
        ("missing-file", ids[0]),
        ("unreferenced-file", "PT000000/ST000000/SE000000/IM000077"),
        ("uid-mismatch", ids[1]),
    }
    mismatch = next(d for d in result.disagreements if d.kind.value == "uid-mismatch")
    assert (mismatch.expected, mismatch.found) == (by_id[ids[1]], other_files[1].sop_instance_uid)
    assert result.dicomdir_rebuilt
    assert result.failed == ()
    document = result.to_json()
    assert len(array_at(document, "disagreements")) == 3
    out = tmp_path / "opened"
    assert dciodvfy_errors(dciodvfy_bin, out / "DICOMDIR") == []
    _assert_dicomdir_references_every_file(out)
    # The files are trusted: what is there is in the File-set, what is missing is not.
    assert set(_instances(out)) == {
        by_id[ids[2]],
        by_id[ids[3]],
        other_files[0].sop_instance_uid,
        other_files[1].sop_instance_uid,
    }


# --- plain and mixed media ---------------------------------------------------------------------------------


def _plain_medium(root: Path) -> Path:
    """pydicom's dicomdirtests File-set: its DICOMDIR and the 31 instances it references, nothing else."""
    root.mkdir(parents=True)
    shutil.copyfile(PLAIN_SET / "DICOMDIR", root / "DICOMDIR")
    for folder in PLAIN_FOLDERS:
        shutil.copytree(PLAIN_SET / folder, root / folder)
    return root


def test_a_plain_dicom_medium_is_copied_and_its_dicomdir_verified(tmp_path: Path, dcmftest_bin: str) -> None:
    medium = _plain_medium(tmp_path / "plain")

    result = _open(medium, tmp_path / "opened", passwords=(PASSWORD.encode(),))

    statuses = _by_status(result)
    assert set(statuses) == {"copied"}
    assert len(statuses["copied"]) == 32  # 31 instances and the DICOMDIR
    assert result.disagreements == ()
    assert not result.dicomdir_rebuilt
    assert result.kdf_derivations == 0
    for original in medium_files(medium):
        assert (tmp_path / "opened" / original.relative_to(medium)).read_bytes() == original.read_bytes()
    assert set(dcmftest_answers(dcmftest_bin, medium_files(tmp_path / "opened")).values()) == {"yes"}


def test_a_plain_medium_opens_without_any_key(tmp_path: Path) -> None:
    """Nothing on the medium is encrypted, so nothing should be asked for.

    Today OpenRequest -> UnsealPlan raises UsageError "nothing to open with: give a password or a private
    key" before looking at the medium (and `dcmseal open plain/ --out x` exits 2 without a terminal).
    """
    medium = _plain_medium(tmp_path / "plain")

    result = _open(medium, tmp_path / "opened")

    assert len(_by_status(result)["copied"]) == 32


def test_a_mixed_medium_opens_the_sealed_files_and_copies_the_plain_ones(tmp_path: Path) -> None:
    medium = _plain_medium(tmp_path / "mixed")
    chosen = [p for p in medium_files(medium) if p.name != "DICOMDIR"][::10]
    originals = {p.relative_to(medium).as_posix(): p.read_bytes() for p in medium_files(medium)}
    kdf = fast_kdf()  # one salt for the medium
    recipient = cms.PasswordRecipient(password=PASSWORD.encode(), kdf=kdf)
    for path in chosen:
        sealed = path.with_name(path.name + ".sealed")
        seal_file(path, sealed, recipients=[recipient])
        sealed.replace(path)

    result = _open(medium, tmp_path / "opened", passwords=(PASSWORD.encode(),))

    statuses = _by_status(result)
    assert sorted(statuses["opened"]) == sorted(p.relative_to(medium).as_posix() for p in chosen)
    assert len(statuses["copied"]) == 32 - len(chosen)
    assert result.disagreements == ()
    assert result.failed == ()
    for relative, original in originals.items():
        opened = (tmp_path / "opened" / relative).read_bytes()
        assert opened[128:] == original[128:], relative


# --- damaged media, wrong keys -----------------------------------------------------------------------------


def test_a_corrupted_file_is_named_and_the_rest_open(
    tmp_path: Path, registry: Registry, dciodvfy_bin: str
) -> None:
    study = write_series(tmp_path / "study", 4, pixel_bytes=4096)
    medium = tmp_path / "m"
    burned = _burn([study[0].parent], medium, registry)
    victim = sorted(f.file_id for f in burned.files)[2]
    data = bytearray((medium / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (medium / victim).write_bytes(bytes(data))

    result = _open(medium, tmp_path / "opened", passwords=(PASSWORD.encode(),))

    [failed] = result.failed
    assert failed.path == victim
    assert failed.reason
    assert failed.reason.endswith(WRONG_KEY_MESSAGE)  # an altered file says what a wrong key says
    assert len(_by_status(result)["opened"]) == 4  # the DICOMDIR and three instances
    assert len(_instances(tmp_path / "opened")) == 3
    assert dciodvfy_errors(dciodvfy_bin, tmp_path / "opened" / "DICOMDIR") == []
    _assert_dicomdir_references_every_file(tmp_path / "opened")


def test_a_wrong_password_opens_nothing_and_creates_no_output(tmp_path: Path, registry: Registry) -> None:
    medium = tmp_path / "m.iso"
    _burn([CT_SMALL, MR_SMALL], medium, registry, output_format="iso")
    out = tmp_path / "opened"

    with pytest.raises(DecryptionError):
        _open(medium, out, passwords=(WRONG_PASSWORD.encode(),))

    assert not out.exists()
    assert sorted(tmp_path.glob(".*.staging")) == []


def test_a_truncated_iso_is_refused_with_one_error_naming_it(tmp_path: Path, registry: Registry) -> None:
    medium = tmp_path / "m.iso"
    _burn([CT_SMALL, MR_SMALL], medium, registry, output_format="iso")
    truncated = tmp_path / "truncated.iso"
    truncated.write_bytes(medium.read_bytes()[: medium.stat().st_size // 2])
    out = tmp_path / "opened"

    with pytest.raises(InputError) as caught:
        _open(truncated, out, passwords=(PASSWORD.encode(),))

    assert "truncated.iso" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not out.exists()
    assert sorted(tmp_path.glob(".*.staging")) == []


def test_a_zipped_medium_opens(tmp_path: Path, registry: Registry) -> None:
    medium = tmp_path / "m"
    burned = _burn([CT_SMALL], medium, registry)
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in medium_files(medium):
            zf.write(path, path.relative_to(medium).as_posix())

    result = _open(archive, tmp_path / "opened", passwords=(PASSWORD.encode(),))

    assert result.failed == ()
    assert set(_instances(tmp_path / "opened")) == {burned.files[0].sop_instance_uid}


def test_an_expired_certificates_key_still_opens(
    tmp_path: Path, registry: Registry, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert_path, key_path = rsa_identity_factory(tmp_path, "Partner Five Years Ago", not_valid_after_days=-1)
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    medium = tmp_path / "m"
    _burn([CT_SMALL], medium, registry, certificates=(certificate,), allow_expired=True)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    result = _open(
        medium,
        tmp_path / "opened",
        private_keys=(der,),
        certificates=(certificate.public_bytes(serialization.Encoding.DER),),
    )

    assert result.failed == ()
    assert dcmread(next(iter(_instances(tmp_path / "opened").values()))) == dcmread(CT_SMALL)


# --- audit ---------------------------------------------------------------------------------------------------


def test_every_open_appends_one_valid_import_message(tmp_path: Path, registry: Registry) -> None:
    medium = tmp_path / "m"
    _burn([CT_SMALL, MR_SMALL], medium, registry)
    log = tmp_path / "open.log"

    _open(medium, tmp_path / "o1", audit_log=log, passwords=(PASSWORD.encode(),))
    _open(_plain_medium(tmp_path / "plain"), tmp_path / "o2", audit_log=log, passwords=(PASSWORD.encode(),))

    lines = log.read_bytes().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert validate_message(line) == []
        assert b'csd-code="110107"' in line  # Import
        assert PASSWORD.encode() not in line
