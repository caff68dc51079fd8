"""A medium read in: every file listed, recognised by content and, when sealed, unsealed, each with a typed outcome."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from dcmseal.config import DEFAULT_KDF_BUDGET_PER_MEDIUM, DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import DecryptionError, InputError, UsageError, one_line
from dcmseal.events import Emitter
from dcmseal.fsutil import Extent
from dcmseal.intake.content import to_plain
from dcmseal.intake.listing import Listing, Source
from dcmseal.keys.passwords import password_octets, password_tuple
from dcmseal.outcomes import Integrity, ReasonKind
from dcmseal.part10 import BatchReport, FileStatus, UnsealPlan, UnsealResult, unseal_files

__all__ = ["IntakeStatus", "Integrity", "Keys", "MediumFile", "MediumReading", "fileset_id", "read_medium"]

logger = logging.getLogger(__name__)


class IntakeStatus(enum.StrEnum):
    """Where a file of the medium is once read in."""

    COPIED = "copied"  # plain DICOM: its PS3.10 bytes are in the work folder
    OPENED = "opened"  # a Secure DICOM File, unsealed and verified (or accepted unprotected)
    SKIPPED = "skipped"  # not DICOM, or a link: left out, never run nor followed
    FAILED = "failed"  # cannot be read, or does not open


@dataclass(frozen=True, slots=True, kw_only=True)
class Keys:
    """The keys to try on a medium's Secure DICOM Files, and the bounds of trying."""

    #: A ``str`` is NFC-normalised and UTF-8 encoded (RFC 8018 §3), as open's and import's requests give it.
    passwords: tuple[str | bytes, ...] = field(default=(), repr=False)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)  # PKCS#8 DER
    certificates: tuple[bytes | None, ...] = ()
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    #: Also open envelopes without a digest or signature inside; each is reported as not verified.
    accept_unprotected: bool = False
    #: PBKDF2 iterations the whole medium may cost (a hostile medium is cut off there, each file named).
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM
    #: Asked for a password only when the medium turns out to hold encrypted files and no key was given.
    ask_password: Callable[[], str] | None = field(default=None, repr=False)
    workers: int = 0

    def __post_init__(self) -> None:
        # The one conversion of the passwords: str or bytes, the same octets from here on.
        object.__setattr__(self, "passwords", self.password_bytes)

    @property
    def password_bytes(self) -> tuple[bytes, ...]:
        """The octets of ``passwords``, as PBKDF2 derives from them."""
        return password_tuple(self.passwords)

    @classmethod
    def of(cls, request: object) -> Keys:
        """The keys a workflow's request gives (open, import, the reconciliation plan): its fields of the same names.

        One place says which of a request's fields are keys and bounds; a field the request does not have keeps
        the default here (the reconciliation plan has no ``accept_unprotected``, so it reads what is protected).
        """
        return cls(**{f.name: getattr(request, f.name) for f in fields(cls) if hasattr(request, f.name)})


@dataclass(slots=True, kw_only=True)
class MediumFile:
    """One file of the medium, by its path on it, and what reading it in gave."""

    label: str  # its path on the medium (``portal.zip!DICOM/IM1`` inside a zip on it)
    status: IntakeStatus
    reason: str | None = None  # one line, for a person (a skipped or failed file)
    kind: ReasonKind | None = None  # the reason's kind, for a program
    plain: Path | None = None  # its PS3.10 bytes in the work folder (copied or opened files)
    changes: list[str] = field(default_factory=list)  # what made it a PS3.10 file, or why it is left out
    #: A Secure DICOM File on the medium (its plaintext exists only in the work folder).
    encrypted: bool = False
    integrity: Integrity | None = None  # for opened files


@dataclass(frozen=True, slots=True, kw_only=True)
class MediumReading:
    """Every file of a medium once read in, and what unsealing cost."""

    files: tuple[MediumFile, ...]
    #: The plain DICOM files (copied, then opened), in the order they became ready.
    ready: tuple[MediumFile, ...]
    pbkdf2_derivations: int

    @property
    def encrypted(self) -> bool:
        """Whether the medium holds Secure DICOM Files."""
        return any(f.encrypted for f in self.files)


