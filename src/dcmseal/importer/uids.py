"""The UID policy of an import: keep the UIDs, or give every study, series and instance a new one, consistently.

``regenerate`` maps each Study, Series and SOP Instance UID found on the medium to a new UID (``2.25.<UUID>``,
PS3.5 B.2: no organisation root needed) and rewrites *every* UI value equal to a mapped UID, wherever it is:
the top level, any depth of sequences (Referenced SOP Instance UID, Referenced Series/Study, Source Image,
Structured Report references), and MediaStorageSOPInstanceUID in the file meta. Because UIDs are globally
unique, an equal value is a reference to that object, so one map serves all three levels.

Frame of Reference UID (0020,0052) and Synchronization Frame of Reference UID are *kept*: they name the patient's
physical space at acquisition, which the import does not change; renaming them would cut an imported study off
from registrations and priors that share the frame. References to objects that are not on the medium are kept as
they are (there is nothing to map them to); the journal's map makes a later import of those objects consistent.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dcmseal.uids import new_uid

__all__ = ["UidPolicy", "UidTriple", "plan_uids", "regenerate_uids"]

#: The three levels of the DICOM information model whose UIDs an import regenerates.
_LEVELS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class UidPolicy(enum.StrEnum):
    """What an import does to the Study, Series and SOP Instance UIDs."""

    KEEP = "keep"
    REGENERATE = "regenerate"


@dataclass(frozen=True, slots=True)
class UidTriple:
    """The Study, Series and SOP Instance UIDs of one instance."""

    study: str
    series: str
    sop_instance: str


def _new_uid() -> str:
    return new_uid()  # 2.25.<128-bit UUID as an integer>


def plan_uids(
    instances: Iterable[UidTriple],
    existing: Mapping[str, str],
    *,
    new_uid: Callable[[], str] = _new_uid,
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """The map for ``instances``: ``existing`` entries reused (a rerun), new UIDs for the rest.

    Returns
    -------
    (mapping, added)
        ``mapping`` covers every UID of ``instances``; ``added`` lists the ``(original, new, kind)`` triples
        that were not in ``existing`` and must be recorded before anything is sent with them.
    """
    mapping: dict[str, str] = {}
    added: list[tuple[str, str, str]] = []
    for triple in instances:
        for kind, uid in zip(
            ("study", "series", "instance"), (triple.study, triple.series, triple.sop_instance), strict=True
        ):
            if not uid or uid in mapping:
                continue
            if uid in existing:
                mapping[uid] = existing[uid]
            else:
                mapping[uid] = new_uid()
                added.append((uid, mapping[uid], kind))
    return mapping, added


def regenerate_uids(ds: Dataset, mapping: Mapping[str, str]) -> tuple[list[DataElement], int]:
    """Replace, in place, every UI value of ``ds`` (any depth, and the file meta) that ``mapping`` names.

    Returns
    -------
    (originals, replaced)
        Deep copies of the top-level Study, Series and SOP Instance UID elements as they were (for the
        Original Attributes Sequence), and how many values were replaced in all.
    """
    originals = [copy.deepcopy(ds[kw]) for kw in _LEVELS if kw in ds and str(ds[kw].value) in mapping]
    replaced = _replace(ds, mapping)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        replaced += _replace(meta, mapping)
    return originals, replaced


def _replace(ds: Dataset, mapping: Mapping[str, str]) -> int:
    count = 0
    for element in ds.iterall():
        if element.VR != "UI" or element.value is None or element.value == "":
            continue
        if element.VM > 1:
            values = [str(v) for v in element.value]
            if any(v in mapping for v in values):
                count += sum(1 for v in values if v in mapping)
                element.value = [mapping.get(v, v) for v in values]
        elif str(element.value) in mapping:
            element.value = mapping[str(element.value)]
            count += 1
    return count
