"""Where an import sends to (a DIMSE or a DICOMweb target), what the peer confirmed, and how failures are retried.

The adapters (:mod:`dcmseal.importer.dimse` for C-STORE with pynetdicom, :mod:`dcmseal.importer.dicomweb` for
STOW-RS with dicomweb-client) take our :class:`Outgoing` files and give back our :class:`Delivery` results; neither
library's objects leave them. A peer that cannot be reached, or aborts, raises :class:`PeerUnavailableError`,
which :func:`deliver` retries with exponential backoff, bounded in attempts and in total time.

A sender also answers which instances of a study the peer holds (:meth:`Sender.held`, QIDO-RS or C-FIND), so
that :mod:`dcmseal.importer.verify` can check what the peer confirmed; a peer that offers no such query raises
:class:`NotQueryableError`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from dcmseal.errors import PeerError, UsageError

__all__ = [
    "DEFAULT_AE_TITLE",
    "Delivery",
    "DicomWebTarget",
    "DimseTarget",
    "NotQueryableError",
    "Outgoing",
    "PeerUnavailableError",
    "RetryPolicy",
    "Sender",
    "Target",
    "deliver",
    "parse_target",
]

#: Our calling AE title when neither --aet nor the ae_title setting says otherwise.
DEFAULT_AE_TITLE = "DCMSEAL"
#: AE titles: 1 to 16 characters of the default repertoire, no backslash or control characters (PS3.5 6.2).
_AE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


@dataclass(frozen=True, slots=True)
class DimseTarget:
    """``dicom://AET@host[:port]``: a C-STORE SCP."""

    called_aet: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"dicom://{self.called_aet}@{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class DicomWebTarget:
    """``http(s)://host[:port]/path``: a DICOMweb service root (STOW-RS posts to ``<root>/studies``)."""

    url: str

    def __str__(self) -> str:
        return self.url


Target = DimseTarget | DicomWebTarget


#: The port of DICOM's well-known service (PS3.8 Annex C; DCMTK's default): ``dicom://AET@host`` means it.
DEFAULT_DIMSE_PORT = 104


