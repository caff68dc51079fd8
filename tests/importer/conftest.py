"""Fixtures of the import tests: one authenticated Orthanc for the session, DCMTK storescp, media to import.

Orthanc is started once (HTTP authentication on, a known AE title that accepts only our calling AE title) and
cleared by each test; the tests that stop a PACS midway start their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from dcmseal.importer import DicomWebTarget, DimseTarget, RetryPolicy, Target, UidPolicy, load_reconciliation
from dcmseal.importer.pipeline import ImportRequest
from dcmseal.importer.send import Outgoing
from tests.media.conftest import encrypted_medium, write_instance
from tests.peers.orthanc import OrthancPeer, free_port, running_orthanc
from tests.peers.tools import require_tool
from tests.pydicom_data import pydicom_file
from tests.scan.corpus import CYLERA

#: The PACS's AE title, and the only calling AE title it accepts C-STORE from (DicomAlwaysAllowStore false).
PACS_AET = "PACSTEST"
OUR_AET = "DCMSEAL"
HTTP_USER = "importer"
HTTP_PASSWORD = "Pacs-basalt-Heron-9"
#: Retries for tests: a few quick attempts, so a dead PACS fails in about a second.
FAST_RETRY = RetryPolicy(attempts=3, initial_delay_s=0.1, max_delay_s=0.4, max_total_s=5.0)

PLAIN_SET = pydicom_file("DICOMDIR").parent  # pydicom's dicomdirtests: 31 instances, 2 patients
PLAIN_FOLDERS = ("77654033", "98892001", "98892003")
PEDICOM = CYLERA  # the real PE/DICOM sample, in the repository
#: The dicomdirtests patients and the local patients a mapping makes of them.
PLAIN_PATIENTS = {
    "77654033": ("LOC-A1", "Local^Alpha", "19600101", "M"),
    "98890234": ("LOC-B2", "Local^Beta", "19700202", "F"),
}


def orthanc_config(calling_aet: str = OUR_AET) -> dict[str, object]:
    """Orthanc checks the called AE title and stores only from ``calling_aet`` (its one known modality)."""
    return {
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": False,
        "DicomModalities": {"dcmseal": [calling_aet, "127.0.0.1", 104]},
    }


def start_pacs(
    workdir: Path, *, ports: tuple[int, int] | None = None
) -> contextlib.AbstractContextManager[OrthancPeer]:
    return running_orthanc(
        workdir, aet=PACS_AET, extra_config=orthanc_config(), users={HTTP_USER: HTTP_PASSWORD}, ports=ports
    )


@pytest.fixture(scope="session")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    """The session's Orthanc: HTTP basic authentication on, C-STORE only from OUR_AET to PACS_AET."""
    with start_pacs(tmp_path_factory.mktemp("pacs")) as peer:
        yield peer


@pytest.fixture
def orthanc(pacs: OrthancPeer) -> OrthancPeer:
    """The session's Orthanc, emptied for this test."""
    pacs.clear()
    return pacs


def dimse_target(peer: OrthancPeer) -> DimseTarget:
    return DimseTarget(called_aet=peer.aet, host="127.0.0.1", port=peer.dicom_port)


def stow_target(peer: OrthancPeer) -> DicomWebTarget:
    return DicomWebTarget(url=peer.dicomweb_url)


def target_url(target: Target) -> str:
    return str(target)


# --- DCMTK storescp, a second C-STORE receiver ------------------------------------------------------------------


