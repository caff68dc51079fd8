"""What a file of a medium is, by its content (PS3.10, a data set without File Meta, Secure DICOM, or not DICOM).

A plain DICOM file is put in the work folder as PS3.10 bytes: copied as it is, given a File Meta group when it
has none, its File Meta rebuilt from the data set when that group is broken (foreign-media.md); the data set's
bytes are never changed. A file that is not DICOM is described for a person (what it is, and that it is never run).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydicom.uid import UID

from dcmseal.errors import NotPart10Error
from dcmseal.fsutil import CHUNK_SIZE_BYTES
from dcmseal.intake.listing import Source
from dcmseal.part10 import read_file_meta
from dcmseal.reader.detect import MANIFEST_NAME, SNIFF_BYTES, dataset_after_meta, sniff
from dcmseal.reader.wrap import wrap_dataset
from dcmseal.scan.signatures import Family, identify

__all__ = ["NOT_DICOM", "describe", "to_plain"]


#: How the reason of a file left out because it is not DICOM begins.
NOT_DICOM = "not a DICOM file"


def describe(label: str, head: bytes) -> str:
    """Why a file is left out, for a person: what its content is."""
    if label == MANIFEST_NAME:
        return f"{NOT_DICOM}: the manifest of the files dcmseal wrote on this medium; left out"
    if label.rpartition("/")[2].lower() == "autorun.inf":
        return f"{NOT_DICOM}: an autorun.inf (it launches a program when the disc is inserted); left out"
    signature = identify(head, text=True) if head else None
    if signature is None:
        return f"{NOT_DICOM} (no DICM at offset 128, no CMS envelope, no data set): left out"
    if signature.family in (Family.EXECUTABLE, Family.SCRIPT):
        return f"{NOT_DICOM}: a {signature.description}; never run, left out"
    return f"{NOT_DICOM}: a {signature.description}; left out"


def to_plain(source: Source, plain: Path, changes: list[str]) -> str:
    """Classify ``source`` by content and put its plain bytes at ``plain``: its kind (secure files wait).

    What had to be done to make it a PS3.10 file (a File Meta group given or rebuilt), or why it is left out
    (not DICOM), is appended to ``changes``.
    """
    with source.stream() as fp:
        head = fp.read(SNIFF_BYTES)
        size = source.extent.length if source.extent is not None else os.fstat(fp.fileno()).st_size
        sniffed = sniff(head, size)
        if sniffed.kind == "part10":
            fp.seek(0)
            with open(plain, "xb") as out:
                shutil.copyfileobj(fp, out, CHUNK_SIZE_BYTES)
            try:
                read_file_meta(plain)
            except NotPart10Error:
                # DICM but a broken or missing group 0002 (foreign-media.md): the data set behind it decides
                found = dataset_after_meta(head, size)
                if found is not None:
                    start, transfer_syntax = found
                    plain.unlink()
                    with open(plain, "xb") as out:
                        wrap_dataset(fp, transfer_syntax, out, start=start)
                    changes.append(
                        f"a broken or missing File Meta group: rebuilt from the data set ({UID(transfer_syntax).name})"
                    )
        elif sniffed.kind == "dataset":
            assert sniffed.transfer_syntax is not None
            with open(plain, "xb") as out:
                wrap_dataset(fp, sniffed.transfer_syntax, out)
            changes.append(
                f"a data set without File Meta ({UID(sniffed.transfer_syntax).name}): given a PS3.10 header"
            )
        elif sniffed.kind == "other":
            changes.append(describe(source.label, head))
    return sniffed.kind
