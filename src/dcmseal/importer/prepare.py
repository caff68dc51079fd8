"""The file to send written: coerced, its UIDs set, its preamble zero, and scanned again."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from dcmseal.errors import NotPart10Error, one_line
from dcmseal.fsutil import CHUNK_SIZE_BYTES, atomic_write, sha256_file
from dcmseal.importer.examine import Candidate, decode_mislabelled, quarantine
from dcmseal.importer.journal import State
from dcmseal.importer.reconcile import StudyDecision, StudyHeld, add_original_attributes, coerce_dataset
from dcmseal.importer.run import Run
from dcmseal.importer.send import Outgoing
from dcmseal.importer.uids import regenerate_uids
from dcmseal.part10.fileformat import ZERO_PREAMBLE, is_part10, parse_meta_group
from dcmseal.scan import Verdict, scan_file
from dcmseal.uids import stamp_implementation

__all__ = ["dicom_datetime", "fail", "prepare"]

logger = logging.getLogger(__name__)


def dicom_datetime(moment: datetime) -> str:
    """A DICOM DT with its UTC offset."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S.%f") + "+0000"


#: One read covers the preamble and the File Meta group in practice (a larger group: pydicom writes the file).
_META_READ_BYTES = 16 * 1024


def fail(run: Run, candidate: Candidate, reason: str) -> None:
    """``candidate`` failed before the send, for ``reason`` (one line)."""
    run.settle(
        candidate.rel,
        State.FAILED,
        reason,
        verdict=candidate.verdict,
        findings=candidate.findings,
        changes=candidate.changes,
        sop_instance_uid=candidate.uids.sop_instance,
    )


def prepare(
    run: Run,
    candidate: Candidate,
    decisions: Mapping[str, StudyDecision | StudyHeld],
    mapping: dict[str, str],
    when: str,
) -> tuple[Outgoing, str, tuple[str, ...], str, str] | None:
    """Write the file to send: coerced, UIDs set, preamble zero; rescan it.

    Returns the outgoing item, its SHA-256, the attributes coerced, and the local Patient ID and Study
    Instance UID it is sent with (for the audit message).
    """
    request = run.request
    prepared = run.work / "prepared" / f"{candidate.index:06d}.dcm"
    decision = decisions.get(candidate.uids.study)
    if decision is None and not mapping and not candidate.mislabelled and candidate.transfer_syntax_uid:
        # Nothing to change but the preamble: the bytes as scanned, preamble zeroed, without a decode and an
        # encode by pydicom (which cost more than the send itself on a plain medium). Rescanned as any other.
        sha = _copy_zero_preamble(candidate.chosen, prepared)
        if sha is not None:
            item = _outgoing(candidate, prepared, candidate.uids.sop_instance, candidate.transfer_syntax_uid)
            return _checked(run, candidate, item, sha, (), candidate.patient_id, candidate.uids.study)
    try:
        ds = dcmread(candidate.chosen)
        decode_mislabelled(ds)
    except Exception as exc:  # whatever pydicom raises on this file, the file is refused, not the run
        # The scan found the file clean or made it so, yet pydicom cannot read it: it does not parse, and a file
        # that does not parse never reaches the PACS.
        logger.debug("%s: pydicom cannot read it", candidate.rel, exc_info=True)
        quarantine(
            run,
            candidate.rel,
            candidate.chosen,
            sha256_file(candidate.chosen),
            f"the data set does not parse ({one_line(exc)})",
            (),
            candidate.verdict,
            candidate.findings,
        )
        return None
    originals = []
    if decision is not None:
        assert isinstance(decision, StudyDecision)  # held studies never get here
        originals += coerce_dataset(
            ds, decision.patient, decision.accession, request_attributes=decision.request_attributes
        )
    if mapping:
        uid_originals, _count = regenerate_uids(ds, mapping)
        originals += uid_originals
    add_original_attributes(
        ds,
        originals,
        when=when,
        modifying_system=request.calling_aet,
        source=request.source_of_previous_values
        if request.source_of_previous_values is not None
        else candidate.institution,
    )
    ds.preamble = ZERO_PREAMBLE  # PS3.10 §7.5: whatever the medium carried, what we send has a zero preamble
    stamp_implementation(ds)  # dcmseal wrote this file: its File Meta says so (PS3.10 §7.1)
    try:
        with atomic_write(prepared, overwrite=True, durable=False) as out:
            ds.save_as(out, enforce_file_format=True)
    except Exception as exc:  # one value pydicom cannot encode fails this file, not the run
        logger.debug("%s: cannot be written again", candidate.rel, exc_info=True)
        step = "after reconciliation" if request.reconciliation is not None else "before the send"
        fail(run, candidate, f"cannot be written again {step}: {one_line(exc)}")
        return None
    return _checked(
        run,
        candidate,
        _outgoing(candidate, prepared, str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID)),
        sha256_file(prepared),
        tuple(str(e.keyword) for e in originals),  # the attributes coerced
        str(ds.get("PatientID", "") or ""),
        str(ds.StudyInstanceUID),
    )


