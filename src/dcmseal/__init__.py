"""dcmseal: Secure DICOM Files (PS3.10 §7.4) and the Basic DICOM Media Security Profile (PS3.15 Annex D).

The recipes most callers need are here; :mod:`dcmseal.cms` is the hazmat layer underneath::

    import dcmseal
    from dcmseal import cms

    password = cms.PasswordRecipient(password=b"...", kdf=cms.Pbkdf2Params(salt=os.urandom(16),
                                     iterations=600_000, prf=cms.Prf.SHA256))
    dcmseal.seal_file(Path("CT1.dcm"), Path("CT1"), recipients=[password])
    dcmseal.unseal_file(Path("CT1"), Path("CT1.dcm"), credentials=[cms.PasswordCredential(password=b"...")])
"""

from __future__ import annotations

import logging

from dcmseal.errors import DcmsealError
from dcmseal.part10 import (
    SealPlan,
    UnsealPlan,
    inspect_file,
    is_secure_file,
    seal_file,
    seal_tree,
    unseal_file,
    unseal_tree,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DcmsealError",
    "SealPlan",
    "UnsealPlan",
    "__version__",
    "inspect_file",
    "is_secure_file",
    "seal_file",
    "seal_tree",
    "unseal_file",
    "unseal_tree",
]
