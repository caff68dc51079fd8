"""Fixtures for the media tests: a staged File-set tree, ISO tools, and a real Orthanc as the PACS peer."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from typer.testing import CliRunner

from dcmseal.audit import FileSink
from dcmseal.keys.escrow import create_escrow_identity, load_escrow_certificate, unlock_escrow_key
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, burn
from dcmseal.media.target import MANIFEST_NAME
from tests.cli.conftest import Outcome
from tests.cli.runner import Run, run_dcmseal
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD, write_part10
from tests.peers.orthanc import OrthancPeer, running_orthanc
from tests.peers.postgres import postgres_url
from tests.peers.tools import require_tool, run_tool

__all__ = ["postgres_url"]  # the session PostgreSQL server, for the registry tests of burn and rekey


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    """One Orthanc with DICOMweb for the session (127.0.0.1, free ports, temp storage); stopped by PID after.

    Tests that store into it should call ``orthanc.clear()`` first, or use UIDs of their own.
    """
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as peer:
        yield peer


@pytest.fixture(scope="session")
def xorriso_bin() -> str:
    return require_tool("xorriso", "xorriso")


@pytest.fixture(scope="session")
def isoinfo_bin() -> str:
    return require_tool("isoinfo", "genisoimage")


@pytest.fixture
def staged_fileset(tmp_path: Path) -> Path:
    """A staging tree as the burn workflow leaves it: DICOMDIR, README.TXT, INDEX.HTM and nested File IDs.

    The contents are whatever bytes (real Part 10 files, random bytes): the ISO writer copies, never reads.
    """
    root = tmp_path / "stage"
    series = root / "DICOM" / "PAT00001" / "STU00001" / "SER00001"
    write_part10(root / "DICOMDIR")
    for index in range(1, 4):
        write_part10(series / f"IM{index:06d}", pixel_bytes=64 * index)
    (root / "DICOM" / "PAT00001" / "STU00001" / "SER00002").mkdir(parents=True)
    (root / "DICOM" / "PAT00001" / "STU00001" / "SER00002" / "IM000001").write_bytes(os.urandom(70_000))
    (root / "README.TXT").write_bytes(b"This disc holds Secure DICOM Files.\r\n")
    (root / "INDEX.HTM").write_bytes(b"<html></html>\r\n")
    return root


# --- secure media (burn, open, rekey): escrow identity, synthetic instances, OpenSSL as the reference reader ---

#: The escrow key's passphrase in the media tests (the 12-character minimum).
MEDIA_ESCROW_PASSPHRASE = "Escrow-Pass1"
#: Exit code of a failed `openssl cms -decrypt` (wrong password or key).
_OPENSSL_OK = 0


@dataclass(frozen=True)
class MediaEscrow:
    """An escrow identity as `dcmseal keys init` leaves it: encrypted key PEM, certificate PEM, passphrase."""

    directory: Path
    certificate_path: Path
    key_path: Path
    passphrase: str
    certificate: x509.Certificate
    private_key_der: bytes  # unencrypted PKCS#8 DER, what OpenRequest.private_keys takes


def make_media_escrow(directory: Path) -> MediaEscrow:
    """Create an escrow identity in ``directory`` as `dcmseal keys init` does (RSA-3072, encrypted key)."""
    identity = create_escrow_identity(
        "Media Test Hospital", directory, passphrase=MEDIA_ESCROW_PASSPHRASE.encode()
    )
    key = unlock_escrow_key(identity.key_path, MEDIA_ESCROW_PASSPHRASE.encode())
    return MediaEscrow(
        directory=identity.certificate_path.parent,
        certificate_path=identity.certificate_path,
        key_path=identity.key_path,
        passphrase=MEDIA_ESCROW_PASSPHRASE,
        certificate=load_escrow_certificate(identity.certificate_path),
        private_key_der=key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


@pytest.fixture(scope="session")
def media_escrow(tmp_path_factory: pytest.TempPathFactory) -> MediaEscrow:
    """The session's escrow identity for media tests (RSA-3072: generated once)."""
    return make_media_escrow(tmp_path_factory.mktemp("media-escrow"))


def install_escrow(escrow: MediaEscrow, data_home: Path) -> Path:
    """Copy the escrow identity to where `dcmseal keys init` puts it under ``$XDG_DATA_HOME``; return the folder."""
    target = data_home / "dcmseal" / "escrow"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(escrow.certificate_path, target / "escrow-cert.pem")
    shutil.copyfile(escrow.key_path, target / "escrow-key.pem")
    return target


