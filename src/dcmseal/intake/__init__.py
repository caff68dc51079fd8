"""Reading a medium in, for ``open`` and ``import`` alike: list its files, recognise each by content, unseal.

The domain core both receiving workflows build on (:mod:`dcmseal.media.open` writes a conformant File-set from
it, :mod:`dcmseal.importer` sends to a PACS): every file of a folder, FAT, ISO 9660, UDF image or zip listed
through :mod:`dcmseal.reader`, each DICOM file put in a private work folder as plain PS3.10 bytes, each Secure
DICOM File unsealed and verified (:mod:`dcmseal.part10`), one file's failure isolated from the others, and each
file ending with a typed outcome (:class:`IntakeStatus`, :class:`dcmseal.outcomes.ReasonKind`). It audits
nothing: each workflow audits what it did.

A package of its own rather than a part of :mod:`dcmseal.reader`: the reader sits below ``scan`` (the scanner
reads media through it), and reading a medium in needs ``part10`` (unsealing) and ``scan``'s signatures (to say
what a file that is not DICOM is), so it sits beside them in the domain, above the reader.
"""

from __future__ import annotations

from dcmseal.intake.content import NOT_DICOM, describe
from dcmseal.intake.read import (
    IntakeStatus,
    Integrity,
    Keys,
    MediumFile,
    MediumReading,
    fileset_id,
    read_medium,
)

__all__ = [
    "NOT_DICOM",
    "IntakeStatus",
    "Integrity",
    "Keys",
    "MediumFile",
    "MediumReading",
    "describe",
    "fileset_id",
    "read_medium",
]
