"""The 128-byte File Preamble judged by PS3.10 §7.1, §7.5 and §8.3 Note 3 (standards.md §5)."""

from __future__ import annotations

from dcmseal.part10.fileformat import DICM_ZERO_PREAMBLE, PREAMBLE_BYTES, ZERO_PREAMBLE
from dcmseal.scan.report import Finding, Verdict
from dcmseal.scan.signatures import Family, ReadAt, find_embedded, identify, is_tiff, tiff_ifd_offset

__all__ = ["check_preamble"]

#: Everything the preamble can carry that some program will run, unpack or render is malicious here:
#: PS3.10 §7.5 says legitimate executable content is never found in a DICOM File.
_FAMILY_WORDS = {
    Family.EXECUTABLE: "executable header",
    Family.SCRIPT: "script",
    Family.ARCHIVE: "archive header",
    Family.DOCUMENT: "document header",
    Family.MARKUP: "markup",
    Family.CONFIG: "configuration file",
}


def check_preamble(
    preamble: bytes, *, size: int, allow_tiff: bool = True, read_at: ReadAt | None = None
) -> list[Finding]:
    """Findings on a 128-byte preamble; an empty list means all zeros.

    Parameters
    ----------
    preamble
        The first 128 bytes of the file (more is fine: a PE header may follow, see ``read_at``).
    size
        The file's size, to tell whether a TIFF IFD offset points inside the file.
    allow_tiff
        A TIFF or BigTIFF header with nothing else active is clean (PS3.10 §7.5); False makes it suspicious.
    read_at
        Reads more of the file, for a PE header beyond the preamble (``e_lfanew`` may point anywhere).
    """
    head = bytes(preamble[:PREAMBLE_BYTES])
    if head == ZERO_PREAMBLE:
        return []
    if head == DICM_ZERO_PREAMBLE:
        return [
            Finding(
                "preamble.dicm-zero",
                "preamble 'DICM' + 124 zero bytes (PS3.10 §8.3 Note 3)",
                Verdict.CLEAN,
                0,
            )
        ]
    if is_tiff(head):
        return _check_tiff(head, size=size, allow_tiff=allow_tiff)
    signature = identify(bytes(preamble), read_at=read_at, base=0)
    if signature is not None:
        if signature.name == "mz":
            # "MZ" alone is a DOS stub that modern Windows will not run; still nothing a DICOM writer puts there.
            return [
                Finding(
                    "preamble.mz", f"preamble starts with a {signature.description}", Verdict.SUSPICIOUS, 0
                )
            ]
        return [
            Finding(
                f"preamble.{signature.name}",
                f"preamble holds a {signature.description} ({_FAMILY_WORDS[signature.family]}; CVE-2019-11687)",
                Verdict.MALICIOUS,
                0,
            )
        ]
    embedded = find_embedded(head)
    if embedded is not None:
        at, found = embedded
        return [Finding(f"preamble.{found.name}", f"{found.description} at byte {at}", Verdict.MALICIOUS, at)]
    first = next(i for i, b in enumerate(head) if b)
    count = sum(1 for b in head if b)
    # Real files carry stray bytes (pydicom's dicomdirtests have one 01H at 0x11): worth a look, not an alarm.
    return [
        Finding(
            "preamble.nonzero",
            f"preamble has {count} non-zero byte(s) of no known format, the first at offset {first}",
            Verdict.SUSPICIOUS,
            first,
        )
    ]


def _check_tiff(head: bytes, *, size: int, allow_tiff: bool) -> list[Finding]:
    findings: list[Finding] = []
    embedded = find_embedded(head[4:])
    if embedded is not None:
        at, found = embedded
        return [
            Finding(
                f"preamble.{found.name}",
                f"TIFF preamble that also holds a {found.description} at byte {at + 4}",
                Verdict.MALICIOUS,
                at + 4,
            )
        ]
    kind = "BigTIFF" if head[2:4] in (b"+\x00", b"\x00+") else "TIFF"
    if allow_tiff:
        findings.append(
            Finding("preamble.tiff", f"{kind} dual-personality preamble (PS3.10 §7.5)", Verdict.CLEAN, 0)
        )
    else:
        findings.append(
            Finding(
                "preamble.tiff",
                f"{kind} dual-personality preamble, not allowed by this scan (--no-allow-tiff)",
                Verdict.SUSPICIOUS,
                0,
            )
        )
    ifd = tiff_ifd_offset(head)
    if ifd is None or ifd < 8 or ifd >= size:
        # pydicom's CT_small.dcm and MR_small.dcm carry such headers: harmless, a TIFF reader just fails.
        findings.append(
            Finding(
                "preamble.tiff-ifd-outside",
                f"the {kind} IFD0 offset ({ifd}) does not point inside the file ({size} bytes)",
                Verdict.CLEAN,
                4,
            )
        )
    return findings
