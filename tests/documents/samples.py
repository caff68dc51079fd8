"""Generated documents for the tests: a hand-written PDF, a CDA R2 document, STL cubes, an OBJ cube and its MTL."""

from __future__ import annotations

import struct

from dcmseal.audit import NullSink

__all__ = [
    "AUDIT",
    "CDA_PATIENT_ID",
    "CDA_PATIENT_NAME",
    "OPERATOR",
    "ascii_stl_cube",
    "binary_stl_cube",
    "cda_document",
    "minimal_pdf",
    "mtl_material",
    "obj_cube",
]

CDA_PATIENT_ID = "P001"
CDA_PATIENT_NAME = "Doe^Jane"
#: Where the workflows' audit messages go in the tests that are not about them, and who they name.
AUDIT = NullSink()
OPERATOR = "tester@hospital.example"


def minimal_pdf(*, odd: bool = False, text: str = "Hello DICOM") -> bytes:
    """A one-page PDF 1.4 with a correct xref table, written by hand; ``odd`` makes its length odd."""
    stream = f"BT /F1 18 Tf 36 96 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    if (len(out) % 2 == 1) != odd:
        out = out[:-1]  # drop the final newline: "%%EOF" without it is still valid
    return bytes(out)


def cda_document(*, patient_id: str = CDA_PATIENT_ID, family: str = "Doe", given: str = "Jane") -> bytes:
    """A small HL7 CDA R2 discharge summary with a non-XML-free narrative body."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <realmCode code="US"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <id root="2.16.840.1.113883.19.5" extension="DOC-42"/>
  <code code="18842-5" codeSystem="2.16.840.1.113883.6.1" displayName="Discharge summary"/>
  <title>Discharge summary</title>
  <effectiveTime value="20260101120000"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="en-US"/>
  <recordTarget>
    <patientRole>
      <id root="2.16.840.1.113883.19.5.99" extension="{patient_id}"/>
      <patient>
        <name><given>{given}</given><family>{family}</family></name>
        <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="19700101"/>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value="20260101120000"/>
    <assignedAuthor><id root="2.16.840.1.113883.19.5.7" extension="A1"/></assignedAuthor>
  </author>
  <custodian>
    <assignedCustodian><representedCustodianOrganization>
      <id root="2.16.840.1.113883.19.5"/>
    </representedCustodianOrganization></assignedCustodian>
  </custodian>
  <component>
    <structuredBody>
      <component><section><title>Course</title><text>Uneventful.</text></section></component>
    </structuredBody>
  </component>
</ClinicalDocument>
""".encode()


_CUBE_TRIANGLES: list[tuple[tuple[float, float, float], tuple[tuple[float, float, float], ...]]] = []
_V = [(x, y, z) for x in (0.0, 10.0) for y in (0.0, 10.0) for z in (0.0, 10.0)]
# Two triangles per face: (normal, (three corner indices)) of a 10 mm cube.
_FACES = [
    ((-1.0, 0.0, 0.0), ((0, 1, 3), (0, 3, 2))),
    ((1.0, 0.0, 0.0), ((4, 6, 7), (4, 7, 5))),
    ((0.0, -1.0, 0.0), ((0, 4, 5), (0, 5, 1))),
    ((0.0, 1.0, 0.0), ((2, 3, 7), (2, 7, 6))),
    ((0.0, 0.0, -1.0), ((0, 2, 6), (0, 6, 4))),
    ((0.0, 0.0, 1.0), ((1, 5, 7), (1, 7, 3))),
]
for _normal, _tris in _FACES:
    for _tri in _tris:
        _CUBE_TRIANGLES.append((_normal, tuple(_V[i] for i in _tri)))


def binary_stl_cube(*, header: bytes = b"dcmseal test cube") -> bytes:
    """A binary STL of a 10 mm cube (12 triangles, 684 bytes)."""
    out = header.ljust(80, b" ") + struct.pack("<I", len(_CUBE_TRIANGLES))
    for normal, corners in _CUBE_TRIANGLES:
        out += struct.pack("<12fH", *normal, *(c for corner in corners for c in corner), 0)
    return out


def ascii_stl_cube() -> bytes:
    """The same cube as ASCII STL."""
    lines = ["solid cube"]
    for normal, corners in _CUBE_TRIANGLES:
        lines.append("  facet normal {:e} {:e} {:e}".format(*normal))
        lines.append("    outer loop")
        for corner in corners:
            lines.append("      vertex {:e} {:e} {:e}".format(*corner))
        lines.append("    endloop")
        lines.append("  endfacet")
    lines.append("endsolid cube")
    return ("\n".join(lines) + "\n").encode()


def obj_cube(*, mtl_name: str = "cube.mtl", odd: bool = False) -> bytes:
    """A Wavefront OBJ of a 10 mm cube using one material from ``mtl_name``."""
    lines = ["# dcmseal test cube", f"mtllib {mtl_name}", "o cube"]
    lines += [f"v {x:g} {y:g} {z:g}" for x, y, z in _V]
    lines += ["vn -1 0 0", "vn 1 0 0", "usemtl red", "s off"]
    quads = [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)]
    lines += ["f " + " ".join(str(i) for i in quad) for quad in quads]
    data = ("\n".join(lines) + "\n").encode()
    return data + b"\n" if (len(data) % 2 == 1) != odd else data


def mtl_material() -> bytes:
    """A Wavefront MTL with one red material (odd length on purpose)."""
    data = b"# dcmseal test material\nnewmtl red\nKa 0.2 0 0\nKd 0.8 0 0\nKs 0 0 0\nNs 10\nd 1\nillum 1\n"
    return data if len(data) % 2 else data + b"\n"
