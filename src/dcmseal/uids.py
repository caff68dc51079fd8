"""dcmseal's own UID root, the Implementation Class UID and Version Name, and the identifiers dcmseal makes.

dcmseal has no registered UID root. PS3.5 §B.2 allows a root derived from a UUID (ITU-T X.667 | ISO/IEC
9834-8): "2.25." followed by the UUID as one decimal integer. :data:`UID_ROOT` is such a root, made once from
the random (version 4) UUID ``6e0dad56-25e8-40e4-afee-d67a90068f25`` and never to change; the owner of a
UUID-derived OID may hang arcs below it. Under it:

- ``UID_ROOT.1`` is the Implementation Class UID (PS3.7 D.3.3.2, PS3.10 §7.1 (0002,0012));
- ``UID_ROOT.2.<digits>`` are UIDs dcmseal derives from other values, the same every time (e.g. a Series
  Instance UID supplied for a DICOMDIR record): the digits are a SHA-256 of the sources, as many as fit 64
  characters.

A fresh UID (a new SOP Instance, Study, Series or File-set UID) is a UUID-derived UID of its own, "2.25."
and a new random UUID (:func:`new_uid`): 122 random bits, which no suffix under a 44-character root could hold.
No UID dcmseal makes is under another implementation's root (pydicom's 1.2.826.0.1.3680043.8.498 included).
"""

from __future__ import annotations

import hashlib
import re
import uuid

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "INVENTED_PATIENT_ID_PREFIX",
    "UID_ROOT",
    "derived_uid",
    "is_invented_patient_id",
    "new_uid",
    "stamp_implementation",
]

#: "2.25." + int(UUID("6e0dad56-25e8-40e4-afee-d67a90068f25")): dcmseal's UID root (PS3.5 §B.2).
UID_ROOT = "2.25.146286095077716829347836268799775379237"
#: (0002,0012) of every file dcmseal writes, and of the DICOMDIR.
IMPLEMENTATION_CLASS_UID = f"{UID_ROOT}.1"
#: (0002,0013): SH, at most 16 characters; changes with the on-disk behaviour, not with every release.
IMPLEMENTATION_VERSION_NAME = "DCMSEAL_0_1"

_MAX_UID_CHARS = 64  # PS3.5 §9.1
_DERIVED_ARC = f"{UID_ROOT}.2."


def new_uid() -> str:
    """A new UID: "2.25." and a random UUID as a decimal integer, without leading zeros (PS3.5 §B.2)."""
    return f"2.25.{uuid.uuid4().int}"


def derived_uid(*sources: str) -> str:
    """The UID ``UID_ROOT.2.<digits>`` for ``sources``: the same sources always give the same UID.

    The digits are the leading decimal digits of the SHA-256 of the sources (joined by NUL) read as an integer,
    as many as fit 64 characters (about 60 bits); a decimal integer has no leading zero (PS3.5 §9.1).
    """
    digest = hashlib.sha256("\0".join(sources).encode("utf-8")).digest()
    return _DERIVED_ARC + str(int.from_bytes(digest, "big"))[: _MAX_UID_CHARS - len(_DERIVED_ARC)]


def stamp_implementation(ds: Dataset) -> None:
    """Name dcmseal as the implementation that writes ``ds`` ((0002,0012) and (0002,0013), PS3.10 §7.1).

    pydicom would otherwise keep the source's values, or fill in its own UID when there is none.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME


#: A Patient ID dcmseal invents for a DICOMDIR PATIENT record is this and 8 hex digits (PS3.11 Table D.3-2 note).
INVENTED_PATIENT_ID_PREFIX = "DCMSEAL_"
_INVENTED_PATIENT_ID = re.compile(rf"{INVENTED_PATIENT_ID_PREFIX}[0-9A-F]{{8}}")


def is_invented_patient_id(patient_id: str) -> bool:
    """Whether ``patient_id`` is one dcmseal invents for a PATIENT record of an instance that has none.

    The value lives in the DICOMDIR only (the instance is never changed); an audit trail must not take it
    for a patient's identifier.
    """
    return _INVENTED_PATIENT_ID.fullmatch(patient_id.strip()) is not None