def parse_target(text: str) -> Target:
    """Parse ``--to``: ``dicom://AET@host[:port]`` (port 104 by default) or ``http(s)://host/dicom-web``.

    Raises
    ------
    UsageError
        Anything else, a missing AE title, or credentials in the URL (they would show in ``ps``).
    """
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme == "dicom":
        try:
            port = parts.port or DEFAULT_DIMSE_PORT
        except ValueError:
            raise UsageError(f"--to {text!r}: the port is a number from 1 to 65535") from None
        if not parts.username or not parts.hostname or parts.password is not None:
            raise UsageError(f"--to {text!r}: a DIMSE target is dicom://AET@host[:port]")
        if not _AE.match(parts.username) or parts.username.strip() == "":
            raise UsageError(f"--to {text!r}: {parts.username!r} is not an AE title (1 to 16 characters)")
        if parts.path not in ("", "/"):
            raise UsageError(f"--to {text!r}: a DIMSE target has no path")
        return DimseTarget(called_aet=parts.username, host=parts.hostname, port=port)
    if scheme in ("http", "https"):
        if parts.username is not None or parts.password is not None:
            raise UsageError(
                f"--to: no credentials in the URL (visible in ps and shell history); use --user and "
                f"--user-password-file or --user-password-env ({parts.hostname})"
            )
        if not parts.hostname:
            raise UsageError(f"--to {text!r}: no host")
        return DicomWebTarget(url=text.strip().rstrip("/"))
    raise UsageError(
        f"--to {text!r}: give dicom://AET@host[:port] (C-STORE) or http(s)://host/dicom-web (STOW-RS)"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """One prepared Part 10 file (preamble zero, already rescanned) to send."""

    key: str  # the file's path on the medium: the journal row
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What the peer said of one instance."""

    key: str
    stored: bool
    confirmation: dict[str, object] = field(default_factory=dict)
    reason: str | None = None
    retryable: bool = False
    #: Not stored as far as we know, but the peer may hold it (it broke off before answering).
    in_doubt: bool = False


class PeerUnavailableError(PeerError):
    """The peer could not be reached, or broke off, before it answered for an instance (worth a retry).

    The message says what happened, without the target: :func:`deliver` names the target once.
    """


class NotQueryableError(PeerError):
    """The peer cannot be asked which instances it holds (no QIDO-RS, no C-FIND SCP, the query refused).

    Not worth a retry: the import keeps the peer's confirmations and says they were not verified.
    """


class Sender(Protocol):
    """A PACS target: stores a batch and answers for each instance; says which instances of a study it holds."""

    #: How many instances :meth:`store` takes at once (1 for C-STORE, more for STOW-RS).
    batch_size: int
    #: The query :meth:`held` makes, as a reason names it ("QIDO-RS", "C-FIND").
    query: str

    def store(self, items: Sequence[Outgoing]) -> list[Delivery]:
        """Send ``items``; one :class:`Delivery` per item. Raises :class:`PeerUnavailableError`."""

    def held(self, study_instance_uid: str, wanted: Collection[str]) -> set[str]:
        """The SOP Instance UIDs the peer holds in the study: at least every one of ``wanted`` it holds.

        Raises :class:`PeerUnavailableError` (worth a retry) or :class:`NotQueryableError` (not).
        """

    def close(self) -> None:
        """Release the association or session."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff: ``initial_delay_s`` doubled up to ``max_delay_s``, at most ``attempts`` tries and
    ``max_total_s`` seconds for one batch."""

    attempts: int = 5
    initial_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_total_s: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError("retries: at least one attempt")
        if self.initial_delay_s < 0 or self.max_total_s < 0:
            raise UsageError("retry delays cannot be negative")

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay_s, self.initial_delay_s * (2 ** (attempt - 1))))

    def next_pause(self, attempt: int, elapsed_s: float) -> float | None:
        """The pause before another try after failed attempt ``attempt``, or None when the attempts or the
        time (``elapsed_s`` spent so far, plus the pause) are used up."""
        pause = self.delay(attempt)
        if attempt >= self.attempts or elapsed_s + pause > self.max_total_s:
            return None
        return pause


def deliver(
    sender: Sender,
    items: Sequence[Outgoing],
    policy: RetryPolicy,
    *,
    target: Target,
    before_attempt: Callable[[Sequence[Outgoing]], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Delivery]:
    """Send ``items`` until each is confirmed or finally refused, retrying what is worth retrying.

    ``before_attempt`` is called with the items about to be sent on each attempt (the journal counts the
    attempt and records what is about to leave, before it leaves). When the peer answered but left some
    items open, the retries send them one at a time, so one instance the peer cannot take does not hold
    back the rest of its batch; each item that is finally refused keeps its own last reason.

    Raises
    ------
    PeerError
        The peer stayed unreachable through the policy's attempts or time: the message names the target,
        the last error, the attempts and the seconds spent. Items confirmed before are in no doubt; the
        caller marks the rest failed.
    """
    started = clock()
    remaining = list(items)
    done: dict[str, Delivery] = {}
    reasons: dict[str, str] = {}  # the last retryable refusal of each item
    doubtful: dict[str, bool] = {}  # whether that refusal leaves the item in doubt (the peer broke off)
    attempt = 0
    last: str = ""
    singly = False
    while remaining:
        attempt += 1
        before_attempt(remaining)
        answers: list[Delivery] = []
        unreachable = False
        for group in [[item] for item in remaining] if singly else [remaining]:
            try:
                answers.extend(sender.store(group))
            except PeerUnavailableError as exc:
                last, unreachable = exc.message, True
                break
        for answer in answers:
            if answer.stored or not answer.retryable:
                done[answer.key] = answer
            else:
                reasons[answer.key] = answer.reason or "refused"
                doubtful[answer.key] = answer.in_doubt
        if not unreachable:
            last = next((reasons[a.key] for a in answers if a.key in reasons and a.key not in done), "")
        remaining = [item for item in remaining if item.key not in done]
        if not remaining:
            break
        elapsed = clock() - started
        pause = policy.next_pause(attempt, elapsed)
        if pause is None:
            if not unreachable:
                # The peer answered but kept refusing with a retryable status: a final refusal per instance.
                for item in remaining:
                    reason = reasons.get(item.key, last or "refused")
                    done[item.key] = Delivery(
                        key=item.key,
                        stored=False,
                        reason=f"{reason} (after {attempt} attempt(s))",
                        in_doubt=doubtful.get(item.key, False),
                    )
                break
            raise PeerError(
                f"{target}: {last or 'no answer'}; gave up after {attempt} attempt(s) in {elapsed:.1f} s"
            )
        # The peer answered, yet some instances are still open: send them one by one from now on, so that
        # one the peer chokes on (Orthanc's DICOMweb 1.7 drops the rest of a request after a failed instance)
        # cannot hold back the others.
        singly = not unreachable and len(remaining) > 1
        sleep(pause)
    return [done[item.key] for item in items]
