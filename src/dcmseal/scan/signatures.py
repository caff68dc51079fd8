"""The one table of magic signatures (executables, scripts, archives, documents) the scanner recognises.

Sources: PS3.10 §7.5 and CVE-2019-11687 (PE, ELF in the preamble), standards.md §5.5 (the detection
table: Mach-O in all byte orders and fat, shebang, ZIP local header and end of central directory, PDF,
HTML/script, TIFF and BigTIFF), peers.md §3.4 (JSON configuration, CVE-2023-33466). The PE check follows
the layout every loader uses: ``MZ`` at 0, the u32 ``e_lfanew`` at 0x3C pointing at ``PE\\0\\0``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "EOCD_MAGIC",
    "EOCD_SEARCH_BYTES",
    "QUICK_PREFIXES",
    "Family",
    "Signature",
    "find_embedded",
    "identify",
    "is_tiff",
    "tiff_ifd_offset",
]


class Family(enum.StrEnum):
    """What a signature says the bytes are."""

    EXECUTABLE = "executable"  # runs as a program: PE, ELF, Mach-O, DOS MZ
    SCRIPT = "script"  # run by an interpreter: shebang, Windows batch
    ARCHIVE = "archive"  # a container other programs unpack: ZIP, 7z, RAR, CAB, OLE2
    DOCUMENT = "document"  # PDF
    MARKUP = "markup"  # HTML, SVG, HTA: run by browsers and mshta
    CONFIG = "config"  # JSON (an Orthanc configuration, CVE-2023-33466)


@dataclass(frozen=True, slots=True)
class Signature:
    """A recognised signature: a short name (the finding code suffix), its family and a description."""

    name: str  # "pe", "elf", "macho", "zip", ...
    family: Family
    description: str


#: Readers locate a ZIP by its end of central directory record, within the last 22 + 65,535 bytes.
EOCD_MAGIC = b"PK\x05\x06"
EOCD_SEARCH_BYTES = 22 + 0xFFFF

# Fixed magics at offset 0: longest first where one is a prefix of another.
_MAGICS: tuple[tuple[bytes, Signature], ...] = (
    (b"\x7fELF", Signature("elf", Family.EXECUTABLE, "ELF executable header")),
    (b"\xfe\xed\xfa\xce", Signature("macho", Family.EXECUTABLE, "Mach-O 32-bit header (big endian)")),
    (b"\xfe\xed\xfa\xcf", Signature("macho", Family.EXECUTABLE, "Mach-O 64-bit header (big endian)")),
    (b"\xce\xfa\xed\xfe", Signature("macho", Family.EXECUTABLE, "Mach-O 32-bit header (little endian)")),
    (b"\xcf\xfa\xed\xfe", Signature("macho", Family.EXECUTABLE, "Mach-O 64-bit header (little endian)")),
    (b"\xca\xfe\xba\xbe", Signature("macho", Family.EXECUTABLE, "Mach-O fat binary (or Java class) header")),
    (b"\xca\xfe\xba\xbf", Signature("macho", Family.EXECUTABLE, "Mach-O 64-bit fat binary header")),
    (b"\xbe\xba\xfe\xca", Signature("macho", Family.EXECUTABLE, "Mach-O fat binary header (byte-swapped)")),
    (b"\xbf\xba\xfe\xca", Signature("macho", Family.EXECUTABLE, "Mach-O 64-bit fat header (byte-swapped)")),
    (b"PE\x00\x00", Signature("pe", Family.EXECUTABLE, "PE (Portable Executable) header")),
    (b"PK\x03\x04", Signature("zip", Family.ARCHIVE, "ZIP local file header")),
    (b"PK\x05\x06", Signature("zip", Family.ARCHIVE, "ZIP end of central directory")),
    (b"PK\x07\x08", Signature("zip", Family.ARCHIVE, "ZIP spanned archive marker")),
    (b"7z\xbc\xaf\x27\x1c", Signature("7z", Family.ARCHIVE, "7-Zip archive header")),
    (b"Rar!\x1a\x07", Signature("rar", Family.ARCHIVE, "RAR archive header")),
    (b"MSCF\x00\x00\x00\x00", Signature("cab", Family.ARCHIVE, "Microsoft Cabinet header")),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", Signature("ole", Family.ARCHIVE, "OLE2 compound file (MSI, macro documents)")),
    (b"%PDF-", Signature("pdf", Family.DOCUMENT, "PDF header")),
)  # fmt: skip

_PE = Signature("pe", Family.EXECUTABLE, "PE executable (MZ header with e_lfanew pointing at PE\\0\\0)")
_MZ = Signature("mz", Family.EXECUTABLE, "DOS MZ header without a PE header")
_SHEBANG = Signature("script", Family.SCRIPT, "shebang script (#!)")
_BATCH = Signature("script", Family.SCRIPT, "Windows batch script")
_HTML = Signature("html", Family.MARKUP, "HTML or script markup")
_JSON = Signature("json", Family.CONFIG, "JSON document")
_ORTHANC = Signature(
    "json", Family.CONFIG, "JSON with Orthanc configuration keys (CVE-2023-33466 config polyglot)"
)

#: Two-byte prefixes worth a closer look; the body walker tests values against this set first (cheap).
QUICK_PREFIXES: frozenset[bytes] = frozenset({m[:2] for m, _ in _MAGICS} | {b"MZ", b"#!", b"@e", b"@E"})

_MARKUP = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*<(?:!doctype\s+html|html|script|svg|hta:|iframe|body|head|object|embed|meta\s)",
    re.IGNORECASE,
)
_JSON_START = re.compile(rb'\A(?:\xef\xbb\xbf)?\s*\{\s*(?:"|\})')
#: Top-level keys of an Orthanc configuration file (the CVE-2023-33466 polyglot is one of these).
_ORTHANC_KEYS = re.compile(
    rb'"(?:RestApiWriteToFileSystemEnabled|LuaScripts|Plugins|HttpPort|DicomAet|DicomPort|'
    rb'RemoteAccessAllowed|AuthenticationEnabled|RegisteredUsers|StorageDirectory|IndexDirectory)"'
)
_BATCH_START = re.compile(rb"\A\s*@echo\s+off", re.IGNORECASE)

ReadAt = Callable[[int, int], bytes]


def _pe_header_at(data: bytes, read_at: ReadAt | None, base: int) -> bool:
    """Whether the u32 ``e_lfanew`` at 0x3C of the MZ header at ``base`` points at ``PE\\0\\0``."""
    if len(data) < 0x40:
        return False
    e_lfanew = int.from_bytes(data[0x3C:0x40], "little")
    if e_lfanew < 0x40:  # inside the DOS header itself: no loader accepts it
        return False
    if e_lfanew + 4 <= len(data):
        return data[e_lfanew : e_lfanew + 4] == b"PE\x00\x00"
    if read_at is None:
        return False
    return read_at(base + e_lfanew, 4) == b"PE\x00\x00"


def identify(
    data: bytes,
    *,
    read_at: ReadAt | None = None,
    base: int = 0,
    text: bool = True,
) -> Signature | None:
    """The signature ``data`` starts with, or None.

    Parameters
    ----------
    data
        The first bytes of the thing (the 128-byte preamble, the start of an element value, ...).
    read_at
        Reads more of the same file (``offset, length``): the PE header that ``e_lfanew`` points at may
        lie beyond ``data``.
    base
        The file offset of ``data[0]``, for ``read_at``.
    text
        Also recognise text forms (HTML/script markup, JSON, batch); off for binary element values,
        where a value starting with ``<`` or ``{`` is ordinary.
    """
    head = bytes(data[:16])
    if head[:2] == b"MZ":
        return _PE if _pe_header_at(bytes(data[:4096]), read_at, base) else _MZ
    for magic, signature in _MAGICS:
        if head.startswith(magic):
            return signature
    if head[:2] == b"#!":
        # "#!" then an interpreter path: "#!/bin/sh", "#! /usr/bin/env python".
        rest = head[2:].lstrip(b" ")
        if rest[:1] == b"/" or text:
            return _SHEBANG
        return None
    if not text:
        return None
    sample = bytes(data[:512])
    if _MARKUP.match(sample):
        return _HTML
    if _JSON_START.match(sample):
        return _ORTHANC if _ORTHANC_KEYS.search(sample) else _JSON
    if _BATCH_START.match(sample):
        return _BATCH
    return None


# Signatures that can sit anywhere in a 128-byte preamble and still be honoured by some reader:
# lenient PDF readers look for %PDF- within the first 1024 bytes, browsers sniff markup.
_EMBEDDED: tuple[tuple[bytes, Signature], ...] = (
    (b"%PDF-", Signature("pdf", Family.DOCUMENT, "PDF header inside the preamble")),
    (b"<script", Signature("html", Family.MARKUP, "<script> inside the preamble")),
    (b"<html", Signature("html", Family.MARKUP, "<html> inside the preamble")),
    (b"<svg", Signature("html", Family.MARKUP, "<svg> inside the preamble")),
    (b"\x7fELF", Signature("elf", Family.EXECUTABLE, "ELF header inside the preamble")),
    (b"#!/", Signature("script", Family.SCRIPT, "shebang inside the preamble")),
)


def find_embedded(data: bytes) -> tuple[int, Signature] | None:
    """The first signature found anywhere in ``data`` (a preamble) as ``(offset, signature)``, or None."""
    lowered = data.lower()
    hits = [(lowered.find(needle.lower()), sig) for needle, sig in _EMBEDDED]
    found = [(at, sig) for at, sig in hits if at >= 0]
    return min(found, key=lambda hit: hit[0]) if found else None


_TIFF_MAGICS = {b"II*\x00": ("<", 4), b"MM\x00*": (">", 4), b"II+\x00": ("<", 8), b"MM\x00+": (">", 8)}


def is_tiff(data: bytes) -> bool:
    """Whether ``data`` starts with a TIFF or BigTIFF header (PS3.10 §7.5 dual personality)."""
    return bytes(data[:4]) in _TIFF_MAGICS


def tiff_ifd_offset(data: bytes) -> int | None:
    """IFD0's offset from a TIFF (u32 at 4) or BigTIFF (u64 at 8, after ``00 08 00 00``) header, or None."""
    kind = _TIFF_MAGICS.get(bytes(data[:4]))
    if kind is None:
        return None
    order, width = kind
    byteorder: Literal["little", "big"] = "little" if order == "<" else "big"
    if width == 4:
        return int.from_bytes(data[4:8], byteorder)
    if int.from_bytes(data[4:6], byteorder) != 8:  # BigTIFF: offset size 8, then 2 reserved zero bytes
        return None
    return int.from_bytes(data[8:16], byteorder)
