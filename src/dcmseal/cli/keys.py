"""The keys and recipients command groups: escrow identity, the media registry, recovery, partner certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dcmseal.cli import options
from dcmseal.cli.common import (
    cli_settings,
    err_console,
    load_certificate,
    out_console,
    print_json,
    print_table,
    read_password,
    user_errors,
)
from dcmseal.cli.context import audit_sink, open_registry, operator_name, warn
from dcmseal.config import default_escrow_directory
from dcmseal.errors import UsageError
from dcmseal.keys.escrow import RecoverRequest, create_escrow_identity
from dcmseal.keys.escrow import recover as recover_password
from dcmseal.keys.partners import file_partner

__all__ = ["keys_app", "recipients_app"]

keys_app = typer.Typer(
    name="keys", help="Escrow identity, registry of burned media, password recovery.", no_args_is_help=True
)
recipients_app = typer.Typer(
    name="recipients", help="The address book of partner certificates (burn --to NAME).", no_args_is_help=True
)

PassFileOpt = Annotated[
    Path | None, typer.Option("--passphrase-file", help="The escrow key's passphrase, from a file.")
]
PassEnvOpt = Annotated[
    str | None, typer.Option("--passphrase-env", help="The escrow key's passphrase, from a variable.")
]


def _passphrase(
    passphrase_file: Path | None, passphrase_env: str | None, *, prompt: str, confirm: bool
) -> bytes:
    """The escrow key's passphrase from --passphrase-file, --passphrase-env, else the prompt."""
    passphrase = read_password(
        password_file=passphrase_file,
        password_env=passphrase_env,
        prompt=prompt,
        confirm=confirm,
        flags=("--passphrase-file", "--passphrase-env"),
    )
    assert passphrase is not None  # with a prompt, read_password returns the answer or raises
    return passphrase.encode("ascii")


