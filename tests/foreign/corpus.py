"""A corpus of foreign media, made at test time with the tools that make real ones (foreign-media.md).

Each :class:`ForeignMedium` says, for every file on it, where ``open`` must put it (``copied``, ``quarantined``,
``skipped``, ``failed``), which SOP Instance UIDs must end in the opened File-set, which medium findings
``scan`` must report, and whether ``open`` refuses the medium as a whole (a hostile structure). The importer's
tests use the same media (:func:`build_corpus`, or the ``foreign_corpus`` fixture) for import into a PACS.

Tools: DCMTK ``dcmconv`` (Implicit VR ``+ti``, big endian ``+tb``, deflated ``+td``, no File Meta ``-F``),
``dcmmkdir`` (a vendor DICOMDIR), ``genisoimage`` (``-J -R`` discs, ``-udf`` bridges), ``mkudffs`` (an empty UDF-only
image; one with files is a bridge made UDF-only), Python's ``zipfile`` (portal zips, nested zips, zip-slip). The polyglot is a real PE/DICOM file
(tests/foreign/data/pedicom-cylera.dcm); nothing here is ever executed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pycdlib
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.media.conftest import write_instance
from tests.pydicom_data import pydicom_file
from tests.scan.corpus import CYLERA, ELF_HEADER, zip_bytes

__all__ = ["OPENABLE", "POLYGLOT", "ForeignMedium", "build_corpus", "mz_stub"]

DATA = Path(__file__).parent / "data"
_UNDEFINED = 0xFFFFFFFF
#: A real PE/DICOM polyglot (Cylera's proof of concept): a Windows executable in the preamble. Never run.
POLYGLOT = CYLERA
#: The media ``open`` (and ``import``) read whole, each file where :attr:`ForeignMedium.expected` says.
OPENABLE = (
    "vendor-folder",
    "dcmmkdir-iso",
    "dcmmkdir-folder",
    "udf-bridge",
    "udf-only",
    "joliet-iso",
    "portal-zip",
)


@dataclass
class ForeignMedium:
    """One medium and what must become of each of its files."""

    name: str
    path: Path  # a folder, an ISO image or a zip
    #: Path on the medium (as ``open`` reports it) -> the status ``open`` must give it.
    expected: dict[str, str] = field(default_factory=dict)
    #: SOP Instance UIDs that must be in the opened File-set (and in the PACS after an import).
    instances: set[str] = field(default_factory=set)
    #: Codes ``scan`` must report for the medium or its files (medium.autorun, container.structure, ...).
    scan_codes: set[str] = field(default_factory=set)
    #: ``open`` refuses the whole medium (a name escaping its root, a file past the image's end): this text.
    refused: str | None = None
    #: UIDs that must NOT end in the File-set (a file outside the medium a link points at, the polyglot).
    excluded: set[str] = field(default_factory=set)


def mz_stub() -> bytes:
    """A harmless Windows "viewer": an MZ header whose e_lfanew points at a PE signature and an empty COFF
    header (no sections, no code). Scanners see a PE executable; there is nothing to run."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    dos[60:64] = (64).to_bytes(4, "little")
    coff = b"PE\0\0" + (0x014C).to_bytes(2, "little") + bytes(18)  # i386, 0 sections
    return bytes(dos) + coff + bytes(64)


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def _uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True, force=True).SOPInstanceUID)


