"""Check a DICOMDIR against the files of its File-set (PS3.3 F.3.2.2, PS3.11 §D.3.3)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dcmseal.media.fileset.fileid import DICOMDIR_NAME
from dcmseal.media.fileset.read import DicomDir
from dcmseal.part10.fileformat import read_file_meta

__all__ = ["Disagreement", "DisagreementKind", "FileFacts", "check_agreement", "read_file_facts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileFacts:
    """What a file on the medium says about itself (its File Meta Information, PS3.10 §7.1)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def read_file_facts(path: Path) -> FileFacts:
    """Read :class:`FileFacts` from a PS3.10 file's File Meta Information.

    Raises
    ------
    NotPart10Error
        ``path`` is not a PS3.10 file.
    """
    meta = read_file_meta(path)
    return FileFacts(
        sop_class_uid=meta.sop_class_uid,
        sop_instance_uid=meta.sop_instance_uid,
        transfer_syntax_uid=meta.transfer_syntax_uid,
    )


class DisagreementKind(enum.StrEnum):
    """How a DICOMDIR and the files of its File-set disagree."""

    MISSING_FILE = "missing-file"  # a record references a file that is not there
    UNREFERENCED_FILE = "unreferenced-file"  # a DICOM file no record references (PS3.11 D.3.3)
    UID_MISMATCH = "uid-mismatch"  # (0004,1511) differs from the file's Media Storage SOP Instance UID
    CLASS_MISMATCH = "class-mismatch"  # (0004,1510) differs from the file's Media Storage SOP Class UID
    TS_MISMATCH = "ts-mismatch"  # (0004,1512) differs from the file's Transfer Syntax UID


@dataclass(frozen=True, slots=True, kw_only=True)
class Disagreement:
    """One way the DICOMDIR and a file disagree."""

    kind: DisagreementKind
    file_id: tuple[str, ...]
    expected: str
    found: str
    message: str

    def to_json(self) -> dict[str, object]:
        """The disagreement as JSON-ready values."""
        return {
            "kind": self.kind.value,
            "file_id": list(self.file_id),
            "expected": self.expected,
            "found": self.found,
            "message": self.message,
        }


def check_agreement(dicomdir: DicomDir, files: Mapping[tuple[str, ...], FileFacts]) -> list[Disagreement]:
    """List every disagreement between ``dicomdir`` and the DICOM files found on the medium.

    ``files`` maps the File ID of every DICOM file present (the DICOMDIR itself excepted) to what the file says
    (:func:`read_file_facts`). Checked (PS3.3 F.3.2.2, PS3.11 §D.3.3): each referenced file exists and has the
    SOP Instance UID, SOP Class UID and Transfer Syntax UID its record states (a key the record leaves empty is
    not compared), and each file is referenced. The list is ordered by File ID.
    """
    found: list[Disagreement] = []
    referenced: set[tuple[str, ...]] = set()
    for entry in dicomdir.entries:
        file_id = entry.file_id
        shown = "/".join(file_id)
        referenced.add(file_id)
        facts = files.get(file_id)
        if facts is None:
            found.append(
                Disagreement(
                    kind=DisagreementKind.MISSING_FILE,
                    file_id=file_id,
                    expected=entry.referenced_sop_instance_uid,
                    found="",
                    message=f"{shown}: referenced by a {entry.record_type} record but not on the medium",
                )
            )
            continue
        for kind, what, expected, actual in (
            (
                DisagreementKind.UID_MISMATCH,
                "SOP Instance UID",
                entry.referenced_sop_instance_uid,
                facts.sop_instance_uid,
            ),
            (
                DisagreementKind.CLASS_MISMATCH,
                "SOP Class UID",
                entry.referenced_sop_class_uid,
                facts.sop_class_uid,
            ),
            (
                DisagreementKind.TS_MISMATCH,
                "Transfer Syntax UID",
                entry.referenced_transfer_syntax_uid,
                facts.transfer_syntax_uid,
            ),
        ):
            if expected and expected != actual:
                found.append(
                    Disagreement(
                        kind=kind,
                        file_id=file_id,
                        expected=expected,
                        found=actual,
                        message=f"{shown}: the DICOMDIR records {what} {expected}, the file has {actual}",
                    )
                )
    for file_id in files:
        if file_id in referenced or file_id == (DICOMDIR_NAME,):
            continue
        facts = files[file_id]
        found.append(
            Disagreement(
                kind=DisagreementKind.UNREFERENCED_FILE,
                file_id=file_id,
                expected="",
                found=facts.sop_instance_uid,
                message=f"{'/'.join(file_id)}: a DICOM file that no DICOMDIR record references",
            )
        )
    found.sort(key=lambda d: (d.file_id, d.kind.value))
    return found
