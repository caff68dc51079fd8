"""Recognise a document's kind from its bytes (PDF, CDA, STL, OBJ, MTL) and convert ASCII STL to binary STL."""

from __future__ import annotations

import enum
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from dcmseal.errors import InputError

__all__ = [
    "CDA_NAMESPACE",
    "CdaHeader",
    "DocumentKind",
    "ascii_stl_to_binary",
    "detect_kind",
    "is_ascii_stl",
    "is_binary_stl",
    "read_cda_header",
]

CDA_NAMESPACE = "urn:hl7-org:v3"
_CDA_ROOT = f"{{{CDA_NAMESPACE}}}ClinicalDocument"

#: First tokens of the lines of a Wavefront OBJ file (geometry, grouping, free-form and material statements).
_OBJ_KEYWORDS = frozenset(
    {
        "v", "vt", "vn", "vp", "f", "l", "p", "g", "o", "s", "mg", "mtllib", "usemtl", "usemap",
        "cstype", "deg", "bmat", "step", "curv", "curv2", "surf", "parm", "trim", "hole", "scrv", "sp",
        "end", "con", "lod", "shadow_obj", "trace_obj", "ctech", "stech", "bevel", "c_interp", "d_interp",
    }
)  # fmt: skip
#: First tokens of the lines of a Wavefront MTL file; ``map_*`` keywords are accepted by prefix.
_MTL_KEYWORDS = frozenset(
    {
        "newmtl", "Ka", "Kd", "Ks", "Ke", "Ns", "Ni", "d", "Tr", "Tf", "illum", "sharpness", "bump",
        "disp", "decal", "refl", "Pr", "Pm", "Ps", "Pc", "Pcr", "aniso", "anisor", "norm",
    }
)  # fmt: skip


class DocumentKind(enum.StrEnum):
    """The document kinds DICOM encapsulates (PS3.3 A.45 and A.85)."""

    PDF = "pdf"
    CDA = "cda"
    STL = "stl"
    OBJ = "obj"
    MTL = "mtl"

    @property
    def sop_class_uid(self) -> str:
        """The Storage SOP Class of the Encapsulated <kind> IOD."""
        return _SOP_CLASS[self]

    @property
    def mime_type(self) -> str:
        """MIME Type of Encapsulated Document (0042,0012), spelled as PS3.3 spells it."""
        return _MIME[self]

    @property
    def extension(self) -> str:
        """The file name extension the document gets back on extraction."""
        return ".xml" if self is DocumentKind.CDA else f".{self.value}"

    @property
    def modality(self) -> str:
        """Modality (0008,0060): DOC for PDF and CDA, M3D for 3D manufacturing models."""
        return "DOC" if self in (DocumentKind.PDF, DocumentKind.CDA) else "M3D"

    @property
    def is_model(self) -> bool:
        """True for the Manufacturing 3D Model IODs (STL, OBJ, MTL)."""
        return self.modality == "M3D"

    @classmethod
    def from_sop_class(cls, uid: str) -> DocumentKind | None:
        """The kind of an Encapsulated Document SOP Class, or None for any other class."""
        for kind, value in _SOP_CLASS.items():
            if value == uid:
                return kind
        return None


