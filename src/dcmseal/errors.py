"""Every exception dcmseal raises on purpose, each with the exit code the command line gives it.

::

    DcmsealError                    base; exit 1 unless a subclass says otherwise
    ├── UsageError                  impossible flag combination, password on argv            -> exit 2
    ├── InputError                  something about a named input is wrong                    -> exit 1
    │   ├── MissingInputError       the named input does not exist (every command: exit 1)
    │   ├── OutputExistsError       an output of that name exists and --force was not given
    │   ├── NotPart10Error          not a PS3.10 file (no DICM at offset 128)
    │   ├── MalformedEnvelopeError  CMS structure that does not parse, lengths beyond the file
    │   ├── UnsupportedAlgorithmError  an algorithm or structure we do not implement
    │   ├── ResourceLimitError      a hostile or absurd parameter (PBKDF2 iterations, sizes)
    │   ├── DecryptionError         wrong key, or content altered: bad unwrap, padding, digest, signature
    │   ├── UnprotectedContentError content without digest or signature, not accepted by the caller
    │   └── WeakPasswordError       a password the policy refuses
    └── PeerError                   an external program or service unreachable or refusing    -> exit 3

Crypto failures say nothing about which check failed: every way a key can be wrong, and every way
the decrypted content can fail (CBC padding, the inner structure, its digest or signature), raises
:class:`DecryptionError` with the one message :data:`WRONG_KEY_MESSAGE`. Telling them apart would
tell an attacker who alters ciphertext whether the padding was valid: a padding oracle.

Each class names the :class:`~dcmseal.outcomes.ReasonKind` a failed file reports. An error raised in a
worker process reaches the parent as the same class with the same message and path: :func:`to_wire` makes
it plain data, :func:`from_wire` rebuilds it from a registry of the classes (never by importing a name the
data gives), and pickling an error goes through both. An exception that is not a :class:`DcmsealError` is a
bug and crosses as itself, traceback and all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from dcmseal.outcomes import ReasonKind

__all__ = [
    "WRONG_KEY_MESSAGE",
    "DcmsealError",
    "DecryptionError",
    "ExitCode",
    "HostileMediumError",
    "InputError",
    "MalformedEnvelopeError",
    "MissingInputError",
    "NotPart10Error",
    "OutputExistsError",
    "PeerError",
    "ResourceLimitError",
    "UnprotectedContentError",
    "UnsupportedAlgorithmError",
    "UsageError",
    "WeakPasswordError",
    "WireError",
    "from_wire",
    "one_line",
    "to_wire",
]

WRONG_KEY_MESSAGE = (
    "wrong password or key, or the file was altered or damaged: it cannot be opened and verified"
)


#: Every :class:`DcmsealError` class by its wire name (module and qualified name), filled as each is defined.
_REGISTRY: dict[str, type[DcmsealError]] = {}


def _wire_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``dcmseal`` command."""

    OK = 0
    INPUT = 1
    USAGE = 2
    PEER = 3
    FINDINGS = 4
    INTERRUPTED = 130


class DcmsealError(Exception):
    """Base of every error dcmseal raises on purpose."""

    exit_code: ClassVar[ExitCode] = ExitCode.INPUT
    #: What a result reports as the kind of a file's reason when this error is why it failed.
    kind: ClassVar[ReasonKind] = ReasonKind.INPUT

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[_wire_name(cls)] = cls

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None

    def __reduce__(self) -> tuple[object, tuple[WireError], dict[str, object]]:
        # The default pickle calls the class with ``args``, which a subclass's own __init__ may not take
        # (MissingInputError(path)); the wire form rebuilds every class alike, and the state carries what a
        # subclass adds (an HTTP status, say).
        return from_wire, (to_wire(self),), dict(self.__dict__)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def with_path(self, path: Path | str) -> DcmsealError:
        """Return the same error naming ``path`` (for errors raised below the layer that knows the file)."""
        if self.path is None:
            self.path = Path(path)
        return self


_REGISTRY[_wire_name(DcmsealError)] = DcmsealError


@dataclass(frozen=True, slots=True)
class WireError:
    """A :class:`DcmsealError` as plain data for another process: its class and its bases (most specific
    first, so a class the receiver does not know arrives as its nearest known base), message and path."""

    classes: tuple[str, ...]
    message: str
    path: str | None = None


