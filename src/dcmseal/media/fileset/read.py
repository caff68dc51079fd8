"""Read a DICOMDIR back: the File-set's identity and every file its records reference (PS3.3 F.3)."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dcmseal.errors import InputError, NotPart10Error
from dcmseal.media.dicomdir import (
    MEDIA_STORAGE_DIRECTORY_SOP_CLASS,
)
from dcmseal.media.fileset.inventions import DEFAULT_DATE
from dcmseal.part10.header import RawValue, read_header, read_items

__all__ = ["DicomDir", "DirectoryEntry", "read_dicomdir", "read_dicomdir_fast"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryEntry:
    """A directory record that references a file (PS3.3 F.3.2.2), with the keys of the records above it."""

    record_type: str
    file_id: tuple[str, ...]
    referenced_sop_class_uid: str
    referenced_sop_instance_uid: str
    referenced_transfer_syntax_uid: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    #: Byte offset of the record's item in the DICOMDIR (0 when unknown).
    offset: int = 0
    #: The STUDY record's Study Date (DA); "" when it has none, or the placeholder a burn writes for none.
    study_date: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DicomDir:
    """What a DICOMDIR says: the File-set's identity and every file it references."""

    path: Path
    fileset_uid: str
    fileset_id: str
    transfer_syntax_uid: str
    entries: tuple[DirectoryEntry, ...]

    def by_file_id(self) -> dict[tuple[str, ...], DirectoryEntry]:
        """The entries by File ID (the first when two records reference one file)."""
        found: dict[tuple[str, ...], DirectoryEntry] = {}
        for entry in self.entries:
            found.setdefault(entry.file_id, entry)
        return found


_NEXT = "OffsetOfTheNextDirectoryRecord"
_LOWER = "OffsetOfReferencedLowerLevelDirectoryEntity"
_FIRST = "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"
_Context = tuple[str, str, str, str]  # patient ID, Study Instance UID, Series Instance UID, Study Date
_RecordLike = Dataset | Mapping[str, object]  # a record as pydicom reads it, or as read_dicomdir_fast does


def read_dicomdir(path: Path, *, fast: bool = True) -> DicomDir:
    """Read a plain (already decrypted) DICOMDIR: File-set identity and every referenced file (PS3.3 F.3).

    The record hierarchy is followed through its offsets from the root; records no offset reaches (orphans, or
    a root offset that points at the wrong record) are walked as extra roots, and a DICOMDIR without any
    offsets is read in sequence order. Explicit or implicit VR and big endian encodings are accepted, as
    pydicom reads them. Records whose Record In-use Flag is 0000H are skipped.

    Parameters
    ----------
    path
        The DICOMDIR.
    fast
        Try :func:`read_dicomdir_fast` first (the record keys without pydicom) and let pydicom read only what it
        declines; ``False`` reads with pydicom alone, which the tests compare the fast reader against.

    Raises
    ------
    NotPart10Error
        ``path`` is not a PS3.10 file.
    InputError
        ``path`` is a PS3.10 file but not a Media Storage Directory (DICOMDIR).
    """
    path = Path(path)
    quick = read_dicomdir_fast(path) if fast else None
    if quick is not None:
        return quick
    try:
        ds = dcmread(path)
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError) as exc:
        raise NotPart10Error(f"not a readable DICOMDIR: {exc}", path=path) from exc
    sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class != MEDIA_STORAGE_DIRECTORY_SOP_CLASS and "DirectoryRecordSequence" not in ds:
        raise InputError(
            f"not a DICOMDIR: its SOP class is {sop_class or 'missing'}, not Media Storage Directory Storage "
            f"({MEDIA_STORAGE_DIRECTORY_SOP_CLASS})",
            path=path,
        )
    records = list(ds.get("DirectoryRecordSequence", None) or [])
    entries = tuple(_entries(ds, records))
    return DicomDir(
        path=path,
        fileset_uid=str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or ""),
        fileset_id=str(ds.get("FileSetID", "") or ""),
        transfer_syntax_uid=str(ds.file_meta.get("TransferSyntaxUID", "") or ""),
        entries=entries,
    )


# The record keys a reader of the hierarchy needs (PS3.3 F.3.2.2, F.5.1-F.5.3), by tag.
_DIRECTORY_KEYS = {
    0x00041400: "OffsetOfTheNextDirectoryRecord",
    0x00041410: "RecordInUseFlag",
    0x00041420: "OffsetOfReferencedLowerLevelDirectoryEntity",
    0x00041430: "DirectoryRecordType",
    0x00041500: "ReferencedFileID",
    0x00041510: "ReferencedSOPClassUIDInFile",
    0x00041511: "ReferencedSOPInstanceUIDInFile",
    0x00041512: "ReferencedTransferSyntaxUIDInFile",
    0x00080020: "StudyDate",
    0x00100020: "PatientID",
    0x0020000D: "StudyInstanceUID",
    0x0020000E: "SeriesInstanceUID",
}
_ROOT_KEYS = {0x00041130: "FileSetID", 0x00041200: _FIRST, 0x00041220: "DirectoryRecordSequence"}


class _FastRecord(dict[str, object]):
    """A directory record's keys as :func:`read_dicomdir` uses them, with pydicom's ``seq_item_tell``."""

    seq_item_tell: int = 0


