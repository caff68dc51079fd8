"""Reconciliation and rewriting never fail on ordinary data: pydicom's whole test-file collection into Orthanc.

Every file pydicom ships in ``pydicom.data`` that ``dcmread`` reads (no network: the package's own files only)
is put on a plain folder medium under its own relative path, and imported into a real Orthanc, with and
without ``--reconcile`` (every patient the collection names mapped to a local one) and ``--uids regenerate``.
What each file becomes is predicted from the file itself, not from the import:

* a DICOMDIR (Media Storage Directory, whatever its name) is skipped;
* a second file with the SOP Instance UID of another is skipped as a second copy (one instance, one store);
* a file without a SOP Class, SOP Instance, Study or Series Instance UID is not storable (failed, one line);
* a study with a patient the mapping cannot name (no Patient ID) is held under ``--reconcile``;
* every other file is stored, sanitized then stored, or refused for a reason listed in :data:`REFUSED`;

and no file fails in the import's own steps: nothing "cannot be written again", "cannot be prepared",
"cannot be read" or "does not parse" by pydicom, which read every one of them.
"""

from __future__ import annotations

import csv
import shutil
import warnings
from collections import Counter
from pathlib import Path

import pydicom.data
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import MediaStorageDirectoryStorage

from dcmseal.audit import FileSink
from dcmseal.importer import State, UidPolicy, load_reconciliation
from dcmseal.importer.pipeline import ImportedFile, import_medium
from tests.importer.conftest import dimse_target, import_request, stow_target
from tests.peers.orthanc import OrthancPeer

#: Real peers: Orthanc; about 190 files per import.
pytestmark = [pytest.mark.interop, pytest.mark.slow]

PYDICOM_DATA = Path(pydicom.data.__file__).parent
_IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
#: Files of the collection a scan or the PACS rightly refuses, with the words their reason holds.
REFUSED = {
    # (0008,0018) twice: a data set that breaks the ascending tag order; the sanitizer cannot mend it.
    "palettes/winter.dcm": "tags out of ascending order",
}
#: Files Orthanc 1.10 refuses as they are, over C-STORE (sent byte for byte: the import does not mend them),
#: with the words of the refusal. Rewritten (``--reconcile``, ``--uids regenerate``) or over STOW-RS (which
#: encodes again), Orthanc takes them.
REFUSED_AS_THEY_ARE = {
    "test_files/badVR.dcm": "C-STORE refused: status 0xA900",  # a VR DCMTK (inside Orthanc) cannot parse
    "charset_files/chrJapMulti.dcm": "C-STORE refused: status 0xA900",
    # Explicit VR Big Endian (retired): Orthanc accepts only little endian contexts, and pynetdicom converts
    # only between the little endian ones.
    "test_files/ExplVR_BigEnd.dcm": "the PACS accepts no context",
}
#: What the import's own steps say when they fail: none of it may happen to a file pydicom reads.
OWN_FAILURES = (
    "cannot be written again",
    "cannot be prepared",
    "cannot be read",
    "does not parse",
    "Traceback",
)


