"""Containers read in place: zip members that cannot be read, names that hide control characters, zips in zips."""

from __future__ import annotations

import io
import random
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import pycdlib
import pytest

from dcmseal.errors import InputError
from dcmseal.reader.containers import NestingLimits, open_archive, printable_name
from dcmseal.scan import ScanReport, Verdict, scan_paths
from tests.scan.corpus import PE_HEADER, part10


def test_zip_bomb_and_symlink_members_are_not_read(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", bytes(8 * 1024 * 1024))
        link = zipfile.ZipInfo("link")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("IM1", part10(preamble=PE_HEADER))
    with open_archive(archive) as opened:
        problems = {m.name: m.problem for m in opened.members}
    assert problems["zeros.dcm"] is not None
    assert "zip bomb" in problems["zeros.dcm"]
    assert problems["link"] == "symbolic link in the archive"
    assert problems["IM1"] is None
    report = scan_paths([archive])
    verdicts = {f.path: (f.verdict, f.codes()) for f in report.files}
    assert verdicts["zeros.dcm"] == (Verdict.SUSPICIOUS, ("container.unreadable",))
    assert verdicts["IM1"][0] is Verdict.MALICIOUS


def test_not_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "x.zip"
    bogus.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputError), open_archive(bogus):
        pass


def test_printable_name() -> None:
    assert printable_name("IM\x1b[31m1\n") == "IM\\x1b[31m1\\x0a"


# --- archives inside archives -----------------------------------------------------------------------------------


def _zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _verdicts(report: ScanReport) -> dict[str, tuple[Verdict, tuple[str, ...]]]:
    return {f.path: (f.verdict, f.codes()) for f in report.files}


def test_a_pe_dicom_in_a_zip_in_a_zip_is_found(tmp_path: Path) -> None:
    inner = _zip({"IMG1": part10(preamble=PE_HEADER), "IMG2": part10()})
    outer = tmp_path / "outer.zip"
    outer.write_bytes(_zip({"inner.zip": inner, "README.TXT": b"study\r\n"}))
    report = scan_paths([outer])
    verdicts = _verdicts(report)
    assert verdicts["inner.zip!IMG1"][0] is Verdict.MALICIOUS
    assert "preamble.pe" in verdicts["inner.zip!IMG1"][1]
    assert verdicts["inner.zip!IMG2"] == (Verdict.CLEAN, ())
    assert verdicts["inner.zip"] == (Verdict.CLEAN, ("container.opened",))
    assert report.verdict is Verdict.MALICIOUS

    # The same zip on a folder medium, and inside an ISO image: one more level in the names.
    medium = tmp_path / "medium"
    medium.mkdir()
    shutil.copyfile(outer, medium / "outer.zip")
    (medium / "IM0").write_bytes(part10())
    verdicts = _verdicts(scan_paths([medium]))
    assert verdicts["outer.zip!inner.zip!IMG1"][0] is Verdict.MALICIOUS
    assert verdicts["outer.zip"] == (Verdict.CLEAN, ("container.opened",))
    assert verdicts["IM0"] == (Verdict.CLEAN, ())
    image = tmp_path / "medium.iso"
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1)
    iso.add_fp(io.BytesIO(outer.read_bytes()), outer.stat().st_size, "/OUTER.ZIP;1")
    iso.write(str(image))
    iso.close()
    verdicts = _verdicts(scan_paths([image]))
    assert verdicts["OUTER.ZIP!inner.zip!IMG1"][0] is Verdict.MALICIOUS


def test_an_executable_in_a_nested_zip_gets_the_medium_checks(tmp_path: Path) -> None:
    outer = tmp_path / "outer.zip"
    inner = _zip({"AUTORUN.INF": b"[autorun]\r\nopen=IMG1\r\n", "IMG1": part10(preamble=PE_HEADER)})
    outer.write_bytes(_zip({"inner.zip": inner}))
    report = scan_paths([outer])
    autorun = [f for f in report.medium_findings if f.code == "medium.autorun-dicom"]
    assert len(autorun) == 1
    assert autorun[0].message.startswith("inner.zip!AUTORUN.INF launches IMG1")


