"""A medium judged as a whole: active content beside the File-set, autorun, and files the DICOMDIR does not reference.

PS3.10 §8 defines the File-set as the files the DICOMDIR references; everything else on a disc (a viewer,
autorun.inf, a README) is outside it. A DICOM importer never needs to run anything, so executables,
scripts, shortcuts and HTML are reported (suspicious: vendor discs carry viewers), and an autorun.inf that
launches a DICOM file is malicious: that is how a PE/DICOM polyglot gets run (standards.md §5.4). The one
exception is dcmseal's own offline viewer, recognised by SHA-256 (:mod:`dcmseal.scan.viewer`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dcmseal.part10.fileformat import HEADER_BYTES
from dcmseal.part10.secure import is_secure_head
from dcmseal.reader.containers import iter_folder, printable_name
from dcmseal.reader.detect import detect_dataset_encoding
from dcmseal.scan.meta import read_meta
from dcmseal.scan.report import Finding, Verdict
from dcmseal.scan.signatures import Family, identify
from dcmseal.scan.viewer import INDEX_NAME, ViewerMatch, find_viewers, known_bundle, sha256_of
from dcmseal.scan.walker import walk_dataset

__all__ = [
    "LayoutEntry",
    "check_layout",
    "dicomdir_references",
    "entry_from_head",
    "find_dicomdirs",
    "referenced_files",
    "scan_medium_layout",
    "viewer_finding",
]

_REFERENCED_FILE_ID = 0x00041500
#: The file's size when only its head is at hand: element lengths are then not held against it.
_UNKNOWN_SIZE = 1 << 62
_EXECUTABLE_EXTENSIONS = frozenset(
    [
        ".exe",
        ".dll",
        ".com",
        ".scr",
        ".msi",
        ".msp",
        ".pif",
        ".cpl",
        ".sys",
        ".ocx",
        ".drv",
        ".efi",
        ".app",
        ".dylib",
        ".so",
        ".elf",
        ".bin",
        ".run",
        ".apk",
    ]
)
_SCRIPT_EXTENSIONS = frozenset(
    [
        ".bat",
        ".cmd",
        ".ps1",
        ".psm1",
        ".psd1",
        ".vbs",
        ".vbe",
        ".js",
        ".jse",
        ".wsf",
        ".wsh",
        ".hta",
        ".sh",
        ".bash",
        ".zsh",
        ".command",
        ".py",
        ".pl",
        ".rb",
        ".jar",
        ".reg",
        ".scf",
        ".inf",
        ".msc",
        ".applescript",
    ]
)
_SHORTCUT_EXTENSIONS = frozenset([".lnk", ".url", ".desktop", ".webloc", ".website", ".settingcontent-ms"])
_HTML_EXTENSIONS = frozenset([".htm", ".html", ".xhtml", ".xht", ".mht", ".mhtml", ".svg", ".shtml"])
#: autorun.inf keys that launch something (open=, shellexecute=, shell\verb\command=).
_AUTORUN_TARGET = re.compile(
    rb"^\s*(?:open|shellexecute|shell\\[^=\r\n]*\\command)\s*=\s*([^\r\n]+)", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class LayoutEntry:
    """One file of a medium, as the layout check needs it."""

    name: str  # POSIX path relative to the medium's root
    kind: str  # "dicom", "secure", "not-dicom", "symlink"
    signature: str | None = None  # signature name of a non-DICOM file's content ("pe", "elf", "html", ...)
    autorun: bytes | None = None  # the content of an autorun.inf


def referenced_files(dicomdir: bytes) -> frozenset[str] | None:
    """The File IDs (upper case, ``/``-joined) a DICOMDIR's records reference, or None if it does not parse.

    Read with the scanner's own walker ((0004,1500) Referenced File ID in every Directory Record Sequence item,
    PS3.3 F.3.2.2): a DICOMDIR of 10,000 records reads in milliseconds.
    """
    if len(dicomdir) < HEADER_BYTES or dicomdir[128:132] != b"DICM":
        return None
    meta = read_meta(dicomdir, len(dicomdir), None)
    if not meta.ok:
        return None
    body = walk_dataset(
        dicomdir,
        start=meta.end,
        size=len(dicomdir),
        read_at=None,
        transfer_syntax=meta.transfer_syntax,
        collect=frozenset({_REFERENCED_FILE_ID}),
    )
    if body.malformed and not body.values:
        return None
    found: set[str] = set()
    for value in body.values.get(_REFERENCED_FILE_ID, []):
        parts = [p.strip(" \x00") for p in value.decode("latin-1").split("\\")]
        parts = [p for p in parts if p]
        if parts:
            found.add("/".join(parts).upper())
    return frozenset(found)


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _folder_prefix(dicomdir: str) -> str:
    parent = str(PurePosixPath(dicomdir).parent).upper()
    return "" if parent in ("", ".") else parent + "/"


def check_layout(
    entries: Sequence[LayoutEntry],
    *,
    filesets: Mapping[str, frozenset[str] | None],
    notes: Sequence[Finding] = (),
    viewers: Sequence[ViewerMatch] = (),
) -> list[Finding]:
    """Medium findings over the entries of one medium.

    Parameters
    ----------
    filesets
        Each DICOMDIR's name (relative to the root; its folder is its File-set's root) and the File IDs it
        references (see :func:`referenced_files`), or None when they could not be read (then files under
        it do not count as unreferenced). A file belongs to the deepest File-set above it.
    notes
        Findings about the DICOMDIRs (encrypted, unreadable) to report with the rest.
    viewers
        Copies of dcmseal's own offline viewer (:func:`dcmseal.scan.viewer.find_viewers`): their files get
        one note each copy instead of the active-content findings.
    """
    findings: list[Finding] = list(notes)
    findings.extend(viewer_finding(match) for match in viewers)
    known = frozenset(name for match in viewers for name in match.names)
    # Deepest first, so a nested File-set (its own DICOMDIR) claims its files.
    roots = sorted(
        ((_folder_prefix(name), name.upper(), refs) for name, refs in filesets.items()),
        key=lambda r: -len(r[0]),
    )
    dicomdirs = {name for _, name, _ in roots}
    outside: list[str] = []
    by_upper = {e.name.upper(): e for e in entries}
    for entry in entries:  # every entry, also those whose names differ only in case
        if entry.kind in ("dicom", "secure") and not roots:
            continue  # the common case, kept cheap: a DICOM file and no DICOMDIR to check it against
        upper = entry.name.upper()
        shown = printable_name(entry.name)
        base = entry.name.rpartition("/")[2].lower()
        if entry.kind == "symlink":
            findings.append(
                Finding("medium.symlink", f"{shown}: a symbolic link (not followed)", Verdict.SUSPICIOUS)
            )
            continue
        if base == "autorun.inf":
            findings.extend(_autorun(entry, by_upper))
            continue
        if upper in dicomdirs:
            continue
        owner = next(((prefix, refs) for prefix, _, refs in roots if upper.startswith(prefix)), None)
        if entry.kind == "not-dicom":
            if entry.name in known:
                continue  # dcmseal's own viewer, byte for byte: noted above
            findings.extend(_active(entry, shown))
            if owner is not None:
                outside.append(shown)
            continue
        if owner is not None and owner[1] is not None and upper[len(owner[0]) :] not in owner[1]:
            what = "Secure DICOM" if entry.kind == "secure" else "DICOM"
            findings.append(
                Finding(
                    "medium.unreferenced",
                    f"{shown}: a {what} file the DICOMDIR does not reference",
                    Verdict.SUSPICIOUS,
                )
            )
    present = by_upper.keys()
    missing = sorted(
        prefix + ref
        for prefix, _, refs in roots
        if refs is not None
        for ref in refs
        if prefix + ref not in present
    )
    for ref in missing[:20]:
        findings.append(
            Finding(
                "medium.missing",
                f"a DICOMDIR references {printable_name(ref)}, which is not on the medium",
                Verdict.SUSPICIOUS,
            )
        )
    if len(missing) > 20:
        findings.append(
            Finding(
                "medium.missing",
                f"... and {len(missing) - 20} more referenced files are missing",
                Verdict.SUSPICIOUS,
            )
        )
    if outside:
        listed = ", ".join(outside[:5]) + (f", ... ({len(outside)} in all)" if len(outside) > 5 else "")
        findings.append(
            Finding(
                "medium.outside-fileset",
                f"files outside the File-set (not DICOM, not referenced): {listed}",
                Verdict.CLEAN,
            )
        )
    return findings


def viewer_finding(match: ViewerMatch) -> Finding:
    """The note for a copy of dcmseal's offline viewer: known content, clean."""
    return Finding(
        "medium.viewer",
        f"{printable_name(match.root)}{INDEX_NAME} and its {len(match.names) - 1} assets: dcmseal offline"
        f" viewer, known bundle {match.label} (SHA-256 of every file checked)",
        Verdict.CLEAN,
    )