def read_dicomdir_fast(path: Path) -> DicomDir | None:
    """:func:`read_dicomdir` without pydicom: the record keys only; None when pydicom should read it instead.

    pydicom parses every element of every record (0.25 ms a record); this reads the dozen keys the hierarchy
    needs. Anything unusual (a non-ASCII key, a malformed record, no record sequence) goes to pydicom, which is
    more forgiving and names the problem.
    """
    try:
        header = read_header(path, frozenset(_ROOT_KEYS), stop_after=0x00041220)
        sequence = header.values.get(0x00041220)
        if sequence is None or sequence.vr != "SQ":
            return None
        root = _decode_keys(header.values, _ROOT_KEYS, header.little_endian)
        records: list[_FastRecord] = []
        for at, values in read_items(
            sequence, _DIRECTORY_KEYS, little_endian=header.little_endian, implicit_vr=header.implicit_vr
        ):
            record = _FastRecord(_decode_keys(values, _DIRECTORY_KEYS, header.little_endian))
            record.seq_item_tell = at
            records.append(record)
    except (NotPart10Error, UnicodeDecodeError, struct.error, OSError):
        return None  # pydicom reads it, or says in its own words why it cannot
    return DicomDir(
        path=path,
        fileset_uid=header.sop_instance_uid,
        fileset_id=str(root.get("FileSetID", "") or ""),
        transfer_syntax_uid=header.transfer_syntax_uid,
        entries=tuple(_entries(root, records)),
    )


def _decode_keys(values: Mapping[int, RawValue], names: Mapping[int, str], little: bool) -> dict[str, object]:
    """Decode the few VRs the directory keys use: UL, US, and ASCII text (split at backslashes)."""
    decoded: dict[str, object] = {}
    order = "<" if little else ">"
    for tag, raw in values.items():
        name = names.get(tag)
        if name is None or raw.vr == "SQ":
            continue
        if raw.vr in ("UL", "US"):
            width = 4 if raw.vr == "UL" else 2
            if len(raw.value) != width:
                raise struct.error(f"{name}: {len(raw.value)} bytes")
            decoded[name] = struct.unpack(order + ("I" if width == 4 else "H"), raw.value)[0]
            continue
        parts = [part.rstrip(b" \x00").decode("ascii") for part in raw.value.split(b"\\")]
        decoded[name] = parts if len(parts) > 1 else parts[0]
    return decoded


def _offset(record: _RecordLike, keyword: str) -> int:
    try:
        return int(record.get(keyword, 0) or 0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _entries(ds: _RecordLike, records: Sequence[_RecordLike]) -> Iterator[DirectoryEntry]:
    by_offset = {int(tell): r for r in records if (tell := getattr(r, "seq_item_tell", None)) is not None}
    linked = any(_offset(r, _NEXT) or _offset(r, _LOWER) for r in records)
    if not linked or len(by_offset) != len(records):
        yield from _entries_in_sequence_order(records)
        return
    pointed = {_offset(r, k) for r in records for k in (_NEXT, _LOWER)}
    roots = [_offset(ds, _FIRST)]
    roots += [offset for offset in sorted(by_offset) if offset not in pointed]
    visited: set[int] = set()
    for root in roots:
        # Pre-order walk with an explicit stack: hostile offsets can make cycles and deep chains.
        stack: list[tuple[int, _Context]] = [(root, ("", "", "", ""))]
        while stack:
            offset, context = stack.pop()
            record = by_offset.get(offset)
            if record is None or offset in visited:
                continue
            visited.add(offset)
            own = _context(record, context)
            entry = _entry(record, own, offset)
            if entry is not None:
                yield entry
            stack.append((_offset(record, _NEXT), context))
            stack.append((_offset(record, _LOWER), own))


def _entries_in_sequence_order(records: Sequence[_RecordLike]) -> Iterator[DirectoryEntry]:
    context: _Context = ("", "", "", "")
    for record in records:
        context = _context(record, context)
        entry = _entry(record, context, int(getattr(record, "seq_item_tell", 0) or 0))
        if entry is not None:
            yield entry


def _context(record: _RecordLike, parent: _Context) -> _Context:
    patient, study, series, date = parent
    kind = str(record.get("DirectoryRecordType", "") or "")
    if kind == "PATIENT":
        return str(record.get("PatientID", "") or ""), "", "", ""
    if kind == "STUDY":
        return (
            patient,
            str(record.get("StudyInstanceUID", "") or ""),
            "",
            str(record.get("StudyDate", "") or ""),
        )
    if kind == "SERIES":
        return patient, study, str(record.get("SeriesInstanceUID", "") or ""), date
    return patient, study, series, date


def _entry(record: _RecordLike, context: _Context, offset: int) -> DirectoryEntry | None:
    file_id = record.get("ReferencedFileID")
    if not file_id:
        return None
    if record.get("RecordInUseFlag") == 0:
        return None
    parts = (str(file_id),) if isinstance(file_id, str) else tuple(str(part) for part in file_id)  # type: ignore[union-attr]
    patient, study, series, date = context
    return DirectoryEntry(
        record_type=str(record.get("DirectoryRecordType", "") or ""),
        file_id=parts,
        referenced_sop_class_uid=str(record.get("ReferencedSOPClassUIDInFile", "") or ""),
        referenced_sop_instance_uid=str(record.get("ReferencedSOPInstanceUIDInFile", "") or ""),
        referenced_transfer_syntax_uid=str(record.get("ReferencedTransferSyntaxUIDInFile", "") or ""),
        patient_id=patient,
        study_instance_uid=study,
        series_instance_uid=series,
        offset=offset,
        study_date="" if date == DEFAULT_DATE else date,
    )