def test_nesting_deeper_than_the_limit_is_a_finding(tmp_path: Path) -> None:
    data = _zip({"IMG": part10(preamble=PE_HEADER)})
    for level in range(5, 0, -1):  # L1.zip!L2.zip!L3.zip!L4.zip!L5.zip!IMG
        data = _zip({f"L{level}.zip": data})
    archive = tmp_path / "deep.zip"
    archive.write_bytes(data)
    verdicts = _verdicts(scan_paths([archive]))
    assert verdicts["L1.zip!L2.zip"][1] == ("container.opened",)
    # Level 4 is not opened: a finding on it, nothing below it read.
    assert verdicts["L1.zip!L2.zip!L3.zip!L4.zip"][0] is Verdict.SUSPICIOUS
    assert verdicts["L1.zip!L2.zip!L3.zip!L4.zip"][1] == ("file.zip", "container.limit")
    assert not any(path.endswith("IMG") for path in verdicts)
    report = scan_paths([archive], nesting=NestingLimits(depth=6))
    assert _verdicts(report)["L1.zip!L2.zip!L3.zip!L4.zip!L5.zip!IMG"][0] is Verdict.MALICIOUS


def test_a_compressible_bomb_inside_a_nested_zip_is_not_expanded(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("zeros", "w") as member,
    ):
        for _ in range(64):  # 64 MiB of zeros deflate to ~64 KiB: a ratio of ~1000
            member.write(bytes(1024 * 1024))
    outer = tmp_path / "outer.zip"
    outer.write_bytes(_zip({"bomb.zip": buffer.getvalue(), "IMG": part10()}))
    tracemalloc.start()
    try:
        report = scan_paths([outer])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    verdicts = _verdicts(report)
    assert verdicts["bomb.zip!zeros"] == (Verdict.SUSPICIOUS, ("container.unreadable",))
    assert verdicts["IMG"] == (Verdict.CLEAN, ())
    assert peak < 8 * 1024 * 1024  # the 64 MiB member was never decompressed


def test_nested_bytes_and_members_are_bounded(tmp_path: Path) -> None:
    # Incompressible members: each one passes the per-member ratio check, only the totals stop them.
    rng = random.Random(7)
    layer = {f"F{i:02d}": rng.randbytes(64 * 1024) for i in range(20)}
    outer = tmp_path / "outer.zip"
    outer.write_bytes(_zip({"a.zip": _zip(layer), "b.zip": _zip(layer), "IMG": part10()}))
    limits = NestingLimits(
        total_bytes=2 * 1024 * 1024
    )  # a.zip (1.3 MiB in memory + 1.25 MiB of members) passes
    verdicts = _verdicts(scan_paths([outer], nesting=limits))
    assert verdicts["a.zip"] == (Verdict.SUSPICIOUS, ("file.zip", "container.limit"))
    assert not any("!" in path for path in verdicts)
    limits = NestingLimits(total_bytes=4 * 1024 * 1024)
    verdicts = _verdicts(scan_paths([outer], nesting=limits))
    assert verdicts["a.zip"] == (Verdict.CLEAN, ("container.opened",))
    assert verdicts["b.zip"] == (Verdict.SUSPICIOUS, ("file.zip", "container.limit"))
    assert sum(path.startswith("a.zip!") for path in verdicts) == 20
    verdicts = _verdicts(scan_paths([outer], nesting=NestingLimits(total_members=30)))
    assert verdicts["a.zip"][1] == ("container.opened",)
    assert verdicts["b.zip"][1] == ("file.zip", "container.limit")
    verdicts = _verdicts(scan_paths([outer], nesting=NestingLimits(archive_bytes=1024 * 1024)))
    assert verdicts["a.zip"][1] == ("file.zip", "container.limit")


def test_a_corrupt_nested_zip_is_a_finding(tmp_path: Path) -> None:
    outer = tmp_path / "outer.zip"
    outer.write_bytes(_zip({"bad.zip": b"PK\x03\x04" + bytes(100), "IMG": part10()}))
    verdicts = _verdicts(scan_paths([outer]))
    assert verdicts["bad.zip"] == (Verdict.SUSPICIOUS, ("file.zip", "container.unreadable"))
    assert verdicts["IMG"] == (Verdict.CLEAN, ())


def test_a_nested_member_with_a_bad_crc_is_a_finding(tmp_path: Path) -> None:
    image = part10(preamble=PE_HEADER)
    inner = bytearray(_zip({"IMG": image, "OK": part10()}, compression=zipfile.ZIP_STORED))
    at = inner.find(image) + 200  # inside the stored data: the CRC no longer matches
    inner[at] ^= 0xFF
    outer = tmp_path / "outer.zip"
    outer.write_bytes(_zip({"inner.zip": bytes(inner)}))
    verdicts = _verdicts(scan_paths([outer]))
    assert verdicts["inner.zip!IMG"][1] == ("container.unreadable",)
    report = next(f for f in scan_paths([outer]).files if f.path == "inner.zip!IMG")
    assert "Bad CRC-32" in report.findings[0].message  # zipfile.BadZipFile: caught, not a crash
    assert verdicts["inner.zip!OK"] == (Verdict.CLEAN, ())