@dataclass(frozen=True)
class StoreScp:
    port: int
    aet: str
    directory: Path
    pid: int

    @property
    def target(self) -> DimseTarget:
        return DimseTarget(called_aet=self.aet, host="127.0.0.1", port=self.port)

    def received(self) -> list[Path]:
        return sorted(p for p in self.directory.rglob("*") if p.is_file())


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def running_storescp(tmp_path: Path, *options: str) -> Iterator[StoreScp]:
    """DCMTK ``storescp`` (with ``options``) on a free loopback port, writing into ``tmp_path/storescp``;
    stopped by its PID after."""
    binary = require_tool("storescp", "dcmtk")
    directory = tmp_path / "storescp"
    directory.mkdir()
    for _attempt in range(3):
        port = free_port()
        log = open(tmp_path / "storescp.log", "wb")  # noqa: SIM115 - closed below, after the process
        process = subprocess.Popen(
            [
                binary,
                "--aetitle",
                "STORESCP",
                "--output-directory",
                str(directory),
                "--accept-all",
                *options,
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if _wait_port(port, process):
                yield StoreScp(port=port, aet="STORESCP", directory=directory, pid=process.pid)
                return
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
            log.close()
    pytest.fail("storescp did not start: " + (tmp_path / "storescp.log").read_text(errors="replace"))


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreScp]:
    """DCMTK ``storescp`` on a free loopback port, writing into a temp folder."""
    with running_storescp(tmp_path) as peer:
        yield peer


def import_argv(medium: Path, to: str, tmp_path: Path, *extra: str) -> list[str]:
    """``dcmseal import`` of ``medium`` to ``to`` as a process, journal and quarantine in ``tmp_path``, JSON out."""
    return [
        str(Path(sys.executable).with_name("dcmseal")),
        "import",
        str(medium),
        "--to",
        to,
        "--aet",
        OUR_AET,
        "--journal",
        str(tmp_path / "journal.sqlite3"),
        "--quarantine",
        str(tmp_path / "quarantine"),
        "--json",
        *extra,
    ]


# --- media to import -----------------------------------------------------------------------------------------


def plain_medium(root: Path) -> Path:
    """A plain folder medium: pydicom's dicomdirtests (DICOMDIR + 31 instances; some preambles carry a stray byte)."""
    root.mkdir(parents=True)
    shutil.copyfile(PLAIN_SET / "DICOMDIR", root / "DICOMDIR")
    for folder in PLAIN_FOLDERS:
        shutil.copytree(PLAIN_SET / folder, root / folder)
    return root


def import_request(
    tmp_path: Path,
    medium: Path,
    target: Target,
    *,
    verify: bool = True,
    uid_policy: UidPolicy = UidPolicy.KEEP,
) -> ImportRequest:
    """An import of ``medium`` to ``target`` as the tests run it: journal and quarantine in ``tmp_path``,
    our AE title, the Orthanc HTTP login, fast retries."""
    return ImportRequest(
        medium=medium,
        target=target,
        operator="import-tester",
        journal=tmp_path / "journal.sqlite3",
        quarantine=tmp_path / "quarantine",
        calling_aet=OUR_AET,
        username=HTTP_USER,
        http_password=HTTP_PASSWORD,
        retry=FAST_RETRY,
        uid_policy=uid_policy,
        verify=verify,
    )


def outgoing(paths: list[Path]) -> list[Outgoing]:
    """The files as the senders take them (key: the file name), their UIDs read from the files."""
    items = []
    for path in paths:
        ds = dcmread(path, stop_before_pixels=True)
        items.append(
            Outgoing(
                key=path.name,
                path=path,
                sop_class_uid=str(ds.SOPClassUID),
                sop_instance_uid=str(ds.SOPInstanceUID),
                transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            )
        )
    return items


def foreign_study(
    root: Path, count: int, *, patient_id: str = "EXT-7731", pixel_bytes: int = 64
) -> list[Path]:
    """``count`` instances of one new study of the foreign patient ``patient_id``, written under ``root``."""
    study, series = generate_uid(), generate_uid()
    return [
        write_instance(
            root / f"I{n:04d}",
            study_uid=study,
            series_uid=series,
            number=n + 1,
            patient_id=patient_id,
            pixel_bytes=pixel_bytes,
        )
        for n in range(count)
    ]


#: A minimal DOS header + PE signature: ``MZ``, e_lfanew = 0x40, ``PE\0\0``, i386 (benign: no sections).
PE_PREAMBLE = (b"MZ" + bytes(0x3A) + (0x40).to_bytes(4, "little") + b"PE\0\0" + b"\x4c\x01").ljust(128, b"\0")


#: A PDF that acts when opened: the sanitizer refuses to rewrite it, so the import quarantines it.
HOSTILE_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /OpenAction 2 0 R >> endobj\n"
    b"2 0 obj << /S /JavaScript /JS (app.alert(1)) >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)


def hostile_pdf(path: Path, *, patient_id: str, study_uid: str) -> Path:
    """An Encapsulated PDF instance whose document carries /OpenAction and /JavaScript."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = EncapsulatedPDFStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "Synthetic^Tester", patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.Modality, ds.ConversionType, ds.BurnedInAnnotation, ds.DocumentTitle = "DOC", "WSD", "YES", "report"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = HOSTILE_PDF + b"\n" * (len(HOSTILE_PDF) % 2)
    ds.preamble = bytes(128)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def polyglot_medium(root: Path) -> Path:
    """A plain medium with a synthetic PE/DICOM polyglot, the real PEDICOM sample when present, a PDF with
    JavaScript, clean instances, and an autorun.inf and an .exe beside the File-set."""
    files = foreign_study(root / "DICOM", 3, patient_id="EXT-POLY")
    study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    hostile_pdf(root / "DICOM" / "REPORT", patient_id="EXT-POLY", study_uid=study)
    data = bytearray(files[0].read_bytes())
    data[:128] = PE_PREAMBLE
    files[0].write_bytes(bytes(data))
    if PEDICOM.is_file():
        shutil.copyfile(PEDICOM, root / "DICOM" / "PEDICOM")
    (root / "AUTORUN.INF").write_bytes(b"[autorun]\r\nopen=VIEWER.EXE\r\n")
    (root / "VIEWER.EXE").write_bytes(PE_PREAMBLE + bytes(256))
    return root


def write_mapping(path: Path, rows: list[dict[str, str]]) -> Path:
    """A CSV mapping file with the columns the rows use."""
    import csv

    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.DictWriter(fp, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def plain_mapping(path: Path) -> Path:
    rows = [
        {"foreign_patient_id": pid, "patient_id": loc, "patient_name": name, "birth_date": bd, "sex": sex}
        for pid, (loc, name, bd, sex) in PLAIN_PATIENTS.items()
    ]
    rows += [
        {"foreign_patient_id": "77654033", "foreign_accession": "2", "accession": "ACC-A-2"},
        {"foreign_patient_id": "98890234", "foreign_accession": "2", "accession": "ACC-B-2"},
        {"foreign_patient_id": "98890234", "foreign_accession": "428", "accession": "ACC-B-428"},
    ]
    return write_mapping(path, rows)


def sop_uids(paths: list[Path]) -> set[str]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths}


def medium_instances(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "DICOMDIR")


__all__ = [
    "FAST_RETRY",
    "HTTP_PASSWORD",
    "HTTP_USER",
    "OUR_AET",
    "PACS_AET",
    "PEDICOM",
    "PE_PREAMBLE",
    "PLAIN_PATIENTS",
    "StoreScp",
    "UidPolicy",
    "dimse_target",
    "encrypted_medium",
    "foreign_study",
    "import_argv",
    "import_request",
    "load_reconciliation",
    "medium_instances",
    "outgoing",
    "plain_mapping",
    "plain_medium",
    "polyglot_medium",
    "running_storescp",
    "sop_uids",
    "start_pacs",
    "stow_target",
    "write_mapping",
]


@pytest.fixture(scope="session")
def dcentvfy_bin() -> str:
    return require_tool("dcentvfy", "dicom3tools")