@keys_app.command("init")
def init(
    org: Annotated[str, typer.Option("--org", help="Organisation name (certificate O and CN).")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write escrow-key.pem and escrow-cert.pem.")
    ] = None,
    passphrase_file: PassFileOpt = None,
    passphrase_env: PassEnvOpt = None,
    key_size: Annotated[int, typer.Option("--key-size", help="RSA modulus bits (>= 3072).")] = 3072,
    as_json: options.Json = False,
) -> None:
    """Create the organisation's escrow key pair and certificate; every medium is also sealed to it.

    Keep the private key offline; burn stations only need the certificate.
    """
    with user_errors():
        target = directory or default_escrow_directory(cli_settings())
        passphrase = _passphrase(
            passphrase_file, passphrase_env, prompt="Passphrase for the escrow private key", confirm=True
        )
        try:
            identity = create_escrow_identity(
                org,
                target,
                passphrase=passphrase,
                key_size=key_size,
                audit=audit_sink(cli_settings()),
                operator=operator_name(),
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if as_json:
            print_json({"schema": "dcmseal.keys.init/1", **identity.to_json()})
            return
        out_console.print(f"escrow certificate: {identity.certificate_path}")
        out_console.print(f"escrow private key: {identity.key_path} (encrypted; move it offline)")
        out_console.print(f"fingerprint (SHA-256): {identity.fingerprint}")


@keys_app.command("list")
def list_media(
    registry: options.Registry = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 100,
    as_json: options.Json = False,
) -> None:
    """The media burned at this organisation, newest first."""
    with user_errors():
        settings = cli_settings()
        with open_registry(settings, registry) as reg:
            media = reg.list_media(limit=limit)
        if as_json:
            print_json({"schema": "dcmseal.keys.list/1", "media": [m.to_json() for m in media]})
            return
        table = Table(show_edge=False, pad_edge=False)
        # The medium ID on one line, however narrow the terminal: it is what `keys recover` is given.
        table.add_column("medium", no_wrap=True, min_width=max((len(m.medium_id) for m in media), default=6))
        for column in ("created", "operator", "profile", "files", "label"):
            table.add_column(column)
        for m in media:
            data = m.to_json()
            table.add_row(
                m.medium_id,
                f"{m.created_at:%Y-%m-%d %H:%M}",
                m.operator,
                m.profile,
                str(data.get("file_count", "")),
                str(data.get("label") or ""),
            )
        print_table(table, is_result=True)


@keys_app.command("show")
def show(
    medium: Annotated[str, typer.Argument(help="Medium ID.")],
    registry: options.Registry = None,
    as_json: options.Json = False,
) -> None:
    """Everything the registry holds about a medium (never its password)."""
    with user_errors():
        settings = cli_settings()
        with open_registry(settings, registry) as reg:
            details = reg.get_medium(medium)
            recoveries = reg.recoveries(medium)
        document = {
            "schema": "dcmseal.keys.show/1",
            **details.to_json(),
            "recoveries": [r.to_json() for r in recoveries],
        }
        if as_json:
            print_json(document)
            return
        for key, value in document.items():
            if key != "schema":
                _print_field(key, value, indent="")


def _print_field(key: str, value: object, *, indent: str) -> None:
    """``key: value`` as a person reads it: yes/no, "-" for none, one indented line per item of a list."""
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        out_console.print(f"{indent}{key}:")
        for item in value:
            fields = [(k, v) for k, v in item.items() if v is not None]
            for position, (k, v) in enumerate(fields):
                _print_field(k, v, indent=indent.replace("-", " ") + ("  - " if position == 0 else "    "))
        return
    out_console.print(f"{indent}{key}: {_plain_value(value)}")


def _plain_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "none"
    return str(value)


@keys_app.command("recover")
def recover(
    medium: Annotated[str, typer.Argument(help="Medium ID.")],
    escrow_key: Annotated[Path, typer.Option("--escrow-key", help="The escrow private key (encrypted PEM).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with who and when).")],
    escrow_cert: Annotated[
        Path | None, typer.Option("--escrow-cert", help="The escrow certificate (default: beside the key).")
    ] = None,
    passphrase_file: PassFileOpt = None,
    passphrase_env: PassEnvOpt = None,
    registry: options.Registry = None,
    as_json: options.Json = False,
) -> None:
    """Reveal a medium's password with the escrow key; every recovery is recorded and audited."""
    with user_errors():
        settings = cli_settings()
        passphrase = _passphrase(
            passphrase_file, passphrase_env, prompt="Passphrase of the escrow key", confirm=False
        )
        request = RecoverRequest(
            medium_id=medium,
            escrow_key=escrow_key,
            passphrase=passphrase,
            reason=reason,
            operator=operator_name(),
            escrow_certificate=escrow_cert,
        )
        with open_registry(settings, registry) as reg:
            result = recover_password(request, registry=reg, audit=audit_sink(settings))
        if as_json:
            print_json(result.to_json())
            return
        warn("the recovery is recorded in the registry and the audit log")
        out_console.print(result.password)


@recipients_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Name to burn --to (letters, digits, . _ -).")],
    certificate: Annotated[Path, typer.Argument(help="The partner's certificate (PEM or DER).")],
    replace: Annotated[bool, typer.Option("--replace", help="Replace an entry of the same name.")] = False,
    registry: options.Registry = None,
    as_json: options.Json = False,
) -> None:
    """File a partner's certificate under a name."""
    with user_errors():
        cert = load_certificate(certificate)
        settings = cli_settings()
        with open_registry(settings, registry) as reg:
            entry = file_partner(
                reg, name, cert, replace=replace, operator=operator_name(), audit=audit_sink(settings)
            )
        if as_json:
            print_json({"schema": "dcmseal.recipients.add/1", **entry.to_json()})
            return
        out_console.print(f"{entry.name}: {entry.subject} (valid until {entry.not_after:%Y-%m-%d})")


@recipients_app.command("list")
def list_partners(registry: options.Registry = None, as_json: options.Json = False) -> None:
    """The address book."""
    with user_errors():
        with open_registry(cli_settings(), registry) as reg:
            entries = reg.list_partners()
        if as_json:
            print_json({"schema": "dcmseal.recipients.list/1", "recipients": [e.to_json() for e in entries]})
            return
        table = Table(show_edge=False, pad_edge=False)
        for column in ("name", "subject", "valid until", "fingerprint"):
            table.add_column(column, overflow="fold")
        for e in entries:
            table.add_row(e.name, e.subject, f"{e.not_after:%Y-%m-%d}", e.fingerprint[:16])
        print_table(table, is_result=True)


@recipients_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Name to remove.")], registry: options.Registry = None
) -> None:
    """Take a partner out of the address book (media already burned are not affected)."""
    with user_errors():
        with open_registry(cli_settings(), registry) as reg:
            reg.remove_partner(name)
        err_console.print(f"removed {name}")
