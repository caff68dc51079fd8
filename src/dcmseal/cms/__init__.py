"""RFC 5652 Cryptographic Message Syntax for Secure DICOM Files: the hazmat layer, knows nothing of DICOM.

Every parameter is explicit here; the safe recipes with defaults live in :mod:`dcmseal.part10`. What the
layer keeps between calls (derived keys, templates, parsed shapes, helper threads) lives in a
:class:`Context` the caller owns, never in the process.
EnvelopedData with password (RFC 3211 PWRI, PBKDF2 per RFC 8018) and RSA key transport (KTRI)
recipients; DigestedData or SignedData inside, as PS3.15 D.1.1 requires.
"""

from __future__ import annotations

from dcmseal.cms.algorithms import ContentCipher, DigestAlgorithm, KeyTransport, Prf, RecipientIdType
from dcmseal.cms.content import (
    ContentKind,
    DigestedContent,
    InnerResult,
    InnerSpec,
    RawContent,
    SignedContent,
    SignerReport,
)
from dcmseal.cms.context import Context, Handover
from dcmseal.cms.envelope import DecryptResult, EnvelopeInfo, EnvelopeSpec, is_enveloped_data
from dcmseal.cms.header import inspect
from dcmseal.cms.kdf import KdfBudget, Pbkdf2Cache, Pbkdf2Params
from dcmseal.cms.keywrap import unwrap_key, wrap_key
from dcmseal.cms.readdressing import readdress
from dcmseal.cms.reader import decrypt
from dcmseal.cms.recipients import (
    CertificateRecipient,
    Credential,
    PasswordCredential,
    PasswordRecipient,
    PrivateKeyCredential,
    Recipient,
    RecipientDescription,
)
from dcmseal.cms.writer import PreparedEnvelope, encrypt, prepare

__all__ = [
    "CertificateRecipient",
    "ContentCipher",
    "ContentKind",
    "Context",
    "Credential",
    "DecryptResult",
    "DigestAlgorithm",
    "DigestedContent",
    "EnvelopeInfo",
    "EnvelopeSpec",
    "Handover",
    "InnerResult",
    "InnerSpec",
    "KdfBudget",
    "KeyTransport",
    "PasswordCredential",
    "PasswordRecipient",
    "Pbkdf2Cache",
    "Pbkdf2Params",
    "PreparedEnvelope",
    "Prf",
    "PrivateKeyCredential",
    "RawContent",
    "Recipient",
    "RecipientDescription",
    "RecipientIdType",
    "SignedContent",
    "SignerReport",
    "decrypt",
    "encrypt",
    "inspect",
    "is_enveloped_data",
    "prepare",
    "readdress",
    "unwrap_key",
    "wrap_key",
]
