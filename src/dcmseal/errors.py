"""Every exception dcmseal raises on purpose, each with the exit code the command line gives it.

::

    DcmsealError                    base; exit 1 unless a subclass says otherwise
    ├── UsageError                  impossible flag combination, password on argv            -> exit 2
    ├── InputError                  something about a named input is wrong                    -> exit 1
    │   ├── MissingInputError       the named input does not exist (every command: exit 1)
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
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import ClassVar

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
    "PeerError",
    "ResourceLimitError",
    "UnprotectedContentError",
    "UnsupportedAlgorithmError",
    "UsageError",
    "WeakPasswordError",
    "one_line",
]

WRONG_KEY_MESSAGE = (
    "wrong password or key, or the file was altered or damaged: it cannot be opened and verified"
)


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

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def with_path(self, path: Path | str) -> DcmsealError:
        """Return the same error naming ``path`` (for errors raised below the layer that knows the file)."""
        if self.path is None:
            self.path = Path(path)
        return self


class UsageError(DcmsealError):
    """The command was called in a way that cannot work (exit 2)."""

    exit_code = ExitCode.USAGE


class InputError(DcmsealError):
    """Something about a named input is wrong (exit 1)."""


class MissingInputError(InputError):
    """The named input does not exist: one message and one exit code in every command."""

    def __init__(self, path: Path | str) -> None:
        super().__init__("no such file or folder", path=path)


class NotPart10Error(InputError):
    """The file is not a DICOM PS3.10 file."""


class MalformedEnvelopeError(InputError):
    """The CMS structure does not parse; raised before any secret is used."""


class UnsupportedAlgorithmError(InputError):
    """The input uses an algorithm or structure dcmseal does not implement."""


class ResourceLimitError(InputError):
    """A parameter read from the input exceeds a configured limit."""


class HostileMediumError(InputError):
    """A medium refused as a whole: its structure is malformed or hostile (a name that escapes its root, a
    file past the end of the image). Audited as a Security Alert, not only as a failed read."""


class DecryptionError(InputError):
    """Wrong password, not a recipient, failed unwrap, bad padding, or content that fails its digest,
    signature or structure once decrypted: one type, one message."""

    def __init__(self, message: str = WRONG_KEY_MESSAGE, *, path: Path | str | None = None) -> None:
        super().__init__(message, path=path)


class UnprotectedContentError(InputError):
    """The decrypted content has no DigestedData or SignedData (PS3.15 D.1.1), so nothing can verify it,
    and the caller did not accept unprotected content."""


class WeakPasswordError(InputError):
    """The password policy refuses this secret."""


class PeerError(DcmsealError):
    """An external program, PACS or service is unreachable or refused (exit 3)."""

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
