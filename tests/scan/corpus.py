"""The scanner's test corpus, built from scratch: polyglot preambles, hidden payloads, trailing data, documents, media.

Nothing here is executable: the PE headers are the 64-byte DOS header plus ``PE\\0\\0`` with no code, the ELF
and Mach-O headers are magics and zeros. They are exactly what a scanner must recognise, and no loader runs them.
"""

from __future__ import annotations

import io
import secrets
import struct
import zipfile
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

__all__ = [
    "CYLERA",
    "ELF_HEADER",
    "MACHO_MAGICS",
    "PE_HEADER",
    "element",
    "encapsulated_pdf",
    "part10",
    "pe_bytes",
    "preamble_of",
    "split_part10",
    "zip_bytes",
]

#: The PE/DICOM polyglot of the CVE-2019-11687 research (../shared/corpus, copied into the repository so the
#: tests are hermetic; never executed).
CYLERA = Path(__file__).resolve().parents[1] / "foreign" / "data" / "pedicom-cylera.dcm"


def pe_bytes(e_lfanew: int = 0x40, total: int = 128) -> bytes:
    """A DOS MZ header whose e_lfanew (at 0x3C) points at ``PE\\0\\0`` + an i386 COFF header with 0 sections."""
    data = bytearray(max(total, e_lfanew + 24))
    data[0:2] = b"MZ"
    data[0x3C:0x40] = struct.pack("<I", e_lfanew)
    data[e_lfanew : e_lfanew + 6] = b"PE\x00\x00\x4c\x01"
    return bytes(data)


PE_HEADER = pe_bytes()
ELF_HEADER = b"\x7fELF\x02\x01\x01" + bytes(121)
MACHO_MAGICS = (
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"\xca\xfe\xba\xbf",
)


def preamble_of(content: bytes) -> bytes:
    """``content`` padded with zeros to a 128-byte preamble."""
    assert len(content) <= 128
    return content + bytes(128 - len(content))


def zip_bytes(members: dict[str, bytes] | None = None) -> bytes:
    """A real ZIP archive in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in (members or {"payload.txt": b"echo hostile\n"}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _fixed_length_uid() -> str:
    """A unique UUID-derived UID (PS3.5 B.2) of always the same length: 39 digits after "2.25.".

    pydicom's ``generate_uid`` draws a number of up to 38 digits, so now and then a file comes out two bytes
    shorter; the layout cache keys on file size, and tests that count its hits need equal sizes.
    """
    return f"2.25.{10**38 + secrets.randbelow(2**128 - 10**38)}"


def _dataset(sop_class: str = SecondaryCaptureImageStorage, **extra: object) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(_fixed_length_uid())
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Scan^Corpus"
    ds.PatientID = "SCAN-0001"
    ds.Modality = "OT"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def part10(
    *,
    preamble: bytes = bytes(128),
    pixels: bytes | None = bytes(range(64)),
    private: list[tuple[int, str, bytes]] | None = None,
    dataset: Dataset | None = None,
) -> bytes:
    """A Part 10 file (explicit VR little endian) with ``preamble`` and optional private elements.

    ``private`` items are (element, VR, value) in group 0009 under creator "SCANTEST" (block 0x10).
    """
    ds = dataset if dataset is not None else _dataset()
    if pixels is not None and dataset is None:
        ds.Rows, ds.Columns = (1, len(pixels)) if len(pixels) < 65536 else (len(pixels) // 1024, 1024)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = pixels
    if private:
        block = ds.private_block(0x0009, "SCANTEST", create=True)
        for elem, vr, value in private:
            block.add_new(elem, vr, value)
    ds.preamble = preamble
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def split_part10(data: bytes) -> tuple[bytes, bytes]:
    """(preamble + DICM + File Meta, data set) of a file written by :func:`part10`."""
    assert data[132:136] == b"\x02\x00\x00\x00"
    assert data[136:138] == b"UL"
    end = 144 + struct.unpack_from("<I", data, 140)[0]
    return data[:end], data[end:]


def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element."""
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV", b"SV", b"UV"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def encapsulated_pdf(pdf: bytes, *, mime: str = "application/pdf", preamble: bytes = bytes(128)) -> bytes:
    """An Encapsulated PDF Storage file (PS3.3 A.45.1) holding ``pdf``."""
    ds = _dataset(
        "1.2.840.10008.5.1.4.1.1.104.1",
        MIMETypeOfEncapsulatedDocument=mime,
        EncapsulatedDocument=pdf + (b"\x00" if len(pdf) % 2 else b""),
        EncapsulatedDocumentLength=len(pdf),
        BurnedInAnnotation="YES",
        DocumentTitle="report",
    )
    ds.Modality = "DOC"
    return part10(preamble=preamble, pixels=None, dataset=ds)


PDF_CLEAN = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PDF_JAVASCRIPT = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R /OpenAction 3 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"3 0 obj << /S /JavaScript /JS (app.alert('pwned')) >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)
#: The same action with the name hex-escaped (PDF 1.2+ names, ISO 32000-1 §7.3.5): /J#61vaScript is /JavaScript.
PDF_ESCAPED = b"%PDF-1.4\n1 0 obj << /Type /Catalog /AA << /O << /S /J#61vaScript /J#53 (app.alert(1)) >> >> >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
