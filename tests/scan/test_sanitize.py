"""Sanitize: safe copies that rescan clean, every change reported, refusals, originals never modified."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest

from dcmseal.errors import InputError
from dcmseal.scan import Verdict, sanitize_file, scan_file
from tests.pydicom_data import pydicom_file
from tests.scan.corpus import (
    CYLERA,
    ELF_HEADER,
    PDF_JAVASCRIPT,
    PE_HEADER,
    element,
    encapsulated_pdf,
    part10,
    pe_bytes,
    preamble_of,
    split_part10,
    zip_bytes,
)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pe_preamble_and_private_payload_removed(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.dcm", part10(preamble=PE_HEADER, private=[(0x00, "OB", pe_bytes(total=256))]))
    before = _digest(src)
    result = sanitize_file(src, tmp_path / "out" / "in.dcm")
    assert result.output is not None
    assert result.refused is None
    assert result.report.verdict is Verdict.MALICIOUS  # the report is of the original
    assert result.changes[0] == "preamble zeroed (PE executable header)"
    assert any(c.startswith("removed (0009,1000)") for c in result.changes)
    assert scan_file(result.output).verdict is Verdict.CLEAN
    assert _digest(src) == before
    ds = pydicom.dcmread(result.output)
    assert ds.preamble == bytes(128)
    assert ds.PatientName == "Scan^Corpus"
    assert (0x0009, 0x1000) not in ds


def test_cylera_becomes_a_clean_dicom_file(tmp_path: Path) -> None:
    before = _digest(CYLERA)
    result = sanitize_file(CYLERA, tmp_path / "cylera.dcm")
    assert result.output is not None
    assert result.changes == (
        "preamble zeroed (PE executable header)",
        "removed (0009,0000) (104820 bytes at offset 352: Group Length with VR OB)",
    )
    assert scan_file(result.output).verdict is Verdict.CLEAN
    assert result.output.stat().st_size == CYLERA.stat().st_size - 104820
    assert _digest(CYLERA) == before
    original = pydicom.dcmread(CYLERA, stop_before_pixels=True)
    cleaned = pydicom.dcmread(result.output, stop_before_pixels=True)
    assert cleaned.SOPInstanceUID == original.SOPInstanceUID


def test_trailing_zip_cut(tmp_path: Path) -> None:
    clean = part10()
    src = _write(tmp_path / "z.dcm", clean + zip_bytes())
    result = sanitize_file(src, tmp_path / "z-out.dcm")
    assert result.output is not None
    assert result.output.read_bytes() == clean
    assert result.changes == (
        f"removed {len(zip_bytes())} bytes after the end of the data set (offset {len(clean)})",
    )


def test_group_length_payload_removed_and_order_restored(tmp_path: Path) -> None:
    head, body = split_part10(part10())
    src = _write(tmp_path / "g.dcm", head + element(0x0009, 0x0000, b"OB", b"PE\x00\x00" + bytes(60)) + body)
    result = sanitize_file(src, tmp_path / "g-out.dcm")
    assert result.output is not None
    assert result.output.read_bytes() == head + body


def test_keep_tiff(tmp_path: Path) -> None:
    src = pydicom_file("CT_small.dcm")
    kept = sanitize_file(src, tmp_path / "kept.dcm", keep_tiff=True)
    assert kept.changes == ()
    assert kept.status == "copied"
    assert kept.output is not None
    assert kept.output.read_bytes() == src.read_bytes()
    zeroed = sanitize_file(src, tmp_path / "zeroed.dcm")
    assert zeroed.changes == ("preamble zeroed (TIFF header)",)
    assert zeroed.output is not None
    assert zeroed.output.read_bytes()[:128] == bytes(128)


def test_elf_tiff_like_preamble_zeroed_even_with_keep_tiff(tmp_path: Path) -> None:
    src = _write(tmp_path / "e.dcm", part10(preamble=ELF_HEADER))
    result = sanitize_file(src, tmp_path / "e-out.dcm", keep_tiff=True)
    assert result.changes == ("preamble zeroed (ELF executable header)",)


def test_pdf_with_javascript_is_refused(tmp_path: Path) -> None:
    src = _write(tmp_path / "doc.dcm", encapsulated_pdf(PDF_JAVASCRIPT, preamble=preamble_of(b"MZ")))
    result = sanitize_file(src, tmp_path / "doc-out.dcm")
    assert result.output is None
    assert result.refused is not None
    assert "Encapsulated Document" in result.refused
    assert not (tmp_path / "doc-out.dcm").exists()


def test_unparseable_and_not_dicom_are_refused(tmp_path: Path) -> None:
    truncated = _write(tmp_path / "t.dcm", part10(pixels=bytes(1000))[:-100])
    assert sanitize_file(truncated, tmp_path / "t-out.dcm").refused is not None
    text = _write(tmp_path / "readme.txt", b"hello")
    result = sanitize_file(text, tmp_path / "readme-out.txt")
    assert result.refused == "not a DICOM PS3.10 file (no 'DICM' at offset 128)"
    assert list(tmp_path.glob("*-out*")) == []


def test_out_of_order_tags_cannot_be_cut_clean(tmp_path: Path) -> None:
    head, body = split_part10(part10(pixels=None))
    src = _write(tmp_path / "o.dcm", head + body + element(0x0008, 0x0050, b"SH", b"ACC1"))
    result = sanitize_file(src, tmp_path / "o-out.dcm")
    assert result.output is None
    assert result.refused is not None
    assert "tags out of ascending order" in result.refused


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.dcm", part10())
    (tmp_path / "b.dcm").write_bytes(b"x")
    with pytest.raises(InputError, match="already exists"):
        sanitize_file(src, tmp_path / "b.dcm")
    assert sanitize_file(src, tmp_path / "b.dcm", overwrite=True).output is not None