def write_instance(
    path: Path,
    *,
    study_uid: str,
    series_uid: str,
    number: int,
    patient_id: str = "SYN-0001",
    pixel_bytes: int = 64,
) -> Path:
    """A small but complete Secondary Capture instance (explicit VR little endian) with new SOP Instance UID."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Synthetic^Tester"
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "120000", "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.Rows, ds.Columns = 1, pixel_bytes
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((number + i) % 256 for i in range(pixel_bytes))
    ds.preamble = bytes(128)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def encrypted_medium(tmp_path: Path, sources: list[Path], *, output_format: str = "iso") -> Path:
    """Burn ``sources`` to a password-protected medium (PBKDF2 kept cheap for the tests)."""
    out = tmp_path / ("sealed.iso" if output_format == "iso" else "sealed")
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    try:
        burn(
            BurnRequest(
                sources=tuple(map(str, sources)),
                out=out,
                operator="import-tester",
                output_format=output_format,
                password=PASSWORD.encode(),
                iterations=FAST_ITERATIONS,
            ),
            registry=registry,
            audit=FileSink(tmp_path / "burn-audit.log"),
        )
    finally:
        registry.close()
    return out


def write_series(root: Path, count: int, *, pixel_bytes: int = 64) -> list[Path]:
    """``count`` distinct instances of one new study and series under ``root`` (names I0000, I0001, ...)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    return [
        write_instance(
            root / f"I{n:04d}",
            study_uid=study_uid,
            series_uid=series_uid,
            number=n + 1,
            pixel_bytes=pixel_bytes,
        )
        for n in range(count)
    ]


def medium_files(root: Path) -> list[Path]:
    """Every file of an extracted medium or File-set, sorted; not the manifest of what dcmseal wrote there."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def openssl_decrypt(
    openssl: str,
    sealed: Path,
    *,
    password: str | None = None,
    key: tuple[Path, Path, str | None] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """`openssl cms -decrypt` one Secure DICOM File with a password or (cert, key, key passphrase); rc unchecked."""
    args = [openssl, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(sealed)]
    if password is not None:
        args += ["-pwri_password", password]
    if key is not None:
        cert_path, key_path, passphrase = key
        args += ["-recip", str(cert_path), "-inkey", str(key_path)]
        if passphrase is not None:
            args += ["-passin", f"pass:{passphrase}"]
    return run_tool(args)


def openssl_unseal(
    openssl: str,
    sealed: Path,
    *,
    password: str | None = None,
    key: tuple[Path, Path, str | None] | None = None,
) -> bytes:
    """The DigestedData DER OpenSSL decrypts from ``sealed``; the test fails with OpenSSL's words otherwise."""
    result = openssl_decrypt(openssl, sealed, password=password, key=key)
    assert result.returncode == _OPENSSL_OK, f"{sealed}: {result.stderr.decode(errors='replace')}"
    return result.stdout


def openssl_digest_verify(openssl: str, digested_data: bytes, out: Path) -> Path:
    """Wrap a bare DigestedData in a ContentInfo, `openssl cms -digest_verify` it, write the content to ``out``."""
    content_info = asn1_cms.ContentInfo(
        {"content_type": "digested_data", "content": asn1_cms.DigestedData.load(digested_data)}
    ).dump()
    out.parent.mkdir(parents=True, exist_ok=True)
    result = run_tool(
        [openssl, "cms", "-digest_verify", "-binary", "-inform", "DER", "-out", str(out)], input=content_info
    )
    assert result.returncode == _OPENSSL_OK, result.stderr.decode(errors="replace")
    assert b"Verification successful" in result.stderr + result.stdout
    return out


def dciodvfy_errors(dciodvfy: str, path: Path, *, iod: str = "BasicDirectory") -> list[str]:
    """The `Error -` lines dciodvfy prints for ``path`` (an empty list means the IOD is valid).

    dciodvfy must have recognised ``iod`` (it prints the IOD's name), so a crash is not a pass.
    """
    result = run_tool([dciodvfy, "-new", str(path)])
    text = (result.stdout + result.stderr).decode(errors="replace")
    assert iod in text.splitlines(), text
    return [line for line in text.splitlines() if line.startswith("Error -")]


