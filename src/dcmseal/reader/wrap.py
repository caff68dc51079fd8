"""A data set found without File Meta Information, made a PS3.10 file without changing one byte of it.

Old discs carry bare data sets (no preamble, no ``DICM``, no group 0002). PS3.10 §7.1 defines what a file needs
in front: a 128-byte preamble, ``DICM`` and the File Meta group, whose SOP Class and Instance UIDs come from the
data set (0008,0016)/(0008,0018) and whose Transfer Syntax UID is the encoding :func:`dcmseal.reader.sniff`
found. The data set's bytes follow unchanged, so nothing of the instance is re-encoded or lost.
"""

from __future__ import annotations

import io
import shutil
from typing import Any, BinaryIO, cast

from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from dcmseal.errors import NotPart10Error
from dcmseal.part10.encoding import EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from dcmseal.part10.fileformat import ZERO_PREAMBLE
from dcmseal.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

# The implementation identity lives in dcmseal.uids (one place); re-exported for the modules that import it here.
__all__ = ["IMPLEMENTATION_CLASS_UID", "IMPLEMENTATION_VERSION_NAME", "wrap_dataset"]

_CHUNK = 1024 * 1024


def wrap_dataset(source: BinaryIO, transfer_syntax: str, out: BinaryIO, *, start: int = 0) -> tuple[str, str]:
    """Write the bare data set ``source`` (read from ``start``) to ``out`` as a PS3.10 file.

    Returns the SOP Class and SOP Instance UIDs written into the File Meta group.

    Raises
    ------
    NotPart10Error
        The data set does not parse as far as its SOP Class and Instance UIDs, or has none.
    """
    if start:
        source = cast(
            BinaryIO, io.BufferedReader(_Shifted(source, start))
        )  # pydicom rewinds to 0 when it finds no header: 0 must be ``start``
        start = 0
    little = transfer_syntax != EXPLICIT_VR_BIG_ENDIAN
    implicit = transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN
    source.seek(start)
    try:
        ds = dcmread(
            source,
            force=True,
            stop_before_pixels=True,
            specific_tags=[0x00080016, 0x00080018],
        )
        # pydicom guesses the encoding itself; read again in the one detected if it guessed otherwise
        if ds.is_little_endian != little or ds.is_implicit_VR != implicit:
            source.seek(start)
            ds = dcmread(source, force=True, stop_before_pixels=True, specific_tags=[0x00080016, 0x00080018])
        sop_class = str(ds.get("SOPClassUID", "") or "").strip("\0 ")
        sop_instance = str(ds.get("SOPInstanceUID", "") or "").strip("\0 ")
    except (InvalidDicomError, ValueError, TypeError, KeyError, IndexError, EOFError, OSError) as exc:
        raise NotPart10Error(f"a data set without File Meta that does not parse: {exc}") from exc
    if not sop_class or not sop_instance:
        raise NotPart10Error("a data set without File Meta and without SOP Class or SOP Instance UID")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    buffer = DicomBytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    out.write(ZERO_PREAMBLE + b"DICM" + buffer.getvalue())
    source.seek(start)
    shutil.copyfileobj(source, out, _CHUNK)
    return sop_class, sop_instance


class _Shifted(io.RawIOBase):
    """``raw`` as seen from byte ``start`` on: position 0 here is ``start`` there."""

    def __init__(self, raw: BinaryIO, start: int) -> None:
        super().__init__()
        self._raw, self._start = raw, start
        self.name = getattr(raw, "name", "<data set>")  # io.BufferedReader asks its raw stream for one
        raw.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any, /) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            return self._raw.seek(self._start + offset) - self._start
        return self._raw.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._raw.tell() - self._start
