"""dcmseal: Secure DICOM Files (PS3.10 §7.4) and the Basic DICOM Media Security Profile (PS3.15 Annex D).

The recipes and workflows most programs need are here, loaded on first use (``import dcmseal`` imports
neither pydicom nor cryptography)::

    import dcmseal

    sealed = dcmseal.seal(dataset, password="Kestrel-amber-Lantern-orbit-velvet")   # bytes
    dataset = dcmseal.unseal(sealed, password="Kestrel-amber-Lantern-orbit-velvet")  # a pydicom Dataset

- Recipes: :func:`seal`, :func:`unseal` (paths, bytes or pydicom Datasets; ``str`` passwords; the password
  policy, a fresh salt, the named defaults and the profile checks inside).
- Workflows, each a function of a request returning a result dataclass, each auditing itself:
  :func:`burn`, :func:`open_medium`, :func:`rekey`, :func:`scan`, :func:`sanitize`, :func:`import_medium`,
  :func:`encapsulate`, :func:`extract`, :func:`recover`.
- Outcomes and events: :class:`FileStatus`, :class:`ReasonKind` (what became of a file, and why, as enums);
  :class:`Event` and its subclasses (:class:`Progress`, :class:`FileSealed`, ...) that workflows emit to the
  ``handlers`` (:data:`HandlerSpec` pairs) their caller binds.
- Errors: :class:`DcmsealError` and its subclasses (:mod:`dcmseal.errors`).

Underneath, :mod:`dcmseal.part10` (``seal_file``, ``unseal_file``, ``seal_tree``: Part 10 with every knob)
and :mod:`dcmseal.cms` (RFC 5652, hazmat: every parameter explicit) stay for experts. ``docs/library.md``
has runnable examples.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: Each public name and the module it is loaded from on first use (PEP 562). ``scan`` is the package
#: :mod:`dcmseal.scan` itself, which calls as the scan workflow (a subpackage of that name would shadow a
#: function once imported).
_EXPORTS: dict[str, str] = {
    # recipes
    "seal": "dcmseal.recipes",
    "unseal": "dcmseal.recipes",
    "SealedFile": "dcmseal.recipes",
    "UnsealedFile": "dcmseal.recipes",
    "inspect_file": "dcmseal.part10",
    "is_secure_file": "dcmseal.part10",
    "Settings": "dcmseal.config",
    # workflows, their requests and results
    "burn": "dcmseal.media.burn",
    "BurnRequest": "dcmseal.media.burn",
    "BurnResult": "dcmseal.media.burn",
    "open_medium": "dcmseal.media.open",
    "OpenRequest": "dcmseal.media.open",
    "OpenResult": "dcmseal.media.open",
    "rekey": "dcmseal.media.rekey",
    "RekeyRequest": "dcmseal.media.rekey",
    "RekeyResult": "dcmseal.media.rekey",
    "ScanRequest": "dcmseal.scan.workflow",
    "ScanResult": "dcmseal.scan.workflow",
    "sanitize": "dcmseal.scan.workflow",
    "SanitizeRequest": "dcmseal.scan.workflow",
    "SanitizeReport": "dcmseal.scan.workflow",
    "import_medium": "dcmseal.importer.pipeline",
    "ImportRequest": "dcmseal.importer.pipeline",
    "ImportResult": "dcmseal.importer.pipeline",
    "encapsulate": "dcmseal.documents",
    "EncapsulateResult": "dcmseal.documents",
    "extract": "dcmseal.documents",
    "ExtractResult": "dcmseal.documents",
    "recover": "dcmseal.keys.escrow",
    "RecoverRequest": "dcmseal.keys.escrow",
    "RecoverResult": "dcmseal.keys.escrow",
    # outcomes
    "FileStatus": "dcmseal.part10",
    "ReasonKind": "dcmseal.outcomes",
    # events
    "Event": "dcmseal.events",
    "Progress": "dcmseal.events",
    "FileSealed": "dcmseal.events",
    "FileOpened": "dcmseal.events",
    "FileQuarantined": "dcmseal.events",
    "FileFailed": "dcmseal.events",
    "InstanceStored": "dcmseal.events",
    "StudyHeld": "dcmseal.events",
    "Emitter": "dcmseal.events",
    "HandlerSpec": "dcmseal.events",
    # errors
    "DcmsealError": "dcmseal.errors",
    "DecryptionError": "dcmseal.errors",
    "ExitCode": "dcmseal.errors",
    "InputError": "dcmseal.errors",
    "HostileMediumError": "dcmseal.errors",
    "MalformedEnvelopeError": "dcmseal.errors",
    "MissingInputError": "dcmseal.errors",
    "NotPart10Error": "dcmseal.errors",
    "OutputExistsError": "dcmseal.errors",
    "PeerError": "dcmseal.errors",
    "ResourceLimitError": "dcmseal.errors",
    "UnprotectedContentError": "dcmseal.errors",
    "UnsupportedAlgorithmError": "dcmseal.errors",
    "UsageError": "dcmseal.errors",
    "WeakPasswordError": "dcmseal.errors",
}

if TYPE_CHECKING:
    from dcmseal.config import Settings
    from dcmseal.documents import EncapsulateResult, ExtractResult, encapsulate, extract
    from dcmseal.errors import (
        DcmsealError,
        DecryptionError,
        ExitCode,
        HostileMediumError,
        InputError,
        MalformedEnvelopeError,
        MissingInputError,
        NotPart10Error,
        OutputExistsError,
        PeerError,
        ResourceLimitError,
        UnprotectedContentError,
        UnsupportedAlgorithmError,
        UsageError,
        WeakPasswordError,
    )
    from dcmseal.events import (
        Emitter,
        Event,
        FileFailed,
        FileOpened,
        FileQuarantined,
        FileSealed,
        HandlerSpec,
        InstanceStored,
        Progress,
        StudyHeld,
    )
    from dcmseal.importer.pipeline import ImportRequest, ImportResult, import_medium
    from dcmseal.keys.escrow import RecoverRequest, RecoverResult, recover
    from dcmseal.media.burn import BurnRequest, BurnResult, burn
    from dcmseal.media.open import OpenRequest, OpenResult, open_medium
    from dcmseal.media.rekey import RekeyRequest, RekeyResult, rekey
    from dcmseal.outcomes import ReasonKind
    from dcmseal.part10 import FileStatus, inspect_file, is_secure_file
    from dcmseal.recipes import SealedFile, UnsealedFile, seal, unseal
    from dcmseal.scan.workflow import (
        SanitizeReport,
        SanitizeRequest,
        ScanRequest,
        ScanResult,
        sanitize,
        scan,
    )

__all__ = [
    "BurnRequest",
    "BurnResult",
    "DcmsealError",
    "DecryptionError",
    "Emitter",
    "EncapsulateResult",
    "Event",
    "ExitCode",
    "ExtractResult",
    "FileFailed",
    "FileOpened",
    "FileQuarantined",
    "FileSealed",
    "FileStatus",
    "HandlerSpec",
    "HostileMediumError",
    "ImportRequest",
    "ImportResult",
    "InputError",
    "InstanceStored",
    "MalformedEnvelopeError",
    "MissingInputError",
    "NotPart10Error",
    "OpenRequest",
    "OpenResult",
    "OutputExistsError",
    "PeerError",
    "Progress",
    "ReasonKind",
    "RecoverRequest",
    "RecoverResult",
    "RekeyRequest",
    "RekeyResult",
    "ResourceLimitError",
    "SanitizeReport",
    "SanitizeRequest",
    "ScanRequest",
    "ScanResult",
    "SealedFile",
    "Settings",
    "StudyHeld",
    "UnprotectedContentError",
    "UnsealedFile",
    "UnsupportedAlgorithmError",
    "UsageError",
    "WeakPasswordError",
    "__version__",
    "burn",
    "encapsulate",
    "extract",
    "import_medium",
    "inspect_file",
    "is_secure_file",
    "open_medium",
    "recover",
    "rekey",
    "sanitize",
    "scan",
    "seal",
    "unseal",
]


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (PEP 562), and keep it here."""
    if name == "scan":
        # The package, callable as the workflow: the same object whether or not it was imported before.
        value: object = importlib.import_module("dcmseal.scan")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the module's own, for ``dir()`` and completion."""
    return sorted({*globals(), *__all__})
