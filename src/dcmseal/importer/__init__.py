"""The receiving pipeline: open a medium, scan, sanitize or quarantine, reconcile, send to a PACS, journal.

The workflow itself is :func:`dcmseal.importer.pipeline.import_medium`; this package root exposes the parts it is
built from (journal, reconciliation map, UID policy, targets and retries), which load no network library.
"""

from __future__ import annotations

from dcmseal.importer.journal import Journal, JournalRow, State
from dcmseal.importer.reconcile import (
    AccessionMapping,
    PatientMapping,
    ReconciliationMap,
    add_original_attributes,
    coerce_dataset,
    load_reconciliation,
)
from dcmseal.importer.send import (
    DEFAULT_AE_TITLE,
    Delivery,
    DicomWebTarget,
    DimseTarget,
    Outgoing,
    PeerUnavailableError,
    RetryPolicy,
    Target,
    deliver,
    parse_target,
)
from dcmseal.importer.uids import UidPolicy, UidTriple, plan_uids, regenerate_uids

__all__ = [
    "DEFAULT_AE_TITLE",
    "AccessionMapping",
    "Delivery",
    "DicomWebTarget",
    "DimseTarget",
    "Journal",
    "JournalRow",
    "Outgoing",
    "PatientMapping",
    "PeerUnavailableError",
    "ReconciliationMap",
    "RetryPolicy",
    "State",
    "Target",
    "UidPolicy",
    "UidTriple",
    "add_original_attributes",
    "coerce_dataset",
    "deliver",
    "load_reconciliation",
    "parse_target",
    "plan_uids",
    "regenerate_uids",
]
