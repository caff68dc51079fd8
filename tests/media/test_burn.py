"""Burning secure media: every profile and format read back by OpenSSL, DCMTK and dicom3tools; sources; registry.

The reference readers are outside dcmseal: `openssl cms -decrypt` (password and escrow key), `openssl cms
-digest_verify` for the inner DigestedData, `dcmftest` (Part 10 or not), `dciodvfy` (the DICOMDIR's IOD),
`xorriso -osirrox` and `isoinfo -l` (the ISO 9660 tree) and pycdlib (the UDF bridge of DVD profiles).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pycdlib
import pytest
from cryptography import x509
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

from dcmseal.audit import FileSink, validate_message
from dcmseal.errors import InputError
from dcmseal.fsutil import sha256_file
from dcmseal.keys.escrow import certificate_fingerprint
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, BurnResult, burn
from dcmseal.media.open import OpenRequest, open_medium
from dcmseal.media.profiles import Compression, Medium, Profile
from dcmseal.media.target import MANIFEST_NAME
from dcmseal.reader.isofiles import extract_iso
from tests.cli.runner import Run
from tests.conftest import RsaIdentityFactory
from tests.jsondoc import member
from tests.media.conftest import (
    MediaCli,
    MediaEscrow,
    dciodvfy_errors,
    dcmftest_answers,
    medium_files,
    openssl_digest_verify,
    openssl_unseal,
    write_instance,
    write_series,
)
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD
from tests.peers.orthanc import OrthancPeer
from tests.peers.postgres import create_database
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
MR_SMALL = pydicom_file("MR_small.dcm")
US_JPEG = pydicom_file("examples_ybr_color.dcm")  # US multi-frame, JPEG Baseline, YBR_FULL_422
JPEG2000 = pydicom_file("JPEG2000.dcm")
RT_DOSE = pydicom_file("rtdose.dcm")  # Implicit VR Little Endian, multi-frame
README = "README.TXT"
#: ISO 9660 Level 1 as written for a File-set: File ID components as `NAME.;1`, README as `README.TXT;1`.
LEVEL1_FILE = re.compile(r"^[A-Z0-9_]{1,8}\.([A-Z0-9_]{1,3})?;1$")
LEVEL1_DIR = re.compile(r"^[A-Z0-9_]{1,8}$")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield reg
    reg.close()


def _burn(
    sources: list[Path] | list[str],
    out: Path,
    *,
    registry: Registry,
    audit_log: Path,
    escrow: MediaEscrow | None,
    output_format: str = "iso",
    profile: Profile | None = None,
    certificates: tuple[x509.Certificate, ...] = (),
    allow_expired: bool = False,
    strict: bool = False,
) -> BurnResult:
    request = BurnRequest(
        sources=tuple(str(s) for s in sources),
        out=out,
        operator="burn-tester",
        output_format=output_format,
        profile=profile,
        password=PASSWORD.encode(),
        certificates=certificates,
        escrow_certificate=escrow.certificate if escrow is not None else None,
        label="TEST DISC",
        iterations=FAST_ITERATIONS,
        allow_expired=allow_expired,
        strict=strict,
    )
    return burn(request, registry=registry, audit=FileSink(audit_log))


def _staging_leftovers(parent: Path) -> list[Path]:
    return sorted(parent.glob(".*.staging"))


def _isoinfo_tree(isoinfo: str, image: Path) -> tuple[list[str], list[str]]:
    """(file records, directory records) of `isoinfo -l`, as full paths like `/DICOMDIR.;1`."""
    listing = subprocess.run(
        [isoinfo, "-l", "-i", str(image)], capture_output=True, text=True, check=True
    ).stdout
    files: list[str] = []
    dirs: list[str] = []
    current = "/"
    for line in listing.splitlines():
        header = re.match(r"^Directory listing of (.*)$", line)
        if header:
            current = header.group(1)
            continue
        entry = re.match(r"^([d-])\S*\s.*\]\s+(\S+)\s*$", line)
        if entry is None:
            continue
        kind, name = entry.groups()
        if name in (".", ".."):
            continue
        (dirs if kind == "d" else files).append(current + name)
    return files, dirs


def _extract_iso(xorriso: str, image: Path, dest: Path) -> Path:
    result = subprocess.run(
        [xorriso, "-osirrox", "on", "-indev", str(image), "-extract", "/", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dest


def _has_udf(image: Path) -> bool:
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        return bool(iso.has_udf())
    finally:
        iso.close()


def _same_file_meta(decrypted: Dataset, source: Dataset) -> None:
    for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID"):
        assert decrypted.file_meta[keyword].value == source.file_meta[keyword].value, keyword


def _assert_same_data_set(decrypted: Dataset, source: Dataset) -> None:
    """Equal elements (pydicom compares the data sets, not the preamble), same File Meta UIDs, zero preamble."""
    assert decrypted == source
    _same_file_meta(decrypted, source)
    assert decrypted.preamble == bytes(128)


def _assert_converted_losslessly(decrypted: Dataset, source: Dataset) -> None:
    """A converted instance: same pixels, same elements but for the pixel encoding, File Meta UIDs kept."""
    assert decrypted.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(decrypted.pixel_array, source.pixel_array)
    encoding = {"PixelData", "PhotometricInterpretation"}
    differing = {e.keyword for e in source if e.tag not in decrypted or decrypted[e.tag] != e}
    assert differing <= encoding, differing
    assert {e.keyword for e in decrypted if e.tag not in source} == set()
    assert decrypted.SOPInstanceUID == source.SOPInstanceUID


# --- every profile and format, read back by the reference tools ------------------------------------------


PROFILES = [None, *Profile]


@pytest.mark.parametrize("output_format", ["iso", "dir"])
@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: "auto" if p is None else p.value)
def test_ct_mr_us_burned_in_every_profile_open_with_openssl_and_pass_dicom_checks(
    profile: Profile | None,
    output_format: str,
    tmp_path: Path,
    registry: Registry,
    media_escrow: MediaEscrow,
    openssl_bin: str,
    dciodvfy_bin: str,
    dcmftest_bin: str,
    xorriso_bin: str,
    isoinfo_bin: str,
) -> None:
    out = tmp_path / ("medium.iso" if output_format == "iso" else "medium")
    result = _burn(
        [CT_SMALL, MR_SMALL, US_JPEG],
        out,
        registry=registry,
        audit_log=tmp_path / "audit.log",
        escrow=media_escrow,
        output_format=output_format,
        profile=profile,
    )

    expected_profile = profile or (Profile.DVD_JPEG if output_format == "iso" else Profile.USB_JPEG)
    assert result.profile is expected_profile
    assert len(result.files) == 3
    assert result.rejected == ()
    assert result.pbkdf2_derivations == 1
    if output_format == "iso":
        files, dirs = _isoinfo_tree(isoinfo_bin, out)
        assert "/DICOMDIR.;1" in files
        assert f"/{README};1" in files
        assert all(LEVEL1_FILE.match(f.rsplit("/", 1)[1]) for f in files), files
        assert all(LEVEL1_DIR.match(d.rsplit("/", 1)[1]) for d in dirs), dirs
        if expected_profile.medium is Medium.DVD:
            assert _has_udf(out)
        root = _extract_iso(xorriso_bin, out, tmp_path / "extracted")
    else:
        root = out
    on_medium = {p.relative_to(root).as_posix(): p for p in medium_files(root)}
    if output_format == "dir":
        # A folder medium lists what dcmseal wrote in it (what --force may replace): every file, no other.
        manifest = json.loads((root / MANIFEST_NAME).read_bytes())
        assert {f["path"]: f["sha256"] for f in manifest["files"]} == {
            name: sha256_file(path) for name, path in on_medium.items()
        }
        assert manifest["complete"] is True
        assert manifest["medium_id"] == result.medium_id
    # Nothing else on the medium but the offline viewer: no autorun, no plaintext.
    viewer = {"INDEX.HTM", "VIEWER/VIEWER.CSS", "VIEWER/VIEWER.JS"}
    assert set(on_medium) == {"DICOMDIR", README} | viewer | {f.file_id for f in result.files}
    for name in viewer:
        del on_medium[name]
    assert set(dcmftest_answers(dcmftest_bin, list(on_medium.values())).values()) == {"no"}

    plain_root = tmp_path / "plain"
    for relative, sealed in on_medium.items():
        if relative == README:
            continue
        with_password = openssl_unseal(openssl_bin, sealed, password=PASSWORD)
        with_escrow = openssl_unseal(
            openssl_bin,
            sealed,
            key=(media_escrow.certificate_path, media_escrow.key_path, media_escrow.passphrase),
        )
        assert with_escrow == with_password
        openssl_digest_verify(openssl_bin, with_password, plain_root / relative)
    plain = medium_files(plain_root)
    assert len(plain) == 4
    answers = dcmftest_answers(dcmftest_bin, plain)
    assert set(answers.values()) == {"yes"}, answers

    dicomdir = plain_root / "DICOMDIR"
    assert dciodvfy_errors(dciodvfy_bin, dicomdir) == []
    fileset = FileSet(dcmread(dicomdir))
    assert fileset.ID == "TEST_DISC"
    referenced = {
        "/".join(r.ReferencedFileID)
        for r in dcmread(dicomdir).DirectoryRecordSequence
        if "ReferencedFileID" in r
    }
    assert referenced == {f.file_id for f in result.files}
    assert len(list(fileset)) == 3

    sources = {dcmread(p).SOPInstanceUID: dcmread(p) for p in (CT_SMALL, MR_SMALL, US_JPEG)}
    for burned in result.files:
        decrypted = dcmread(plain_root / burned.file_id)
        source = sources[decrypted.SOPInstanceUID]
        if burned.conversion is None:
            _assert_same_data_set(decrypted, source)
        else:
            _assert_converted_losslessly(decrypted, source)
    us_conversions = [
        f.conversion for f in result.files if f.sop_instance_uid == str(dcmread(US_JPEG).SOPInstanceUID)
    ]
    assert bool(us_conversions[0]) == (expected_profile.compression is not Compression.JPEG)
    assert [f.conversion for f in result.files if f.conversion] == [c for c in us_conversions if c]

    readme = on_medium[README].read_text("ascii")
    assert result.medium_id in readme
    assert PASSWORD not in readme
    assert result.medium_id in result.cover_letter
    assert PASSWORD not in result.cover_letter


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_bigendian.dcm",
        "SC_rgb_rle.dcm",
        "rtdose.dcm",
        "JPEG2000.dcm",
    ],
)
def test_content_outside_the_cd_profile_is_decompressed_without_loss(
    name: str, tmp_path: Path, registry: Registry, openssl_bin: str, dciodvfy_bin: str
) -> None:
    source_path = pydicom_file(name)
    out = tmp_path / "medium"
    result = _burn(
        [source_path],
        out,
        registry=registry,
        audit_log=tmp_path / "audit.log",
        escrow=None,
        output_format="dir",
        profile=Profile.CD,
    )

    [burned] = result.files
    assert burned.conversion is not None
    assert "converted" in " ".join(result.notes)
    plain = openssl_digest_verify(
        openssl_bin, openssl_unseal(openssl_bin, out / burned.file_id, password=PASSWORD), tmp_path / "plain"
    )
    _assert_converted_losslessly(dcmread(plain), dcmread(source_path))
    dicomdir = openssl_digest_verify(
        openssl_bin, openssl_unseal(openssl_bin, out / "DICOMDIR", password=PASSWORD), tmp_path / "DICOMDIR"
    )
    assert dciodvfy_errors(dciodvfy_bin, dicomdir) == []


def test_j2k_and_rt_dose_keep_their_records_and_syntax_in_the_j2k_profile(
    tmp_path: Path, registry: Registry, openssl_bin: str, dciodvfy_bin: str
) -> None:
    out = tmp_path / "medium.iso"
    result = _burn([JPEG2000, RT_DOSE], out, registry=registry, audit_log=tmp_path / "audit.log", escrow=None)

    assert result.profile is Profile.DVD_J2K
    by_uid = {f.sop_instance_uid: f for f in result.files}
    j2k = by_uid[str(dcmread(JPEG2000).SOPInstanceUID)]
    dose = by_uid[str(dcmread(RT_DOSE).SOPInstanceUID)]
    assert j2k.conversion is None  # JPEG 2000 is a transfer syntax of the profile
    assert dose.conversion is not None  # Implicit VR Little Endian is in no profile
    root = tmp_path / "x"
    extract_iso(out, root)
    plain = tmp_path / "plain"
    for relative in ("DICOMDIR", j2k.file_id, dose.file_id):
        openssl_digest_verify(
            openssl_bin, openssl_unseal(openssl_bin, root / relative, password=PASSWORD), plain / relative
        )
    _assert_same_data_set(dcmread(plain / j2k.file_id), dcmread(JPEG2000))
    _assert_converted_losslessly(dcmread(plain / dose.file_id), dcmread(RT_DOSE))
    assert dciodvfy_errors(dciodvfy_bin, plain / "DICOMDIR") == []
    record_types = {r.DirectoryRecordType for r in dcmread(plain / "DICOMDIR").DirectoryRecordSequence}
    assert {"IMAGE", "RT DOSE"} <= record_types


# --- sources ------------------------------------------------------------------------------------------------


def test_non_dicom_source_is_left_out_with_its_reason(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    notes = tmp_path / "src" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("not DICOM\n")
    result = _burn(
        [CT_SMALL, notes],
        tmp_path / "m.iso",
        registry=registry,
        audit_log=tmp_path / "audit.log",
        escrow=media_escrow,
    )

    assert [f.sop_instance_uid for f in result.files] == [str(dcmread(CT_SMALL).SOPInstanceUID)]
    [rejected] = result.rejected
    assert str(notes) in (str(rejected.path), rejected.origin)
    assert "not a DICOM PS3.10 file" in rejected.reason
    assert member(result.to_json(), "rejected", 0, "status") == "rejected"


def test_sources_are_never_written_whether_staged_by_link_or_by_copy(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """A zero-preamble source is staged as a hard link; a TIFF one is copied before its preamble is zeroed."""
    src = tmp_path / "src"
    src.mkdir()
    tiff = Path(shutil.copyfile(MR_SMALL, src / "tiff.dcm"))
    zero = src / "zero.dcm"
    zero.write_bytes(bytes(128) + CT_SMALL.read_bytes()[128:])
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tiff, zero)}

    result = _burn(
        [src],
        tmp_path / "m",
        registry=registry,
        audit_log=tmp_path / "audit.log",
        escrow=media_escrow,
        output_format="dir",
    )

    assert len(result.files) == 2
    assert any("tiff.dcm: TIFF dual-personality preamble zeroed" in n for n in result.notes)
    for path, (data, mtime) in before.items():
        assert (path.read_bytes(), path.stat().st_mtime_ns) == (data, mtime)
        assert path.stat().st_nlink == 1  # the staging links went with the staging folder
    request = OpenRequest(
        medium=tmp_path / "m", out=tmp_path / "opened", operator="burn-tester", passwords=(PASSWORD.encode(),)
    )
    open_medium(request, audit=FileSink(tmp_path / "open-audit.log"))
    opened = [dcmread(f) for f in medium_files(tmp_path / "opened") if f.name != "DICOMDIR"]
    assert [ds.preamble for ds in opened] == [bytes(128)] * 2
    assert {ds.SOPInstanceUID for ds in opened} == {dcmread(p).SOPInstanceUID for p in before}


def test_strict_burn_fails_on_a_non_dicom_source_and_leaves_nothing(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not DICOM\n")
    out = tmp_path / "out" / "m.iso"

    with pytest.raises(InputError) as caught:
        _burn(
            [CT_SMALL, notes],
            out,
            registry=registry,
            audit_log=tmp_path / "audit.log",
            escrow=media_escrow,
            strict=True,
        )

    assert "--strict" in str(caught.value)
    assert "notes.txt" in str(caught.value)
    assert not out.exists()
    assert _staging_leftovers(out.parent) == []
    assert registry.count_media() == 0


def test_an_instance_the_dicomdir_cannot_index_is_left_out_not_the_whole_burn(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """A broken source (no Study Instance UID, Type 1) is left out with a reason naming the source itself.

    Today the whole burn stops with "cannot build its DICOMDIR records", and the error names the staged copy
    (`.m.iso.XXXX.staging/conformed/00000001`), which is gone when the user reads it.
    """
    broken = write_instance(tmp_path / "src" / "broken.dcm", study_uid="", series_uid="1.2.3.4", number=1)
    ds = dcmread(broken)
    del ds.StudyInstanceUID
    ds.save_as(broken, enforce_file_format=True)

    result = _burn(
        [CT_SMALL, broken],
        tmp_path / "m.iso",
        registry=registry,
        audit_log=tmp_path / "audit.log",
        escrow=media_escrow,
    )

    assert len(result.files) == 1
    [rejected] = result.rejected
    assert str(broken) in (str(rejected.path), rejected.origin)


def test_existing_output_is_refused_and_kept(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    out = tmp_path / "m.iso"
    out.write_bytes(b"an earlier medium")

    with pytest.raises(InputError, match="already exists"):
        _burn([CT_SMALL], out, registry=registry, audit_log=tmp_path / "a.log", escrow=media_escrow)

    assert out.read_bytes() == b"an earlier medium"
    assert _staging_leftovers(tmp_path) == []


def test_wado_rs_study_from_orthanc_is_burned(
    orthanc: OrthancPeer,
    tmp_path: Path,
    registry: Registry,
    media_escrow: MediaEscrow,
    openssl_bin: str,
) -> None:
    orthanc.upload(CT_SMALL)
    source = dcmread(CT_SMALL)
    out = tmp_path / "medium"

    result = _burn(
        [orthanc.study_url(source.StudyInstanceUID)],
        out,
        registry=registry,
        audit_log=tmp_path / "audit.log",
        escrow=media_escrow,
        output_format="dir",
    )

    [burned] = result.files
    assert burned.sop_instance_uid == source.SOPInstanceUID
    plain = openssl_digest_verify(
        openssl_bin, openssl_unseal(openssl_bin, out / burned.file_id, password=PASSWORD), tmp_path / "p"
    )
    decrypted = dcmread(plain)
    assert decrypted.SOPInstanceUID == source.SOPInstanceUID
    assert decrypted == source


# --- recipients -----------------------------------------------------------------------------------------------


def test_expired_recipient_certificate_is_refused_unless_allowed(
    tmp_path: Path,
    registry: Registry,
    media_escrow: MediaEscrow,
    rsa_identity_factory: RsaIdentityFactory,
    openssl_bin: str,
) -> None:
    cert_path, key_path = rsa_identity_factory(tmp_path, "Expired Partner", not_valid_after_days=-1)
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    out = tmp_path / "m"

    with pytest.raises(InputError, match="expired"):
        _burn(
            [CT_SMALL],
            out,
            registry=registry,
            audit_log=tmp_path / "a.log",
            escrow=media_escrow,
            output_format="dir",
            certificates=(certificate,),
        )
    assert not out.exists()
    assert _staging_leftovers(tmp_path) == []

    result = _burn(
        [CT_SMALL],
        out,
        registry=registry,
        audit_log=tmp_path / "a.log",
        escrow=media_escrow,
        output_format="dir",
        certificates=(certificate,),
        allow_expired=True,
    )
    digested = openssl_unseal(openssl_bin, out / result.files[0].file_id, key=(cert_path, key_path, None))
    assert digested == openssl_unseal(openssl_bin, out / result.files[0].file_id, password=PASSWORD)


# --- audit ---------------------------------------------------------------------------------------------------


def test_every_burn_appends_one_valid_export_message(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    log = tmp_path / "audit.log"
    first = _burn([CT_SMALL], tmp_path / "a.iso", registry=registry, audit_log=log, escrow=media_escrow)
    second = _burn(
        [MR_SMALL], tmp_path / "b", registry=registry, audit_log=log, escrow=media_escrow, output_format="dir"
    )

    lines = log.read_bytes().splitlines()
    assert len(lines) == 2
    for line, result in zip(lines, (first, second), strict=True):
        assert validate_message(line) == []
        assert b'csd-code="110106"' in line  # Export
        assert result.medium_id.encode() in line
        assert PASSWORD.encode() not in line


# --- the registry: two burn stations at once, on SQLite and on PostgreSQL -------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared-registry.sqlite3'}"
    return create_database(request.getfixturevalue("postgres_url"))


def test_two_burns_at_once_are_both_recorded(
    registry_url: str, tmp_path: Path, media_cli: MediaCli, media_escrow: MediaEscrow
) -> None:
    password_file = tmp_path / "pw.txt"
    password_file.write_text(PASSWORD + "\n")
    studies = [write_series(tmp_path / f"study{n}", 6) for n in (1, 2)]
    outs = [tmp_path / "station1" / "m.iso", tmp_path / "station2" / "m.iso"]

    def burn_at(index: int) -> Run:
        return media_cli.fresh(
            "burn",
            studies[index][0].parent,
            "--out",
            outs[index],
            "--password-file",
            password_file,
            "--registry",
            registry_url,
            "--iterations",
            str(FAST_ITERATIONS),
            "--json",
            env={"DCMSEAL_OPERATOR": f"station{index + 1}"},
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(burn_at, range(2)))

    documents = []
    for run in runs:
        assert run.code == 0, run.stderr
        documents.append(run.json())
    ids = {d["medium_id"] for d in documents}
    assert len(ids) == 2
    with Registry.open(registry_url) as reg:
        media = {m.medium_id: m for m in reg.list_media()}
        assert set(media) == ids
        for document, index in zip(documents, range(2), strict=True):
            details = reg.get_medium(document["medium_id"])
            assert details.operator == f"station{index + 1}"
            assert details.file_count == 6
            assert details.has_escrowed_password
            assert details.escrow_fingerprint == certificate_fingerprint(media_escrow.certificate)
            assert [r.kind for r in details.recipients] == ["password", "certificate"]
            [study] = details.studies
            assert study.study_instance_uid == dcmread(studies[index][0]).StudyInstanceUID
            assert study.instance_count == 6
    assert all(out.is_file() for out in outs)
