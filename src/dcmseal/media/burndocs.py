"""The documents among a burn's sources (PDF, CDA, STL, OBJ, MTL), encapsulated into the study they join."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from dcmseal.encapsulated import DEFAULT_MAX_DOCUMENT_BYTES, build_instances, detect_kind, write_instances
from dcmseal.errors import DcmsealError
from dcmseal.fsutil import make_dirs
from dcmseal.media.profiles import EXPLICIT_VR_LITTLE_ENDIAN
from dcmseal.media.sources import Rejected, SourceCollection, SourceInstance

__all__ = ["encapsulate_documents", "is_document"]

logger = logging.getLogger(__name__)


def encapsulate_documents(
    collection: SourceCollection, workdir: Path, document_study: str | None
) -> tuple[tuple[SourceInstance, ...], tuple[Rejected, ...]]:
    """Turn the PDF, CDA, STL, OBJ and MTL files among the rejected sources into instances of their study.

    A document joins the study named by ``document_study``, or the only study of the DICOM sources; with
    several studies and no choice it stays rejected, with a message asking for the study.
    """
    candidates: list[tuple[Rejected, Path]] = []
    rejected: list[Rejected] = []
    for item in collection.rejected:
        if item.path is not None and is_document(item.path):
            candidates.append((item, item.path))
        else:
            rejected.append(item)
    if not candidates:
        return (), collection.rejected
    from pydicom import dcmread

    studies: dict[str, Path] = {}
    for instance in collection.instances:
        ds = dcmread(instance.path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        studies.setdefault(str(ds.get("StudyInstanceUID", "") or ""), instance.path)
    studies.pop("", None)
    if document_study is not None:
        target = studies.get(document_study)
        problem = None if target else f"no DICOM source of study {document_study} to join"
    elif len(studies) == 1:
        target, problem = next(iter(studies.values())), None
    else:
        target = None
        problem = (
            f"a document joins a study: give --document-study (the sources hold {len(studies)} studies)"
            if studies
            else "a document joins a study: burn it with DICOM instances of that study"
        )
    made: list[SourceInstance] = []
    make_dirs(workdir)
    for index, (item, path) in enumerate(candidates):
        if target is None:
            rejected.append(replace(item, reason=problem or "no study"))
            continue
        try:
            built = build_instances(path, study=target, title=path.stem)
            written = write_instances(built, workdir / f"DOC{index:05d}.dcm")
        except DcmsealError as exc:
            rejected.append(replace(item, reason=exc.message))
            continue
        for encapsulated, written_path in zip(built.instances, written, strict=True):
            logger.info(
                "%s: encapsulated %s as %s",
                written_path,
                encapsulated.kind.value,
                encapsulated.sop_instance_uid,
            )
            made.append(
                SourceInstance(
                    path=written_path,
                    origin=str(path),
                    sop_class_uid=encapsulated.sop_class_uid,
                    sop_instance_uid=encapsulated.sop_instance_uid,
                    transfer_syntax_uid=EXPLICIT_VR_LITTLE_ENDIAN,
                    name=item.shown,
                )
            )
    return tuple(made), tuple(rejected)


def is_document(path: Path) -> bool:
    try:
        if path.stat().st_size > DEFAULT_MAX_DOCUMENT_BYTES:
            return False
        detect_kind(path.read_bytes(), path=path)
    except (OSError, DcmsealError):
        return False
    return True