def _file_digest(path: Path) -> str:
    with open(path, "rb") as fp:
        return sha256_of(fp)


def _active(entry: LayoutEntry, shown: str) -> Iterable[Finding]:
    extension = _extension(entry.name)
    if entry.signature in ("pe", "elf", "macho"):
        yield Finding(
            "medium.executable",
            f"{shown}: an executable ({entry.signature.upper()}) outside the File-set",
            Verdict.SUSPICIOUS,
        )
    elif extension in _EXECUTABLE_EXTENSIONS:
        yield Finding(
            "medium.executable", f"{shown}: an executable file name outside the File-set", Verdict.SUSPICIOUS
        )
    elif entry.signature == "script" or extension in _SCRIPT_EXTENSIONS:
        yield Finding("medium.script", f"{shown}: a script outside the File-set", Verdict.SUSPICIOUS)
    elif extension in _SHORTCUT_EXTENSIONS:
        yield Finding(
            "medium.shortcut", f"{shown}: a shortcut (it can point at anything)", Verdict.SUSPICIOUS
        )
    elif entry.signature == "html" or extension in _HTML_EXTENSIONS:
        yield Finding(
            "medium.html",
            f"{shown}: HTML or SVG outside the File-set (runs in a browser)",
            Verdict.SUSPICIOUS,
        )


