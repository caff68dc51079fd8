"""Memory stays bounded by the chunk size, not the file size: seal and unseal 512 MiB in a child process."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

PAYLOAD_MIB = 512
#: The issue's budget for the peak resident set of one seal or unseal, interpreter and imports included.
PEAK_RSS_LIMIT_MB = 150
MIB = 1024 * 1024

# Runs in a fresh interpreter so its peak RSS is this work's alone. Prints the kernel's high-water mark.
_CHILD = """
import sys
from pathlib import Path
from dcmseal import cms
from dcmseal.part10 import seal_file, unseal_file

src, sealed, out = (Path(p) for p in sys.argv[1:4])
kdf = cms.Pbkdf2Params(salt=b"memory-test-salt", iterations=1000, prf=cms.Prf.SHA256)
password = b"Kestrel-amber-Lantern-orbit-velvet"
seal_file(src, sealed, recipients=[cms.PasswordRecipient(password=password, kdf=kdf)])
unseal_file(sealed, out, credentials=[cms.PasswordCredential(password=password)])
with open("/proc/self/status") as fp:
    print(next(line for line in fp if line.startswith("VmHWM:")).split()[1])
"""


def _part10_header(payload_length: int) -> bytes:
    """File Meta + a tiny data set + the header of an OB Pixel Data of ``payload_length`` (explicit VR LE)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = UID("2.25.271828182845904523536028747135266249775")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    # A non-zero preamble, so the test also sees that sealing zeroes it (PS3.10 §7.5).
    ds.preamble = bytes(range(128))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, payload_length)


def _write_big_part10(path: Path) -> str:
    """Write the input (one random 1 MiB block repeated); return the SHA-256 it must have once unsealed."""
    block = os.urandom(MIB)
    header = _part10_header(PAYLOAD_MIB * MIB)
    expected = hashlib.sha256(bytes(128) + header[128:])
    with open(path, "wb") as fp:
        fp.write(header)
        for _ in range(PAYLOAD_MIB):
            fp.write(block)
            expected.update(block)
    return expected.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS read from Linux rusage and /proc")
def test_seal_and_unseal_512_mib_in_bounded_memory(tmp_path: Path) -> None:
    src, sealed, out = tmp_path / "big.dcm", tmp_path / "big.sealed", tmp_path / "big.out.dcm"
    expected = _write_big_part10(src)

    log_out, log_err = tmp_path / "child.out", tmp_path / "child.err"
    with open(log_out, "wb") as stdout, open(log_err, "wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(src), str(sealed), str(out)],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        # Reaped here with wait4 for the exit status and this child's own ru_maxrss (reported, see below).
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, log_err.read_text(errors="replace")

    peak_mb = usage.ru_maxrss * 1024 / 1e6  # Linux reports KiB
    hwm_mb = int(log_out.read_text().split()[-1]) * 1024 / 1e6
    # ru_maxrss survives exec: a child forked from a large pytest process inherits pytest's high-water
    # mark. VmHWM, read by the child itself, starts afresh at exec, so it is the one that counts.
    assert hwm_mb < PEAK_RSS_LIMIT_MB, (
        f"VmHWM {hwm_mb:.0f} MB (ru_maxrss {peak_mb:.0f} MB) for {PAYLOAD_MIB} MiB"
    )

    assert sealed.stat().st_size > src.stat().st_size
    assert out.stat().st_size == src.stat().st_size
    assert _sha256_file(out) == expected  # the input with its preamble zeroed, byte for byte