class _Maker:
    """Distinct instances (own SOP Instance UIDs) in the encodings old discs carry."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0
        self.study = generate_uid()
        self.series = generate_uid()

    def explicit(self) -> Path:
        self.count += 1
        return write_instance(
            self.work / f"src{self.count:03d}.dcm",
            study_uid=self.study,
            series_uid=self.series,
            number=self.count,
            patient_id="FOREIGN-1",
        )

    def converted(self, *options: str) -> Path:
        source = self.explicit()
        out = source.with_suffix(".conv")
        _run("dcmconv", *options, source, out)
        return out


def _put(medium: ForeignMedium, root: Path, relative: str, source: Path | bytes, status: str) -> None:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        target.write_bytes(source)
    else:
        shutil.copyfile(source, target)
        if status == "copied":
            medium.instances.add(_uid(source))
    medium.expected[relative] = status


def _malformed(make: _Maker) -> dict[str, tuple[str, bytes]]:
    """Files that made a whole import fail (issue 13): each must end quarantined, the rest going on."""

    def instance() -> tuple[str, bytes]:
        path = make.explicit()
        return _uid(path), path.read_bytes()  # its last element is Pixel Data (7FE0,0010)

    def sequence(element: int) -> bytes:  # an undefined-length SQ holding one undefined-length item
        return struct.pack("<HH2sHI", 0x7FE1, element, b"SQ", 0, _UNDEFINED) + struct.pack(
            "<HHI", 0xFFFE, 0xE000, _UNDEFINED
        )

    found: dict[str, tuple[str, bytes]] = {}
    uid, data = instance()
    found["TRAILZIP"] = (uid, data + zip_bytes())
    uid, data = instance()
    found["TRAILELF"] = (uid, data + ELF_HEADER)
    uid, data = instance()
    found["OB_HUGE"] = (uid, data + struct.pack("<HH2sHI", 0x7FE1, 0x1010, b"OB", 0, 0xFFFFFFF0) + bytes(64))
    uid, data = instance()
    found["UNTERM"] = (uid, data + sequence(0x1020) + struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 2) + b"AB")
    uid, data = instance()
    nested = b"".join(
        struct.pack("<HH2sHI", 0x0040, 0x0275, b"SQ", 0, _UNDEFINED)
        + struct.pack("<HHI", 0xFFFE, 0xE000, _UNDEFINED)
        for _ in range(64)
    )
    ends = (struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)) * 65
    found["DEEP"] = (uid, data + sequence(0x1030) + nested + ends)
    return found


def _vendor_folder(make: _Maker, root: Path, outside: Path) -> ForeignMedium:
    """A stick from a vendor: ordinary names, every encoding, a viewer with autorun, a link, a polyglot."""
    medium = ForeignMedium("vendor-folder", root)
    root.mkdir(parents=True)
    _put(medium, root, "DICOM/ct/CT_small.dcm", pydicom_file("CT_small.dcm"), "copied")
    _put(medium, root, "mr_small_series_1.dcm", pydicom_file("MR_small.dcm"), "copied")
    _put(medium, root, "DICOM/ct/ct 2 implicit.dcm", make.converted("+ti"), "copied")
    _put(medium, root, "Images/série é/IMG0001", make.converted("-F", "+ti"), "copied")  # no File Meta
    _put(medium, root, "Images/série é/IMG0002", make.converted("-F", "+te"), "copied")
    _put(medium, root, "Images/série é/IMG0003.dcm", make.converted("+tb"), "copied")
    _put(medium, root, "old/1.2.840.99.dcm", make.converted("-F", "+tb"), "copied")
    _put(medium, root, "deflated/image001.dcm", make.converted("+td"), "copied")
    _put(medium, root, "DICOM/ct/IM_POLY", POLYGLOT, "quarantined")
    medium.excluded.add(_uid(POLYGLOT))
    # DICM, then no File Meta group at all / one without its Transfer Syntax UID: the data set decides
    for name, keep_meta in (("NOMETA", False), ("BADMETA", True)):
        source = make.explicit()
        data = source.read_bytes()
        meta_end = 144 + struct.unpack_from("<I", data, 140)[0]
        meta = data[132:meta_end]
        if keep_meta:  # drop (0002,0010) Transfer Syntax UID: the group no longer says how to read the rest
            at = meta.index(b"\x02\x00\x10\x00UI")
            length = struct.unpack_from("<H", meta, at + 6)[0]
            meta = meta[:at] + meta[at + 8 + length :]
            meta = meta[:8] + struct.pack("<I", len(meta) - 12) + meta[12:]
        else:
            meta = b""
        _put(medium, root, f"DICOM/meta/{name}", data[:132] + meta + data[meta_end:], "copied")
        medium.instances.add(_uid(source))
    for name, (uid, data) in _malformed(make).items():
        _put(medium, root, f"DICOM/bad/{name}", data, "quarantined")
        medium.excluded.add(uid)
    _put(
        medium,
        root,
        "autorun.inf",
        b"[autorun]\r\nopen=VIEWER\\viewer.exe\r\nicon=VIEWER\\viewer.exe\r\n",
        "skipped",
    )
    _put(medium, root, "VIEWER/viewer.exe", mz_stub(), "skipped")
    _put(medium, root, "VIEWER/start viewer.bat", b"@echo off\r\nstart VIEWER\\viewer.exe\r\n", "skipped")
    _put(medium, root, "README.TXT", b"Patient CD. Insert in a PC with the viewer.\r\n", "skipped")
    _put(
        medium,
        root,
        "INDEX.HTM",
        b"<html><body><a href='IHE_PDI/IMAGE1.JPG'>image</a></body></html>",
        "skipped",
    )
    _put(
        medium,
        root,
        "IHE_PDI/IMAGE1.JPG",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00" + bytes(64) + b"\xff\xd9",
        "skipped",
    )
    _put(medium, root, "REPORT.PDF", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "skipped")
    _put(medium, root, "Thumbs.db", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "skipped")
    _put(
        medium,
        root,
        "Images/série é/._IMG0001",
        b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ",
        "skipped",
    )
    _put(medium, root, ".DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(32), "skipped")
    # A link to an instance outside the medium: never followed, never in the File-set.
    stray = make.explicit()
    outside.mkdir(parents=True, exist_ok=True)
    target = outside / "secret.dcm"
    shutil.copyfile(stray, target)
    (root / "DICOM" / "ct" / "linked.dcm").symlink_to(target)
    medium.expected["DICOM/ct/linked.dcm"] = "skipped"
    medium.excluded.add(_uid(stray))
    medium.scan_codes |= {
        "medium.autorun",
        "medium.executable",
        "medium.script",
        "medium.symlink",
        "medium.html",
    }
    return medium


def _dcmmkdir_disc(make: _Maker, work: Path) -> tuple[Path, ForeignMedium]:
    """An IHE PDI-style File-set by DCMTK's dcmmkdir, with a file the DICOMDIR omits and one it lists but lacks."""
    staging = work / "pdi"
    medium = ForeignMedium("dcmmkdir-iso", work / "pdi.iso")
    for n in range(3):
        _put(medium, staging, f"DICOM/ST1/SE1/IM{n + 1}", make.explicit(), "copied")
    _run("dcmmkdir", "--input-directory", staging, "--output-file", staging / "DICOMDIR", "+r", "+I", "DICOM")
    medium.expected["DICOMDIR"] = "copied"
    # lying DICOMDIR: one referenced file is gone, one file is not referenced
    gone = staging / "DICOM" / "ST1" / "SE1" / "IM3"
    medium.instances.discard(_uid(gone))
    gone.unlink()
    del medium.expected["DICOM/ST1/SE1/IM3"]
    _put(medium, staging, "DICOM/ST1/SE1/IM9", make.explicit(), "copied")
    _put(medium, staging, "DICOM/ST1/SE1/RAW1", make.converted("-F", "+ti"), "copied")  # omitted, no header
    _put(medium, staging, "AUTORUN.INF", b"[autorun]\r\nopen=DICOM\\ST1\\SE1\\IM1\r\n", "skipped")
    (staging / "DICOM" / "LINK").symlink_to("/etc/hostname")  # Rock Ridge keeps it a link: never followed
    medium.expected["DICOM/LINK"] = "skipped"
    _run("genisoimage", "-quiet", "-J", "-R", "-o", medium.path, staging)
    medium.scan_codes |= {
        "medium.unreferenced",
        "medium.missing",
        "medium.autorun",
        "medium.autorun-dicom",
        "medium.symlink",
    }
    return staging, medium