def read_medium(medium: Path, work: Path, keys: Keys, *, emitter: Emitter | None = None) -> MediumReading:
    """List every file of ``medium``, put each DICOM file's plain PS3.10 bytes in ``work``, unseal the sealed ones.

    Each file is isolated: one that cannot be read, or does not open, fails alone with its one-line reason.
    ``work`` is a private folder the caller made (plaintext goes there) and removes. Progress is emitted as
    :class:`dcmseal.events.Progress` for the stages ``read`` and ``open``; nothing is audited here (each
    workflow audits what it did with the files).

    Raises
    ------
    InputError
        ``medium`` is not one, its structure is malformed or hostile (nothing of it is read), or it holds no
        DICOM file.
    UsageError
        It holds Secure DICOM Files and no key was given (nor asked for).
    DecryptionError
        No Secure DICOM File of it opens with the keys given, all for a wrong key (one message, as for a file).
    """
    emit = emitter or Emitter()
    listing = Listing(medium, work)
    listing.read()
    files = {
        label: MediumFile(label=label, status=IntakeStatus(status), reason=reason)
        for label, (status, reason) in listing.settled.items()
    }
    plain_dir = work / "plain"
    plain_dir.mkdir()
    secure: list[tuple[Path, Path]] = []
    extents: dict[Path, Extent] = {}
    by_path: dict[Path, MediumFile] = {}  # a secure file's source path (unique: a file, a copy, an ISO name)
    ready: list[MediumFile] = []
    for number, source in enumerate(listing.sources, 1):
        emit.progress("read", number, len(listing.sources))
        entry = files[source.label] = _classify(source, plain_dir / f"F{number:07d}")
        if entry.encrypted and entry.plain is not None:  # opened below, with the others
            secure.append((source.path, entry.plain))
            by_path[source.path] = entry
            if source.extent is not None:
                extents[source.path] = source.extent
        elif entry.status is IntakeStatus.COPIED:
            ready.append(entry)
    if not secure and not ready:
        # An empty folder, or one of other files only, is not a medium: nothing would be "verified".
        count = len(listing.sources) + len(listing.settled)
        raise InputError(
            f"no DICOM file on this medium ({count} other file(s))"
            if count
            else "holds no file: not a medium",
            path=medium,
        )
    report = _unseal(medium, keys, secure, extents, emit)
    for outcome in report.outcomes:
        entry = by_path[outcome.source]
        if outcome.status is FileStatus.FAILED:
            entry.status, entry.reason, entry.kind = IntakeStatus.FAILED, outcome.reason, outcome.kind
        else:
            entry.status = IntakeStatus.OPENED
            verified = not isinstance(outcome.result, UnsealResult) or outcome.result.verified
            entry.integrity = Integrity.of(verified)
            ready.append(entry)
    if (
        secure
        and len(report.failed) == len(secure)
        and all(f.kind is ReasonKind.WRONG_KEY for f in report.failed)
    ):
        raise DecryptionError(path=medium)
    return MediumReading(
        files=tuple(files.values()), ready=tuple(ready), pbkdf2_derivations=report.pbkdf2_derivations
    )


def fileset_id(reading: MediumReading) -> str:
    """The File-set ID (0004,1130) of the medium's own DICOMDIR (at its root); "" when it has none that reads.

    What names a folder medium in an audit message (:func:`dcmseal.audit.audit_medium`).
    """
    root = next((f for f in reading.ready if f.label.upper() == "DICOMDIR" and f.plain is not None), None)
    if root is None or root.plain is None:
        return ""
    try:
        ds = dcmread(root.plain, stop_before_pixels=True, specific_tags=["FileSetID"])
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError):
        return ""
    return str(ds.get("FileSetID", "") or "")


def _classify(source: Source, plain: Path) -> MediumFile:
    """``source`` recognised by content, its plain bytes at ``plain`` (a sealed file waits there to be opened)."""
    entry = MediumFile(label=source.label, status=IntakeStatus.COPIED)
    try:
        kind = to_plain(source, plain, entry.changes)
    except Exception as exc:  # whatever one file of a medium does, it fails alone
        logger.debug("%s: cannot be read", source.label, exc_info=True)
        plain.unlink(missing_ok=True)
        entry.status, entry.reason = IntakeStatus.FAILED, one_line(exc)
        return entry
    if kind == "other":
        entry.status, entry.reason, entry.kind = IntakeStatus.SKIPPED, entry.changes[0], ReasonKind.NOT_DICOM
        return entry
    entry.plain = plain
    entry.encrypted = kind == "secure"
    return entry


def _unseal(
    medium: Path, keys: Keys, secure: list[tuple[Path, Path]], extents: dict[Path, Extent], emit: Emitter
) -> BatchReport:
    """Unseal the Secure DICOM Files found (asking for a password only if there are some and none was given)."""
    if not secure:
        return BatchReport(operation="unseal", outcomes=(), pbkdf2_derivations=0, workers=0, elapsed_s=0.0)
    passwords = keys.password_bytes
    if not passwords and not keys.private_keys and keys.ask_password is not None:
        passwords = (password_octets(keys.ask_password()),)
    if not passwords and not keys.private_keys:
        raise UsageError(
            f"{len(secure)} file(s) on this medium are encrypted: give --password-file, --password-env or --key",
            path=medium,
        )
    plan = UnsealPlan(
        passwords=passwords,
        private_keys=keys.private_keys,
        certificates=keys.certificates,
        max_iterations=keys.max_iterations,
        accept_unprotected=keys.accept_unprotected,
        kdf_budget_per_medium=keys.kdf_budget_per_medium,
    )
    opened = 0

    def on_outcome(_outcome: object) -> None:
        nonlocal opened
        opened += 1
        emit.progress("open", opened, len(secure))

    # Each failure is in the result (and the one-line error when the key opens nothing): no log line each.
    return unseal_files(
        secure, plan, workers=keys.workers, on_outcome=on_outcome, extents=extents, log_failures=False
    )
