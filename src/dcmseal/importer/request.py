"""What an import is asked to do: the medium, the PACS and how to reach it, the keys, the policies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dcmseal.config import DEFAULT_KDF_BUDGET_PER_MEDIUM, DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.events import HandlerSpec
from dcmseal.importer.reconcile import ReconciliationMap
from dcmseal.importer.send import DEFAULT_AE_TITLE, DicomWebTarget, DimseTarget, RetryPolicy, Sender, Target
from dcmseal.importer.uids import UidPolicy
from dcmseal.importer.worklist import MatchRules, WorklistService

__all__ = ["ImportRequest", "SenderFactory", "default_sender"]


#: Makes the sender for a target and the (SOP Class, Transfer Syntax) pairs to propose (tests pass their own).
SenderFactory = Callable[[Target, Sequence[tuple[str, str]]], Sender]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRequest:
    """A medium, the PACS it goes to, and how: keys, reconciliation, UID policy, journal, quarantine, retries."""

    medium: Path
    target: Target
    operator: str
    journal: Path
    quarantine: Path
    passwords: tuple[str | bytes, ...] = field(default=(), repr=False)  # a str: NFC, UTF-8 (intake.Keys)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)  # PKCS#8 DER
    certificates: tuple[bytes | None, ...] = ()
    reconciliation: ReconciliationMap | None = None
    #: The Modality Worklist asked for the studies the mapping file does not settle, with these rules.
    worklist: WorklistService | None = None
    match_rules: MatchRules | None = None
    uid_policy: UidPolicy = UidPolicy.KEEP
    calling_aet: str = DEFAULT_AE_TITLE
    username: str | None = None
    http_password: str | None = field(default=None, repr=False)
    http_token: str | None = field(default=None, repr=False)  # a bearer token (RFC 6750) instead of a user
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: A folder that receives a copy of every prepared (sent) file, named by its SOP Instance UID.
    keep_sent: Path | None = None
    #: Source of Previous Values (0400,0564); default: each instance's Institution Name, else empty.
    source_of_previous_values: str | None = None
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    workers: int = 0
    #: Where the private work folder (plaintext of the medium) is made; default: the system's temp folder.
    workdir: Path | None = None
    ask_password: Callable[[], str] | None = field(default=None, repr=False)
    #: After the send, ask the PACS (QIDO-RS / C-FIND) whether it holds what it confirmed in this run.
    verify: bool = True
    #: Send again what an earlier run sent without an answer when the PACS cannot be asked whether it holds
    #: it (a peer with no query service): it may then be stored twice.
    resend_in_doubt: bool = False
    #: Also open envelopes with no digest or signature inside; each such file says integrity "not-verified".
    accept_unprotected: bool = False
    #: PBKDF2 iterations reading the medium in may cost (see :class:`dcmseal.intake.Keys`).
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM
    #: Bound to the events the import emits: :class:`dcmseal.events.Progress` of its stages (``read``,
    #: ``open``, ``scan``, ``prepare``, ``send``, ``verify``) as they go; as each happens,
    #: :class:`~dcmseal.events.InstanceStored` (the PACS confirmed it), :class:`~dcmseal.events.FileQuarantined`
    #: and :class:`~dcmseal.events.FileFailed` for each such file, :class:`~dcmseal.events.StudyHeld` per study.
    handlers: Sequence[HandlerSpec] = ()


def default_sender(request: ImportRequest) -> SenderFactory:
    """C-STORE for a ``dicom://`` target, STOW-RS for a DICOMweb one, each signed in as ``request`` says."""

    def make(target: Target, pairs: Sequence[tuple[str, str]]) -> Sender:
        if isinstance(target, DimseTarget):
            from dcmseal.importer.dimse import DimseSender

            return DimseSender(target, calling_aet=request.calling_aet, pairs=pairs)
        from dcmseal.importer.dicomweb import StowSender

        assert isinstance(target, DicomWebTarget)
        return StowSender(
            target, username=request.username, password=request.http_password, token=request.http_token
        )

    return make