def _udf_bridge(make: _Maker, work: Path) -> ForeignMedium:
    """A DVD-style ISO/UDF bridge whose long names are only in the UDF tree (no Joliet, no Rock Ridge)."""
    staging = work / "dvd"
    medium = ForeignMedium("udf-bridge", work / "dvd.iso")
    _put(medium, staging, "Study 2024/series one/image 0001.dcm", make.explicit(), "copied")
    _put(medium, staging, "Study 2024/series one/image 0002.dcm", make.converted("+ti"), "copied")
    _put(medium, staging, "Viewer/readme.txt", b"viewer\n", "skipped")
    _run("genisoimage", "-quiet", "-udf", "-o", medium.path, staging)
    return medium


def _joliet_disc(make: _Maker, work: Path) -> ForeignMedium:
    """A Windows-authored disc: Joliet names only (no Rock Ridge), long lower-case names, spaces, no DICOMDIR."""
    staging = work / "joliet"
    medium = ForeignMedium("joliet-iso", work / "joliet.iso")
    _put(medium, staging, "patient images/ct head 1.dcm", make.explicit(), "copied")
    _put(medium, staging, "patient images/ct head 2 (implicit).dcm", make.converted("+ti"), "copied")
    _put(medium, staging, "setup.exe", mz_stub(), "skipped")
    _run("genisoimage", "-quiet", "-J", "-joliet-long", "-o", medium.path, staging)
    medium.scan_codes.add("medium.executable")
    return medium


