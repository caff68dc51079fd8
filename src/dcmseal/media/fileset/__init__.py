"""DICOM File-sets (PS3.10 §8): plan one with its DICOMDIR, read a DICOMDIR back, check it against its files.

One module a step: :mod:`.fileid` (File IDs), :mod:`.keys` (what is read of each instance), :mod:`.instance`
(the view of one instance's header), :mod:`.records` (its directory records), :mod:`.inventions` (the keys it
lacks), :mod:`.planner` (:func:`build_fileset`), :mod:`.read` (:func:`read_dicomdir`) and :mod:`.agreement`
(:func:`check_agreement`). Callers import the public names from here.
"""

from __future__ import annotations

from dcmseal.media.dicomdir import MEDIA_STORAGE_DIRECTORY_SOP_CLASS
from dcmseal.media.fileset.agreement import (
    Disagreement,
    DisagreementKind,
    FileFacts,
    check_agreement,
    read_file_facts,
)
from dcmseal.media.fileset.fileid import (
    DICOMDIR_NAME,
    MAX_FILESET_ID_CHARS,
    file_id_to_path,
    fileset_id_from_label,
    fileset_id_of,
    is_conformant_file_id,
    path_to_file_id,
)
from dcmseal.media.fileset.planner import FileSetPlan, NoteKind, PlannedFile, PlanNote, build_fileset
from dcmseal.media.fileset.read import DicomDir, DirectoryEntry, read_dicomdir

__all__ = [
    "DICOMDIR_NAME",
    "MAX_FILESET_ID_CHARS",
    "MEDIA_STORAGE_DIRECTORY_SOP_CLASS",
    "DicomDir",
    "DirectoryEntry",
    "Disagreement",
    "DisagreementKind",
    "FileFacts",
    "FileSetPlan",
    "NoteKind",
    "PlanNote",
    "PlannedFile",
    "build_fileset",
    "check_agreement",
    "file_id_to_path",
    "fileset_id_from_label",
    "fileset_id_of",
    "is_conformant_file_id",
    "path_to_file_id",
    "read_dicomdir",
    "read_file_facts",
]
