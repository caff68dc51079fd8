"""Kind detection from content and the ASCII to binary STL conversion."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from dcmseal.encapsulated import DocumentKind, ascii_stl_to_binary, detect_kind, read_cda_header
from dcmseal.errors import InputError
from tests.documents import samples


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (samples.minimal_pdf(), DocumentKind.PDF),
        (samples.cda_document(), DocumentKind.CDA),
        (samples.binary_stl_cube(), DocumentKind.STL),
        (samples.binary_stl_cube(header=b"solid but binary"), DocumentKind.STL),
        (samples.ascii_stl_cube(), DocumentKind.STL),
        (samples.obj_cube(), DocumentKind.OBJ),
        (samples.mtl_material(), DocumentKind.MTL),
    ],
)
def test_detects_kind_from_content(data: bytes, kind: DocumentKind) -> None:
    assert detect_kind(data) is kind


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"PK\x03\x04 a zip", "not a document"),
        (b"<?xml version='1.0'?><html/>", "not an HL7 CDA"),
        (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x/>", "DOCTYPE"),
        (b"<ClinicalDocument", "not well-formed"),
        (b"MZ\x90\x00" + bytes(200), "not a document"),
        (b"hello world\n", "not a document"),
        (b"solid x\nfacet normal 0 0 1\nendsolid x\n", "ASCII STL"),
    ],
)
def test_refuses_other_content(data: bytes, message: str) -> None:
    convert = data.startswith(b"solid")
    with pytest.raises(InputError, match=message) as info:
        (ascii_stl_to_binary if convert else detect_kind)(data, path=Path("x.bin"))
    assert info.value.path == Path("x.bin")


def test_binary_stl_size_must_match_count() -> None:
    data = samples.binary_stl_cube()
    with pytest.raises(InputError):
        detect_kind(data[:-50] + b"\x00")  # count says 12, 11.02 facets present: binary garbage


def test_ascii_stl_converts_to_the_same_cube() -> None:
    binary = ascii_stl_to_binary(samples.ascii_stl_cube())
    expected = samples.binary_stl_cube()
    assert struct.unpack_from("<I", binary, 80) == (12,)
    assert binary[84:] == expected[84:]


def test_cda_header() -> None:
    header = read_cda_header(samples.cda_document())
    assert header.patient_ids == ("P001",)
    assert header.patient_name == "Doe^Jane"
    assert header.hl7_instance_identifier == "2.16.840.1.113883.19.5^DOC-42"
    assert header.title == "Discharge summary"


def test_kind_properties() -> None:
    assert DocumentKind.CDA.extension == ".xml"
    assert DocumentKind.PDF.modality == "DOC"
    assert DocumentKind.MTL.modality == "M3D"
    assert DocumentKind.from_sop_class("1.2.840.10008.5.1.4.1.1.104.4") is DocumentKind.OBJ
    assert DocumentKind.from_sop_class("1.2.840.10008.5.1.4.1.1.2") is None