def _udf_only(make: _Maker, work: Path) -> ForeignMedium:
    """A UDF-only DVD image with DICOM files, read through 7-Zip.

    No tool here writes files into a UDF filesystem without mounting it (mkudffs makes it empty, and this kernel
    has no udf module), so the image is a ``genisoimage -udf`` bridge whose ISO 9660 descriptors are taken out of
    the Volume Recognition Sequence: BEA01/NSR02/TEA01 move to sector 16 (ECMA-167 2/9.1), nothing says CD001
    any more, and the UDF tree (anchor at 256, partition, file entries) is left whole, as on a UDF-only disc.
    """
    staging = work / "udf-only"
    medium = ForeignMedium("udf-only", work / "udf-only.img")
    _put(medium, staging, "Study 2024/series one/image 0001.dcm", make.explicit(), "copied")
    _put(medium, staging, "Study 2024/series one/image 0002.dcm", make.converted("+ti"), "copied")
    _put(medium, staging, "Study 2024/série deux/IM3", make.explicit(), "copied")
    _put(medium, staging, "Viewer/readme.txt", b"viewer\n", "skipped")
    bridge = work / "udf-only-bridge.iso"
    _run("genisoimage", "-quiet", "-udf", "-o", bridge, staging)
    image = bytearray(bridge.read_bytes())
    bridge.unlink()
    sector = 2048
    starts = [
        s
        for s in range(16, 32)
        if bytes(image[s * sector + 1 : s * sector + 6]) in (b"BEA01", b"NSR02", b"TEA01")
    ]
    assert len(starts) == 3, starts
    vrs = bytes(image[starts[0] * sector : (starts[-1] + 1) * sector])
    image[16 * sector : (starts[-1] + 1) * sector] = vrs.ljust((starts[-1] - 15) * sector, b"\0")
    medium.path.write_bytes(bytes(image))
    return medium


def _udf_empty(work: Path) -> ForeignMedium:
    """An empty UDF-only image (mkudffs): read, and refused as holding no file."""
    image = work / "udf-empty.img"
    with open(image, "wb") as fp:
        fp.truncate(2 * 1024 * 1024)
    _run("mkudffs", "--media-type=hd", "--blocksize=2048", image)
    return ForeignMedium("udf-empty", image, refused="holds no file", scan_codes={"medium.no-dicom"})


def _portal_zip(make: _Maker, work: Path) -> ForeignMedium:
    """A web portal's zip: one top folder, a nested zip of two instances, a raw data set, a report PDF."""
    path = work / "portal.zip"
    medium = ForeignMedium("portal-zip", path)
    inner = work / "inner.zip"
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("IM0001", "sub/IM0002.dcm"):
            source = make.explicit()
            zf.write(source, name)
            medium.instances.add(_uid(source))
            medium.expected[f"export_123/more/inner.zip!{name}"] = "copied"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, source in (
            ("export_123/CT_small.dcm", pydicom_file("CT_small.dcm")),
            ("export_123/raw/IMG0001", make.converted("-F", "+ti")),
            ("export_123/poly.dcm", POLYGLOT),
        ):
            zf.write(source, name)
            status = "quarantined" if source == POLYGLOT else "copied"
            medium.expected[name] = status
            if status == "copied":
                medium.instances.add(_uid(source))
        zf.write(inner, "export_123/more/inner.zip")
        slip = zip_bytes({"IM0001": b"x", "../../evil.dcm": b"x"})
        zf.writestr("export_123/more/slip.zip", slip)  # a zip-slip inside: that zip refused, the rest opened
        medium.expected["export_123/more/slip.zip"] = "failed"
        zf.writestr("export_123/locked/IM0009", b"\x00" * 64)  # marked encrypted below: never guessed
        medium.expected["export_123/locked/IM0009"] = "failed"
        zf.writestr("export_123/report.pdf", b"%PDF-1.4\n%%EOF\n")
        medium.expected["export_123/report.pdf"] = "skipped"
    inner.unlink()
    _mark_encrypted(path, "export_123/locked/IM0009")
    medium.excluded.add(_uid(POLYGLOT))
    medium.scan_codes |= {"container.unreadable", "container.structure"}
    return medium


