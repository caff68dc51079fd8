"""Part 10 files, envelopes and snapshots that the part10 and cli tests build in ``tmp_path``."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms as asn1_cms
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dcmseal import cms
from tests.pydicom_data import pydicom_file

__all__ = [
    "CT_SMALL_PATIENT_NAME",
    "FAST_ITERATIONS",
    "PASSWORD",
    "PATIENT_NAME",
    "FileState",
    "copy_ct_small",
    "digested_data_der",
    "envelope_bytes",
    "fast_kdf",
    "leftovers",
    "snapshot",
    "write_part10",
]

#: A password the policy accepts (five random-looking words, no date, no patient data).
PASSWORD = "Kestrel-amber-Lantern-orbit-velvet"
#: PBKDF2 cost for tests: the count of derivations matters here, not their price.
FAST_ITERATIONS = 1000
#: PatientName of pydicom's CT_small.dcm (which also carries a TIFF preamble).
CT_SMALL_PATIENT_NAME = "CompressedSamples^CT1"
#: PatientName of the files write_part10 makes.
PATIENT_NAME = "Synthetic^Tester"


def fast_kdf(*, iterations: int = FAST_ITERATIONS, prf: cms.Prf = cms.Prf.SHA256) -> cms.Pbkdf2Params:
    """PBKDF2 parameters with a fresh salt (so no cache a test shares has them yet)."""
    return cms.Pbkdf2Params(salt=os.urandom(16), iterations=iterations, prf=prf)


def write_part10(
    path: Path,
    *,
    preamble: bytes | None = None,
    patient_name: str = PATIENT_NAME,
    pixel_bytes: int = 64,
) -> Path:
    """Write a small synthetic PS3.10 file (explicit VR little endian) and return its path."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = patient_name
    ds.PatientID = "SYN-0001"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = 1, pixel_bytes
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(256))[:pixel_bytes].ljust(pixel_bytes, b"\x5a")
    ds.preamble = bytes(128) if preamble is None else preamble
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def copy_ct_small(dst: Path) -> Path:
    """Copy pydicom's CT_small.dcm (TIFF preamble, PatientName CompressedSamples^CT1) to ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pydicom_file("CT_small.dcm"), dst)
    return dst


def envelope_bytes(
    payload: bytes,
    *,
    password: str = PASSWORD,
    inner: cms.InnerSpec | None = None,
    iterations: int = FAST_ITERATIONS,
) -> bytes:
    """Seal ``payload`` with the hazmat layer alone (no Part 10 check): a Secure-File-shaped envelope."""
    spec = cms.EnvelopeSpec(
        recipients=(cms.PasswordRecipient(password=password.encode(), kdf=fast_kdf(iterations=iterations)),),
        content_cipher=cms.ContentCipher.AES256_CBC,
        inner=inner if inner is not None else cms.DigestedContent(),
    )
    out = io.BytesIO()
    cms.encrypt(io.BytesIO(payload), out, spec, payload_size=len(payload))
    return out.getvalue()


def digested_data_der(payload: bytes, *, digest: bytes | None = None) -> bytes:
    """A bare RFC 5652 §7 DigestedData (SHA-256) over ``payload``; ``digest`` overrides the true one."""
    true_digest = hashlib.sha256(payload).digest()
    structure = asn1_cms.DigestedData(
        {
            "version": "v0",
            "digest_algorithm": {"algorithm": "sha256"},
            "encap_content_info": {"content_type": "data", "content": payload},
            "digest": true_digest if digest is None else digest,
        }
    )
    return bytes(structure.dump())


@dataclass(frozen=True, slots=True)
class FileState:
    """What must not change about an input: content, size, mode, modification time."""

    sha256: str
    size: int
    mode: int
    mtime_ns: int


def snapshot(root: Path) -> dict[str, FileState]:
    """Every regular file under ``root`` (or ``root`` itself), by relative path."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    states: dict[str, FileState] = {}
    for path in files:
        stat = path.stat()
        states[str(path.relative_to(root) if root.is_dir() else path.name)] = FileState(
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            size=stat.st_size,
            mode=stat.st_mode,
            mtime_ns=stat.st_mtime_ns,
        )
    return states


def leftovers(directory: Path) -> list[Path]:
    """Every file under ``directory`` (temporary ``*.part`` files included); [] if it does not exist."""
    if not directory.exists():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file())