def _autorun(entry: LayoutEntry, by_upper: dict[str, LayoutEntry]) -> Iterable[Finding]:
    shown = printable_name(entry.name)
    yield Finding(
        "medium.autorun",
        f"{shown}: autorun.inf (launches a program when the disc is inserted)",
        Verdict.SUSPICIOUS,
    )
    parent = str(PurePosixPath(entry.name).parent)
    for match in _AUTORUN_TARGET.finditer(entry.autorun or b""):
        command = match.group(1).decode("latin-1").strip().strip('"')
        target = command.split('"')[0].split(" ")[0].replace("\\", "/").lstrip("/")
        candidate = target if parent in ("", ".") else f"{parent}/{target}"
        hit = by_upper.get(candidate.upper())
        if hit is not None and hit.kind in ("dicom", "secure"):
            yield Finding(
                "medium.autorun-dicom",
                f"{shown} launches {printable_name(hit.name)}, a DICOM file: the way a PE/DICOM polyglot is run",
                Verdict.MALICIOUS,
            )


def _entry_for(path: Path, name: str) -> LayoutEntry:
    """Classify one file by its first bytes (and read it whole when it is an autorun.inf)."""
    with open(path, "rb") as fp:
        head = fp.read(4096)
        autorun = None
        if PurePosixPath(name).name.lower() == "autorun.inf":
            autorun = head + fp.read(60 * 1024)
    return entry_from_head(name, head, autorun=autorun)


def entry_from_head(name: str, head: bytes, *, autorun: bytes | None = None) -> LayoutEntry:
    """A :class:`LayoutEntry` from a file's first bytes (at least 132; 4 KiB lets a PE header be checked)."""
    if len(head) >= HEADER_BYTES and head[128:132] == b"DICM":
        return LayoutEntry(name, "dicom")
    if is_secure_head(head):
        return LayoutEntry(name, "secure")
    if detect_dataset_encoding(head, _UNKNOWN_SIZE) is not None:
        return LayoutEntry(name, "dicom")  # a data set without File Meta (old discs): DICOM all the same
    signature = identify(head, text=True) if head else None
    wanted = signature is not None and signature.family in (Family.EXECUTABLE, Family.SCRIPT, Family.MARKUP)
    return LayoutEntry(name, "not-dicom", signature.name if wanted and signature else None, autorun)


def find_dicomdirs(entries: Sequence[LayoutEntry]) -> list[str]:
    """Every file named DICOMDIR (PS3.10 §8.6: each File-set's root holds one)."""
    return [
        e.name
        for e in entries
        if e.name.rpartition("/")[2].upper() == "DICOMDIR" and e.kind in ("dicom", "secure")
    ]


def scan_medium_layout(root: Path) -> tuple[Finding, ...]:
    """Medium-level findings of the folder ``root`` (a mounted disc, a USB stick, an opened medium).

    Executables, scripts, shortcuts, HTML and autorun.inf outside the File-set; DICOM files the DICOMDIR does
    not reference and references to files that are missing. An encrypted DICOMDIR is noted, not opened
    (:func:`dcmseal.scan.scan_paths` opens it when given a key). dcmseal's own offline viewer, byte for byte
    the bundle this installation burns, is a note (``medium.viewer``), not active content.
    """
    root = Path(root)
    entries: list[LayoutEntry] = []
    members = list(iter_folder(root))
    for member in members:
        if member.symlink:
            entries.append(LayoutEntry(member.name, "symlink"))
            continue
        assert member.path is not None
        try:
            entries.append(_entry_for(Path(member.path), member.name))
        except OSError:
            entries.append(LayoutEntry(member.name, "not-dicom"))
    filesets: dict[str, frozenset[str] | None] = {}
    notes: list[Finding] = []
    for dicomdir in find_dicomdirs(entries):
        referenced, note = dicomdir_references((root / dicomdir).read_bytes(), dicomdir)
        filesets[dicomdir] = referenced
        if note is not None:
            notes.append(note)
    viewers = find_viewers(
        (m.name for m in members if not m.symlink),
        size_of=lambda name: os.stat(root / name).st_size,
        digest_of=lambda name: _file_digest(root / name),
        bundle=known_bundle(),
    )
    return tuple(check_layout(entries, filesets=filesets, notes=notes, viewers=viewers))


def dicomdir_references(data: bytes, name: str) -> tuple[frozenset[str] | None, Finding | None]:
    """The references of a DICOMDIR's bytes, or None with a note saying why they could not be read."""
    if is_secure_head(data):
        return None, Finding(
            "medium.dicomdir-encrypted",
            f"{printable_name(name)} is a Secure DICOM File: references not checked without a key",
            Verdict.CLEAN,
        )
    referenced = referenced_files(data)
    if referenced is None:
        return None, Finding(
            "medium.dicomdir-unreadable",
            f"{printable_name(name)} does not parse: references not checked",
            Verdict.SUSPICIOUS,
        )
    return referenced, None