def to_wire(exc: DcmsealError) -> WireError:
    """``exc`` as plain data that :func:`from_wire` turns back into the same class, message and path."""
    classes = tuple(_wire_name(c) for c in type(exc).__mro__ if issubclass(c, DcmsealError))
    return WireError(classes, exc.message, str(exc.path) if exc.path is not None else None)


def from_wire(wire: WireError) -> DcmsealError:
    """The error :func:`to_wire` made ``wire`` from: the same class (or its nearest registered base, from the
    registry only, so the data never names what to import), with the same message and path."""
    cls = next((_REGISTRY[name] for name in wire.classes if name in _REGISTRY), DcmsealError)
    # Built without the subclass's own __init__, whose signature differs (MissingInputError(path)) and
    # whose message is already in ``wire``.
    exc = cls.__new__(cls, wire.message)
    DcmsealError.__init__(exc, wire.message, path=wire.path)
    return exc


class UsageError(DcmsealError):
    """The command was called in a way that cannot work (exit 2)."""

    kind = ReasonKind.USAGE

    exit_code = ExitCode.USAGE


class InputError(DcmsealError):
    """Something about a named input is wrong (exit 1)."""


class MissingInputError(InputError):
    """The named input does not exist: one message and one exit code in every command."""

    kind = ReasonKind.MISSING

    def __init__(self, path: Path | str) -> None:
        super().__init__("no such file or folder", path=path)


class OutputExistsError(InputError):
    """An output of that name exists and overwriting was not asked for: one message everywhere."""

    kind = ReasonKind.EXISTS

    def __init__(self, path: Path | str) -> None:
        super().__init__("already exists (use --force to overwrite)", path=path)


class NotPart10Error(InputError):
    """The file is not a DICOM PS3.10 file."""

    kind = ReasonKind.NOT_PART10


class MalformedEnvelopeError(InputError):
    """The CMS structure does not parse; raised before any secret is used."""

    kind = ReasonKind.MALFORMED


class UnsupportedAlgorithmError(InputError):
    """The input uses an algorithm or structure dcmseal does not implement."""

    kind = ReasonKind.UNSUPPORTED


class ResourceLimitError(InputError):
    """A parameter read from the input exceeds a configured limit."""

    kind = ReasonKind.RESOURCE_LIMIT


class HostileMediumError(InputError):
    """A medium refused as a whole: its structure is malformed or hostile (a name that escapes its root, a
    file past the end of the image). Audited as a Security Alert, not only as a failed read."""

    kind = ReasonKind.HOSTILE


class DecryptionError(InputError):
    """Wrong password, not a recipient, failed unwrap, bad padding, or content that fails its digest,
    signature or structure once decrypted: one type, one message."""

    kind = ReasonKind.WRONG_KEY

    def __init__(self, message: str = WRONG_KEY_MESSAGE, *, path: Path | str | None = None) -> None:
        super().__init__(message, path=path)


class UnprotectedContentError(InputError):
    """The decrypted content has no DigestedData or SignedData (PS3.15 D.1.1), so nothing can verify it,
    and the caller did not accept unprotected content."""

    kind = ReasonKind.UNPROTECTED


class WeakPasswordError(InputError):
    """The password policy refuses this secret."""

    kind = ReasonKind.WEAK_PASSWORD


class PeerError(DcmsealError):
    """An external program, PACS or service is unreachable or refused (exit 3)."""

    kind = ReasonKind.PEER

    exit_code = ExitCode.PEER


#: Longest reason :func:`one_line` gives: a person reads it in a table cell or a JSON field.
ONE_LINE_MAX = 300


def one_line(exc: BaseException) -> str:
    """``exc`` as one line for a person: its own message (the first line only), never a traceback.

    pydicom puts a whole traceback into the message of the error it raises while writing an element
    ("With tag (0008,0008) got exception: ...\nTraceback ..."); only its first line is kept. An exception
    that is not ours is named by its class, since its message alone ("list index out of range") says little.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if not isinstance(exc, DcmsealError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= ONE_LINE_MAX else text[: ONE_LINE_MAX - 3] + "..."