def _read(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value checks on its deliberately odd files
        try:
            return dcmread(path)
        except Exception:
            return None


@pytest.fixture(scope="module")
def collection() -> dict[str, Dataset]:
    """Every file of pydicom's data that it reads, by path relative to its data folder."""
    found = {}
    for path in sorted(PYDICOM_DATA.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            ds = _read(path)
            if ds is not None:
                found[path.relative_to(PYDICOM_DATA).as_posix()] = ds
    assert len(found) > 150  # the collection as shipped (188 files in pydicom 3.0)
    return found


def _medium(root: Path, collection: dict[str, Dataset]) -> Path:
    for rel in collection:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PYDICOM_DATA / rel, root / rel)
    return root


def _value(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def _mapping(path: Path, collection: dict[str, Dataset]) -> Path:
    """A local patient for every Patient ID of the collection that a mapping row can hold."""
    ids = sorted({_value(ds, "PatientID") for ds in collection.values()} - {""})
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.DictWriter(fp, fieldnames=["foreign_patient_id", "patient_id", "patient_name"])
        writer.writeheader()
        for n, foreign in enumerate(ids):
            if "\\" not in foreign and len(foreign) <= 64 and foreign.isprintable():
                writer.writerow(
                    {"foreign_patient_id": foreign, "patient_id": f"LOC-{n:04d}", "patient_name": "Local^Pt"}
                )
    return path


@pytest.mark.parametrize(
    ("protocol", "reconcile", "uids"),
    [
        ("C-STORE", False, UidPolicy.KEEP),
        ("STOW-RS", True, UidPolicy.KEEP),
        ("STOW-RS", False, UidPolicy.REGENERATE),
        ("C-STORE", True, UidPolicy.REGENERATE),
    ],
)
def test_every_file_of_pydicoms_collection_ends_where_its_content_says(
    tmp_path: Path,
    orthanc: OrthancPeer,
    collection: dict[str, Dataset],
    protocol: str,
    reconcile: bool,
    uids: UidPolicy,
) -> None:
    medium = _medium(tmp_path / "medium", collection)
    target = dimse_target(orthanc) if protocol == "C-STORE" else stow_target(orthanc)
    request = import_request(tmp_path, medium, target, uid_policy=uids)
    if reconcile:
        from dataclasses import replace

        request = replace(
            request, reconciliation=load_reconciliation(_mapping(tmp_path / "map.csv", collection))
        )
    result = import_medium(request, audit=FileSink(tmp_path / "audit.log"))
    files = {f.path: f for f in result.files}
    assert set(files) == set(collection)  # every file accounted for, once
    for rel, imported in files.items():
        assert imported.reason is not None, rel
        assert len(imported.reason.splitlines()) == 1, (rel, imported.reason)
        assert not any(words in imported.reason for words in OWN_FAILURES), (rel, imported.reason)

    # open names a second copy by the SOP Instance UID of the File Meta or of the data set.
    copies = Counter(uid for ds in collection.values() for uid in _instance_uids(ds))
    held_studies = (
        {_value(ds, "StudyInstanceUID") for ds in collection.values() if not _value(ds, "PatientID")}
        if reconcile
        else set()
    )
    unexpected = [
        (rel, files[rel].outcome, files[rel].reason)
        for rel, ds in collection.items()
        if files[rel].outcome not in _expected(rel, ds, files[rel], copies, held_studies)
    ]
    assert unexpected == []

    # What Orthanc holds is what was stored: each sent SOP Instance UID once.
    stored = [f for f in result.files if f.status is State.STORED]
    assert orthanc.sop_instance_uids() == {f.sent_sop_instance_uid for f in stored}
    assert len(stored) >= 100
    if uids is UidPolicy.REGENERATE:
        assert not {f.sent_sop_instance_uid for f in stored} & {f.sop_instance_uid for f in stored}
    if reconcile:
        assert any(f.coerced for f in stored)


def _instance_uids(ds: Dataset) -> set[str]:
    meta = getattr(ds, "file_meta", None)
    return {_value(ds, "SOPInstanceUID"), _value(meta, "MediaStorageSOPInstanceUID") if meta else ""} - {""}


def _expected(
    rel: str, ds: Dataset, got: ImportedFile, copies: Counter[str], held_studies: set[str]
) -> set[str]:
    """The outcomes ``rel`` may have, from its own content."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
        return {"skipped"}
    if rel in REFUSED:
        assert REFUSED[rel] in (got.reason or ""), (rel, got.reason)
        return {"quarantined", "failed"}
    if any(not _value(ds, k) for k in _IDENTIFYING):
        return {"failed"}  # "not storable: no ..."
    if got.status is State.SKIPPED and any(copies[uid] > 1 for uid in _instance_uids(ds)):
        assert "second copy" in (got.reason or ""), (rel, got.reason)
        return {"skipped"}
    if _value(ds, "StudyInstanceUID") in held_studies:
        return {"held"}
    if rel in REFUSED_AS_THEY_ARE and got.status is State.FAILED:
        assert REFUSED_AS_THEY_ARE[rel] in (got.reason or ""), (rel, got.reason)
        return {"failed"}
    return {"stored", "sanitized then stored"}