def dcmftest_answers(dcmftest: str, paths: list[Path]) -> dict[str, str]:
    """What dcmftest says of each path: ``"yes"`` (Part 10) or ``"no"``."""
    result = run_tool([dcmftest, *map(str, paths)])
    answers: dict[str, str] = {}
    for line in result.stdout.decode(errors="replace").splitlines():
        verdict, _, name = line.partition(": ")
        answers[name.strip()] = verdict.strip()
    assert len(answers) == len(paths), result.stdout
    return answers


# --- the command line, in this process, with its data (registry, escrow, audit log) in tmp_path ---------------


@dataclass
class MediaCli:
    """``media_cli("burn", ...)`` runs `dcmseal` in this process; ``.fresh(...)`` runs it in a new one.

    ``$XDG_DATA_HOME`` and ``$XDG_CONFIG_HOME`` point into the test's tmp_path, so the default registry, the
    escrow certificate (installed as `keys init` leaves it) and the audit log are the test's own.
    """

    data_home: Path
    config_home: Path

    @property
    def dcmseal_dir(self) -> Path:
        return self.data_home / "dcmseal"

    @property
    def audit_log(self) -> Path:
        return self.dcmseal_dir / "audit.log"

    @property
    def registry_path(self) -> Path:
        return self.dcmseal_dir / "registry.sqlite3"

    @property
    def escrow_dir(self) -> Path:
        return self.dcmseal_dir / "escrow"

    def env(self, **extra: str) -> dict[str, str]:
        return {"XDG_DATA_HOME": str(self.data_home), "XDG_CONFIG_HOME": str(self.config_home), **extra}

    def __call__(self, *args: str | Path, env: dict[str, str] | None = None) -> Outcome:
        from dcmseal.cli.main import app

        result = CliRunner().invoke(
            app, [str(a) for a in args], env=self.env(**(env or {})), catch_exceptions=False
        )
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def fresh(self, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
        return run_dcmseal(*args, home=self.config_home, env=self.env(**(env or {})), timeout=timeout)


@pytest.fixture
def media_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, media_escrow: MediaEscrow
) -> Iterator[MediaCli]:
    """The CLI with its own data and config folders and the session's escrow identity installed."""
    for name in list(os.environ):
        if name.startswith("DCMSEAL_"):
            monkeypatch.delenv(name)
    cli = MediaCli(data_home=tmp_path / "data-home", config_home=tmp_path / "config-home")
    monkeypatch.setenv("XDG_DATA_HOME", str(cli.data_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cli.config_home))
    monkeypatch.setenv("COLUMNS", "400")
    install_escrow(media_escrow, cli.data_home)
    logger = logging.getLogger("dcmseal")
    handlers, level = list(logger.handlers), logger.level
    yield cli
    logger.handlers = handlers
    logger.setLevel(level)


@contextmanager
def mounted_tmpfs(point: Path, size: str) -> Iterator[Path]:
    """A real mount point (tmpfs of ``size``): it cannot be renamed or removed, as a stick's cannot."""
    point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "dcmseal-test-stick", str(point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    """A mounted "stick" of 8 MiB (tmpfs: no FAT driver here, but a real mount point)."""
    with mounted_tmpfs(tmp_path / "stick", "8m") as point:
        yield point


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of the test's own (SQLite in tmp_path)."""
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    try:
        yield reg
    finally:
        reg.close()


@contextmanager
def mounted_exfat(image: Path, point: Path, *, size: str = "64M") -> Iterator[tuple[Path, Path]]:
    """A real exFAT file system, as big sticks come formatted: ``image`` made by mkfs.exfat, attached to a loop
    device and mounted at ``point`` by exfat-fuse (no kernel driver needed). Yields (point, image); the image
    is detached again before the block ends, so a test can fsck it then."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    mkfs = require_tool("mkfs.exfat", "exfatprogs")
    mount = require_tool("mount.exfat-fuse", "exfat-fuse")
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run([mkfs, str(image)], check=True, capture_output=True)
    attached = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=False
    )
    if attached.returncode != 0:
        pytest.skip(f"no loop device here: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    point.mkdir()
    try:
        subprocess.run([mount, device, str(point)], check=True, capture_output=True)
        try:
            yield point, image
        finally:
            subprocess.run(["umount", str(point)], check=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
