"""One file of the medium scanned, sanitized or quarantined, and read for what sending it needs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from dcmseal.errors import DcmsealError, NotPart10Error, one_line
from dcmseal.fsutil import sha256_file
from dcmseal.importer.journal import State
from dcmseal.importer.run import Run
from dcmseal.importer.uids import UidTriple
from dcmseal.importer.worklist import ForeignStudy
from dcmseal.part10.fileformat import read_file_meta
from dcmseal.part10.transcode import conform
from dcmseal.scan import Finding, Verdict, quarantine_file, sanitize_file, scan_file

__all__ = ["Candidate", "decode_mislabelled", "examine", "quarantine", "quarantine_unscanned"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Candidate:
    """A DICOM instance of the medium on its way to the PACS."""

    index: int
    rel: str
    chosen: Path  # the scanned-clean or sanitized bytes that are prepared
    source_sha256: str
    verdict: str
    findings: tuple[str, ...]
    changes: tuple[str, ...]
    patient_id: str
    issuer: str | None
    accession: str
    uids: UidTriple
    sop_class_uid: str
    institution: str
    study: ForeignStudy  # the patient and order keys reconciliation decides on
    transfer_syntax_uid: str = ""
    #: Elements pydicom read without a VR (implicit VR under an explicit Transfer Syntax): must be re-encoded.
    mislabelled: bool = False


def examine(run: Run, rel: str, number: int, source: Path, conformed: Path | None = None) -> Candidate | None:
    """Scan one instance; sanitize it if it needs it, quarantine it if it cannot be; read what the import needs.

    ``conformed`` is the PS3.10 copy of a plain file read in (File Meta added to a data set that had none): what
    is prepared when the medium's own clean bytes cannot be sent as they are; a big endian file is first made
    little endian, losslessly (:func:`_little_endian`).
    """
    settle, work = run.settle, run.work
    if _is_dicomdir(source):
        settle(rel, State.SKIPPED, "a DICOMDIR (a File-set's directory, not an instance)")
        return None
    sha = sha256_file(source)
    report = scan_file(source, name=rel)
    codes = tuple(f.code for f in report.findings if f.severity is not Verdict.CLEAN)
    chosen: Path = source
    changes: tuple[str, ...] = ()
    refuse = partial(
        quarantine, run, rel, source, sha, findings=report.findings, verdict=report.verdict.value, codes=codes
    )
    if report.verdict is not Verdict.CLEAN:
        sanitized = sanitize_file(source, work / "sanitized" / f"{number:06d}.dcm", overwrite=True)
        if sanitized.output is None:
            refuse(sanitized.refused or f"{report.verdict.value}: cannot be made safe")
            return None
        chosen, changes = sanitized.output, tuple(sanitized.changes)
        logger.warning("%s: %s, sanitized (%s)", rel, report.verdict.value, "; ".join(changes))
    else:
        sendable = _sendable_as_is(source)
        if not sendable and conformed is not None:
            chosen, sendable = conformed, _sendable_as_is(conformed)
        if not sendable:
            chosen = _little_endian(rel, chosen, work / "conformed" / f"{number:06d}.dcm")
    try:
        ds = dcmread(chosen, stop_before_pixels=True)
        mislabelled = decode_mislabelled(ds) > 0
    except OSError as exc:
        settle(
            rel,
            State.FAILED,
            f"cannot be read: {one_line(exc)}",
            verdict=report.verdict.value,
            findings=codes,
        )
        return None
    except Exception as exc:  # whatever pydicom raises, this file does not parse
        logger.debug("%s: pydicom cannot read it", rel, exc_info=True)
        refuse(f"the data set does not parse ({one_line(exc)})")
        return None
    missing = [k for k in _IDENTIFYING if not str(ds.get(k, "") or "").strip()]
    if missing:
        settle(
            rel,
            State.FAILED,
            f"not storable: no {', '.join(missing)}",
            verdict=report.verdict.value,
            findings=codes,
            changes=changes,
        )
        return None
    uids = UidTriple(
        study=str(ds.StudyInstanceUID),
        series=str(ds.SeriesInstanceUID),
        sop_instance=str(ds.SOPInstanceUID),
    )
    sop_class = str(ds.SOPClassUID)
    return Candidate(
        index=number,
        rel=rel,
        chosen=chosen,
        source_sha256=sha,
        verdict=report.verdict.value,
        findings=codes,
        changes=tuple(changes),
        patient_id=str(ds.get("PatientID", "") or ""),
        issuer=str(ds.get("IssuerOfPatientID", "") or "") or None,
        accession=str(ds.get("AccessionNumber", "") or ""),
        uids=uids,
        sop_class_uid=sop_class,
        institution=str(ds.get("InstitutionName", "") or ""),
        study=ForeignStudy.from_dataset(ds),
        transfer_syntax_uid=str(getattr(ds.get("file_meta"), "TransferSyntaxUID", "") or ""),
        mislabelled=mislabelled,
    )


#: What :func:`_little_endian` keeps as it is; a big endian data set is rewritten in Explicit VR Little Endian.
_SENDABLE = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
#: What an instance needs to be stored and found again: without them a PACS refuses it or cannot index it.
_IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def _sendable_as_is(path: Path) -> bool:
    """Whether a plain file can go to a PACS as it is: a File Meta with its UIDs, little endian.

    A data set without File Meta (old CDs) has no Transfer Syntax to send it in; Explicit VR Big Endian is
    retired (PS3.5 A.3) and Orthanc, for one, accepts no context for it, and pynetdicom converts only between
    the little endian syntaxes. The PS3.10 copy read in has a File Meta; :func:`_little_endian` makes it little
    endian.
    """
    try:
        return read_file_meta(path).transfer_syntax_uid != ExplicitVRBigEndian
    except (NotPart10Error, OSError):
        return False


def _little_endian(rel: str, path: Path, dst: Path) -> Path:
    """``path`` rewritten losslessly in Explicit VR Little Endian at ``dst`` (a big endian data set, which no PACS
    takes); ``path`` itself when it cannot be (then the PACS refuses it, as it would have anyway)."""
    try:
        conform(path, dst, allowed=_SENDABLE, allowed_by="the import", durable=False)
    except (DcmsealError, OSError, ValueError) as exc:
        logger.debug("%s: cannot be made little endian: %s", rel, exc)
        return path
    return dst


def _is_dicomdir(path: Path) -> bool:
    """Whether ``path`` is a DICOMDIR by its File Meta (Media Storage Directory Storage), whatever its name."""
    try:
        return read_file_meta(path).sop_class_uid == MediaStorageDirectoryStorage
    except (NotPart10Error, OSError):
        return False


def quarantine(
    run: Run,
    rel: str,
    source: Path,
    sha: str,
    reason: str,
    findings: Sequence[Finding],
    verdict: str,
    codes: tuple[str, ...],
) -> None:
    """Set ``source`` (the file ``rel`` as it was scanned) aside in the quarantine, for ``reason``; alert on it."""
    request = run.request
    record = quarantine_file(
        source, request.quarantine, reason=reason, findings=findings, source=f"{request.medium}:{rel}"
    )
    run.alerts.append((rel, record.sha256, reason))
    logger.warning("%s: quarantined (%s)", rel, reason)
    run.settle(
        rel,
        State.QUARANTINED,
        f"{reason} (quarantined as {record.quarantined_path.name})",
        verdict=verdict,
        findings=codes,
    )


def quarantine_unscanned(run: Run, rel: str, source: Path, exc: Exception) -> None:
    """A file the scan or the sanitizer could not get through: what could not be checked is not sent."""
    reason = f"cannot be checked: {one_line(exc)}"
    try:
        quarantine(run, rel, source, sha256_file(source), reason, (), "unknown", ())
    except (DcmsealError, OSError) as failure:
        run.settle(rel, State.FAILED, f"{reason}; and cannot be quarantined: {one_line(failure)}")


def decode_mislabelled(ds: Dataset) -> int:
    """Decode, with the data dictionary's VRs, the elements pydicom read as implicit VR from a file whose
    Transfer Syntax says explicit VR.

    pydicom reads such a data set (pydicom's own ``SC_rgb_jpeg.dcm``: JPEG Baseline, implicit VR inside) by
    guessing, but keeps its elements raw, without a VR, and then cannot write them in the explicit VR the File
    Meta names ("encoding without a string argument"). Decoded, they are written as the Transfer Syntax says,
    so what is sent is conformant. Elements read with their VR stay raw and are written back byte for byte.
    Returns how many elements were decoded.
    """
    count = 0
    for element in list(ds.elements()):
        if isinstance(element, RawDataElement):
            if element.VR is not None:
                continue  # explicit VR as read: nested items too
            decoded = ds[element.tag]
            count += 1
        else:
            decoded = element
        if decoded.VR == "SQ":
            for item in decoded.value:
                count += decode_mislabelled(item)
    return count