def _copy_zero_preamble(source: Path, prepared: Path) -> str | None:
    """Copy the Part 10 file ``source`` to ``prepared`` with a zero preamble and dcmseal named in its File Meta
    (PS3.10 7.1: dcmseal wrote it), the data set's bytes as they are; the SHA-256 of what was written, or None
    when ``source`` has no Part 10 header that parses (the caller then writes it with pydicom)."""
    with open(source, "rb") as src:
        head = src.read(_META_READ_BYTES)
        if not is_part10(head):
            return None
        try:
            values, end = parse_meta_group(head, os.fstat(src.fileno()).st_size, source)
        except NotPart10Error:
            return None
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(values[0x00020002])
        meta.MediaStorageSOPInstanceUID = UID(values[0x00020003])
        meta.TransferSyntaxUID = UID(values[0x00020010])
        holder = Dataset()
        holder.file_meta = meta
        stamp_implementation(holder)
        header = DicomBytesIO()
        header.write(ZERO_PREAMBLE + b"DICM")
        write_file_meta_info(header, meta, enforce_standard=True)
        digest = hashlib.sha256(header.getvalue())
        src.seek(end)
        with atomic_write(prepared, overwrite=True, durable=False) as out:
            out.write(header.getvalue())
            while chunk := src.read(CHUNK_SIZE_BYTES):
                out.write(chunk)
                digest.update(chunk)
    return digest.hexdigest()


def _outgoing(
    candidate: Candidate, prepared: Path, sop_instance_uid: str, transfer_syntax_uid: str
) -> Outgoing:
    return Outgoing(
        key=candidate.rel,
        path=prepared,
        sop_class_uid=candidate.sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        transfer_syntax_uid=transfer_syntax_uid,
    )


def _checked(
    run: Run,
    candidate: Candidate,
    item: Outgoing,
    sha: str,
    coerced: tuple[str, ...],
    patient_id: str,
    study_uid: str,
) -> tuple[Outgoing, str, tuple[str, ...], str, str] | None:
    """Rescan the prepared file of ``item``; the outgoing item when it is clean, else quarantine the original."""
    recheck = scan_file(item.path, name=candidate.rel)
    if recheck.verdict is not Verdict.CLEAN:
        codes = tuple(f.code for f in recheck.findings if f.severity is not Verdict.CLEAN)
        quarantine(
            run,
            candidate.rel,
            candidate.chosen,
            sha256_file(candidate.chosen),
            f"still {recheck.verdict.value} after sanitizing ({', '.join(codes)})",
            recheck.findings,
            candidate.verdict,
            codes,
        )
        return None
    request = run.request
    if request.keep_sent is not None:
        with (
            atomic_write(request.keep_sent / f"{item.sop_instance_uid}.dcm", overwrite=True) as out,
            open(item.path, "rb") as src,
        ):
            shutil.copyfileobj(src, out, CHUNK_SIZE_BYTES)
    return item, sha, coerced, patient_id, study_uid
