"""What the media and key commands share: the registry, the audit sink, the escrow certificate, the operator."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from dcmseal.audit import AuditSink, sink_from_settings
from dcmseal.cli.common import err_console, load_certificate
from dcmseal.config import Settings, default_audit_log, default_escrow_directory, state_directory
from dcmseal.errors import UsageError
from dcmseal.fsutil import make_dirs

if TYPE_CHECKING:
    from dcmseal.keys.registry import Registry

__all__ = ["audit_sink", "escrow_certificate", "open_registry", "operator_name"]

ESCROW_CERT_NAME = "escrow-cert.pem"


def operator_name() -> str:
    """Who is at the keyboard, for the registry and the audit trail (``DCMSEAL_OPERATOR`` overrides)."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return os.environ.get("DCMSEAL_OPERATOR") or login


def open_registry(settings: Settings, url: str | None) -> Registry:
    """The registry at ``--registry``, else the setting, else the SQLite file in the state folder."""
    from dcmseal.keys.registry import (
        Registry,  # SQLAlchemy and Alembic load only for the commands that need them
    )

    if not (url or settings.registry) and settings.state_dir:
        # A shared station: one registry for every operator, in the shared folder.
        return Registry.open(f"sqlite:///{state_directory(settings) / 'registry.sqlite3'}")
    return Registry.open(url or settings.registry or None)


def audit_sink(settings: Settings) -> AuditSink:
    """The local audit log (always) plus syslog when configured."""
    log = Path(settings.audit_log) if settings.audit_log else default_audit_log(settings)
    make_dirs(log.parent)
    return sink_from_settings(log, settings.syslog or None)


def escrow_certificate(settings: Settings, path: Path | None, *, required: bool) -> x509.Certificate | None:
    """The organisation's escrow certificate: ``--escrow-cert``, the setting, or ``dcmseal keys init``'s."""
    chosen = path or (Path(settings.escrow_certificate) if settings.escrow_certificate else None)
    if chosen is None:
        default = default_escrow_directory(settings) / ESCROW_CERT_NAME
        if default.is_file():
            chosen = default
    if chosen is None:
        if required:
            raise UsageError(
                "no escrow certificate: run `dcmseal keys init --org NAME` once, give --escrow-cert, "
                "or burn with --no-escrow (the medium can then never be recovered)"
            )
        return None
    return load_certificate(chosen)


def warn(message: str) -> None:
    err_console.print(f"warning: {message}", style="bold yellow")