def _mark_encrypted(archive: Path, name: str) -> None:
    """Set the "encrypted" flag (APPNOTE 4.4.4 bit 0) of one member, in its local and central headers, as a
    portal's password-protected zip has it."""
    data = bytearray(archive.read_bytes())
    encoded = name.encode()
    for signature, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = data.find(signature)
        while at != -1:
            if data[at + name_at : at + name_at + len(encoded)] == encoded:
                data[at + flag_at] |= 0x01
            at = data.find(signature, at + 4)
    archive.write_bytes(bytes(data))


def _zip_slip(make: _Maker, work: Path) -> ForeignMedium:
    path = work / "slip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(make.explicit(), "IM0001")
        zf.writestr("../../evil.dcm", b"x")
    return ForeignMedium(
        "zip-slip", path, refused="'..' or '.' in its path", scan_codes={"container.structure"}
    )


def _hostile_iso(work: Path) -> ForeignMedium:
    """An image whose identifiers are '..', hold '/' and an escape character (pycdlib made, then patched)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1)
    iso.add_fp(__import__("io").BytesIO(b"evil"), 4, iso_path="/QQ.;1")
    iso.add_fp(__import__("io").BytesIO(b"evil"), 4, iso_path="/AXB.;1")
    iso.add_fp(__import__("io").BytesIO(b"evil"), 4, iso_path="/CXD.;1")
    clean = work / "clean.iso"
    iso.write(str(clean))
    iso.close()
    path = work / "hostile.iso"
    path.write_bytes(
        clean.read_bytes()
        .replace(b"QQ.;1", b"...;1")
        .replace(b"AXB.;1", b"A/B.;1")
        .replace(b"CXD.;1", b"C\x1bD.;1")
    )
    clean.unlink()
    return ForeignMedium(
        "hostile-iso", path, refused="unsafe as a path component", scan_codes={"container.structure"}
    )


def _truncated_iso(make: _Maker, work: Path) -> ForeignMedium:
    staging = work / "trunc"
    write_instance(staging / "IM0", study_uid=make.study, series_uid=make.series, number=100)
    (staging / "IM1").write_bytes(bytes(range(256)) * 1200)  # 300 KB, the last file of the image
    whole = work / "whole.iso"
    _run("genisoimage", "-quiet", "-o", whole, staging)
    iso = pycdlib.PyCdlib()
    iso.open(str(whole))
    start = iso.get_record(iso_path="/IM1.;1").extent_location() * 2048
    iso.close()
    path = work / "truncated.iso"
    path.write_bytes(whole.read_bytes()[: start + 100_000])  # IM1 cut in its middle
    whole.unlink()
    return ForeignMedium(
        "truncated-iso", path, refused="truncated ISO image", scan_codes={"container.structure"}
    )


def build_corpus(root: Path) -> dict[str, ForeignMedium]:
    """Make every foreign medium under ``root`` (a few MB, a few seconds); by name."""
    work = root / "work"
    work.mkdir(parents=True)
    make = _Maker(work / "sources")
    (work / "sources").mkdir()
    media = [_vendor_folder(make, root / "vendor-folder", root / "outside")]
    staging, disc = _dcmmkdir_disc(make, work)
    media.append(disc)
    folder_disc = ForeignMedium(
        "dcmmkdir-folder",
        staging,
        expected=dict(disc.expected),
        instances=set(disc.instances),
        scan_codes=set(disc.scan_codes),
    )
    media.append(folder_disc)
    media.append(_udf_bridge(make, work))
    media.append(_joliet_disc(make, work))
    media.append(_udf_only(make, work))
    media.append(_udf_empty(work))
    media.append(_portal_zip(make, work))
    media.append(_zip_slip(make, work))
    media.append(_hostile_iso(work))
    media.append(_truncated_iso(make, work))
    return {m.name: m for m in media}