_SOP_CLASS = {
    DocumentKind.PDF: "1.2.840.10008.5.1.4.1.1.104.1",
    DocumentKind.CDA: "1.2.840.10008.5.1.4.1.1.104.2",
    DocumentKind.STL: "1.2.840.10008.5.1.4.1.1.104.3",
    DocumentKind.OBJ: "1.2.840.10008.5.1.4.1.1.104.4",
    DocumentKind.MTL: "1.2.840.10008.5.1.4.1.1.104.5",
}
_MIME = {
    DocumentKind.PDF: "application/pdf",
    DocumentKind.CDA: "text/XML",
    DocumentKind.STL: "model/stl",
    DocumentKind.OBJ: "model/obj",
    DocumentKind.MTL: "model/mtl",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CdaHeader:
    """What the CDA header says about the document and its patient."""

    instance_root: str
    instance_extension: str
    patient_ids: tuple[str, ...]
    patient_name: str  # DICOM PN form, Family^Given
    title: str
    #: recordTarget/patientRole/patient/birthTime as a DICOM DA (YYYYMMDD), "" when absent or partial.
    birth_date: str = ""
    #: administrativeGenderCode as a DICOM Patient's Sex: M, F, O (another code, e.g. UN), "" when absent.
    sex: str = ""
    #: ClinicalDocument/code: (code, coding scheme designator, display name); None without a code or with a
    #: code system dcmseal cannot name with a DICOM Coding Scheme Designator.
    document_code: tuple[str, str, str] | None = None
    #: ClinicalDocument/effectiveTime as a DICOM DT (YYYYMMDD[HHMMSS][&ZZXX]), "" when absent.
    effective_time: str = ""
    #: The media types of non-XML content carried in the document (observationMedia values, a nonXMLBody).
    media_types: tuple[str, ...] = ()

    @property
    def hl7_instance_identifier(self) -> str:
        """HL7 Instance Identifier (0040,E001): ``root^extension`` (PS3.3 C.24.2)."""
        return (
            f"{self.instance_root}^{self.instance_extension}"
            if self.instance_extension
            else self.instance_root
        )


def is_binary_stl(data: bytes) -> bool:
    """Return True when ``data`` is an 80-byte header, a triangle count n and exactly n 50-byte facets."""
    if len(data) < 84:
        return False
    count: int = struct.unpack_from("<I", data, 80)[0]
    return len(data) == 84 + 50 * count


def is_ascii_stl(data: bytes) -> bool:
    """Return True when ``data`` starts with ``solid`` and ends with ``endsolid`` (parsed only on conversion)."""
    head = data.lstrip()[:5]
    return head == b"solid" and b"endsolid" in data[-4096:]


_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FACET = re.compile(
    rb"facet\s+normal\s+(F)\s+(F)\s+(F)\s+outer\s+loop\s+"
    rb"vertex\s+(F)\s+(F)\s+(F)\s+vertex\s+(F)\s+(F)\s+(F)\s+vertex\s+(F)\s+(F)\s+(F)\s+"
    rb"endloop\s+endfacet".replace(b"F", _FLOAT.encode())
)
_ASCII_STL = re.compile(rb"\s*solid\b[^\n]*\n(?P<body>.*)endsolid\b[^\n]*\s*\Z", re.DOTALL)


def ascii_stl_to_binary(data: bytes, *, path: Path | None = None) -> bytes:
    """Convert an ASCII STL to binary STL (the Encapsulated STL IOD requires binary, PS3.3 A.85.1).

    Raises
    ------
    InputError
        The text is not a well-formed ASCII STL (every facet three vertices, nothing else between them).
    """
    match = _ASCII_STL.match(data)
    if match is None:
        raise InputError(
            "starts with 'solid' but is not a well-formed ASCII STL (no final 'endsolid')", path=path
        )
    body = match.group("body")
    facets: list[bytes] = []
    position = 0
    for facet in _FACET.finditer(body):
        if body[position : facet.start()].strip():
            raise InputError(f"ASCII STL: unexpected text at byte {position} of the body", path=path)
        values = [float(v) for v in facet.groups()]
        facets.append(struct.pack("<12fH", *values, 0))
        position = facet.end()
    if body[position:].strip() or not facets:
        raise InputError("ASCII STL: no facets, or text after the last facet", path=path)
    header = b"binary STL converted from ASCII by dcmseal".ljust(80, b" ")
    return header + struct.pack("<I", len(facets)) + b"".join(facets)


def _text_lines(data: bytes) -> list[str] | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _looks_like(lines: list[str], keywords: frozenset[str], *, required: str, prefix: str = "") -> bool:
    first_tokens = [line.split(None, 1)[0] for line in lines]
    if required not in first_tokens:
        return False
    return all(token in keywords or (prefix and token.startswith(prefix)) for token in first_tokens)


def _parse_xml(data: bytes, path: Path | None) -> ET.Element:
    # CDA has no DTD; refusing DOCTYPE and ENTITY declarations rules out entity expansion and external entities.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise InputError("XML with a DOCTYPE or ENTITY declaration is refused (a CDA has none)", path=path)
    try:
        return ET.fromstring(data)  # noqa: S314 - declarations refused above
    except ET.ParseError as exc:
        raise InputError(f"not well-formed XML: {exc}", path=path) from None


def _looks_like_xml(data: bytes) -> bool:
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return head == b"<"


def detect_kind(data: bytes, *, path: Path | None = None) -> DocumentKind:
    """The kind of document ``data`` holds, from its content alone (magic bytes, XML root, STL layout).

    Raises
    ------
    InputError
        Empty, or none of PDF, CDA, STL, OBJ or MTL.
    """
    if not data:
        raise InputError("the file is empty", path=path)
    if data.startswith(b"%PDF-"):
        return DocumentKind.PDF
    if is_binary_stl(data):
        return DocumentKind.STL
    if _looks_like_xml(data):
        root = _parse_xml(data, path)
        if root.tag == _CDA_ROOT:
            return DocumentKind.CDA
        raise InputError(f"XML whose root is {root.tag}, not an HL7 CDA {_CDA_ROOT}", path=path)
    if is_ascii_stl(data):
        return DocumentKind.STL
    lines = _text_lines(data)
    if lines:
        if _looks_like(lines, _OBJ_KEYWORDS, required="v"):
            return DocumentKind.OBJ
        if _looks_like(lines, _MTL_KEYWORDS, required="newmtl", prefix="map_"):
            return DocumentKind.MTL
    raise InputError(
        "not a document dcmseal encapsulates (PDF, HL7 CDA, binary or ASCII STL, Wavefront OBJ or MTL)",
        path=path,
    )


def _text(element: ET.Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


def read_cda_header(data: bytes, *, path: Path | None = None) -> CdaHeader:
    """Document id, title and patient (recordTarget/patientRole) from a CDA R2 header."""
    root = _parse_xml(data, path)
    ns = {"hl7": CDA_NAMESPACE}
    doc_id = root.find("hl7:id", ns)
    if doc_id is None or not doc_id.get("root"):
        raise InputError(
            "the CDA has no ClinicalDocument/id with a root: HL7 Instance Identifier unknown", path=path
        )
    role = root.find("hl7:recordTarget/hl7:patientRole", ns)
    ids: tuple[str, ...] = ()
    name = ""
    if role is not None:
        ids = tuple(i.get("extension", "") for i in role.findall("hl7:id", ns) if i.get("extension"))
        pn = role.find("hl7:patient/hl7:name", ns)
        if pn is not None:
            family = _text(pn.find("hl7:family", ns))
            given = " ".join(_text(g) for g in pn.findall("hl7:given", ns))
            name = f"{family}^{given}".rstrip("^") if (family or given) else _text(pn)
    patient = role.find("hl7:patient", ns) if role is not None else None
    birth = patient.find("hl7:birthTime", ns) if patient is not None else None
    gender = patient.find("hl7:administrativeGenderCode", ns) if patient is not None else None
    code = root.find("hl7:code", ns)
    effective = root.find("hl7:effectiveTime", ns)
    # Non-XML content is "encoded in-line" (PS3.3 A.45.2): an observationMedia value or a nonXMLBody text.
    carriers = {f"{{{CDA_NAMESPACE}}}value", f"{{{CDA_NAMESPACE}}}text"}
    media = {
        element.get("mediaType", "")
        for element in root.iter()
        if element.tag in carriers
        and element.get("mediaType")
        and element.get("mediaType", "").lower() != "text/x-hl7-text+xml"
    }
    return CdaHeader(
        instance_root=doc_id.get("root", ""),
        instance_extension=doc_id.get("extension", ""),
        patient_ids=ids,
        patient_name=name,
        title=_text(root.find("hl7:title", ns)),
        birth_date=_cda_date(birth.get("value", "") if birth is not None else ""),
        sex=_CDA_SEX.get(gender.get("code", "").upper(), "O")
        if gender is not None and gender.get("code")
        else "",
        document_code=_cda_code(code),
        effective_time=_cda_datetime(effective.get("value", "") if effective is not None else ""),
        media_types=tuple(sorted(media)),
    )


# HL7 AdministrativeGender (2.16.840.1.113883.5.1) to DICOM Patient's Sex (PS3.3 C.7.1.1): UN and others are O.
_CDA_SEX = {"M": "M", "F": "F"}
# Code systems of ClinicalDocument/code by OID, with their DICOM Coding Scheme Designators (PS3.16 Table 8-1).
_CODE_SYSTEMS = {
    "2.16.840.1.113883.6.1": "LN",
    "2.16.840.1.113883.6.96": "SCT",
    "1.2.840.10008.2.16.4": "DCM",
}
# HL7 V3 TS: YYYYMMDDHHMMSS.UUUU[+|-ZZzz], any precision from the year on.
_HL7_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?")


def _cda_date(value: str) -> str:
    """A DICOM DA from an HL7 TS: a full date only (a year or a month alone is no date)."""
    match = _HL7_TS.fullmatch(value.strip())
    return "".join(match.group(1, 2, 3)) if match and match.group(3) else ""


def _cda_datetime(value: str) -> str:
    """A DICOM DT from an HL7 TS: the same digits, fraction and offset (PS3.5 Table 6.2-1 DT)."""
    match = _HL7_TS.fullmatch(value.strip())
    return value.strip() if match else ""


def _cda_code(code: ET.Element | None) -> tuple[str, str, str] | None:
    if code is None or not code.get("code"):
        return None
    scheme = _CODE_SYSTEMS.get(code.get("codeSystem", ""))
    if scheme is None:
        return None
    return code.get("code", ""), scheme, code.get("displayName", "") or code.get("code", "")
