"""The address book of partner certificates (``burn --to NAME``): filing one is audited by the library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcmseal.keys.escrow import audit_key_change

if TYPE_CHECKING:
    from cryptography import x509

    from dcmseal.audit import AuditSink
    from dcmseal.keys.records import PartnerSummary
    from dcmseal.keys.registry import Registry

__all__ = ["file_partner"]


def file_partner(
    registry: Registry,
    name: str,
    certificate: x509.Certificate,
    *,
    operator: str,
    audit: AuditSink,
    replace: bool = False,
) -> PartnerSummary:
    """File a partner's certificate under ``name``, and audit the change of who media can be sealed to.

    Parameters
    ----------
    registry : Registry
        The registry holding the address book.
    name : str
        1 to 64 of ``[A-Za-z0-9._-]``: what ``burn --to`` is given.
    certificate : x509.Certificate
        The partner's RSA certificate; its validity is recorded, not judged.
    operator : str
        Who files it, for the Security Alert (CID 403 "Security Configuration", :func:`audit_key_change`).
    audit : AuditSink
        Where that alert goes, once the certificate is filed.
    replace : bool
        Replace an entry of the same name.

    Returns
    -------
    PartnerSummary
        The entry as filed: name, subject, validity, fingerprint.

    Raises
    ------
    UsageError
        ``name`` is not a valid entry name.
    InputError
        ``name`` is taken and ``replace`` is false, or the certificate is not RSA.
    """
    entry = registry.add_partner(name, certificate, replace=replace)
    audit_key_change(
        audit,
        description=f"recipient certificate filed as {entry.name!r}",
        fingerprint=entry.fingerprint,
        operator=operator,
    )
    return entry
