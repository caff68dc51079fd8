"""The ``dcmseal`` command: one typer app, one sub-command or group per module."""

from __future__ import annotations

from typing import Annotated

import typer

from dcmseal import __version__
from dcmseal.cli.common import configure_logging, out_console
from dcmseal.cli.demo import demo
from dcmseal.cli.documents import encapsulate_command, extract_command
from dcmseal.cli.envelope import inspect, seal, unseal
from dcmseal.cli.importing import import_command
from dcmseal.cli.keys import keys_app, recipients_app
from dcmseal.cli.media import burn_command, open_command, rekey_command
from dcmseal.cli.password import password_app
from dcmseal.cli.scan import sanitize_command, scan_command

__all__ = ["app", "main"]

# Locals never appear in tracebacks: they may hold a password (typer docs, "exceptions").
app = typer.Typer(
    name="dcmseal",
    help="Secure DICOM exchange media: seal and open Secure DICOM Files (PS3.10 §7.4, PS3.15 Annex D).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        out_console.print(f"dcmseal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log warnings and each file (-vv: debug).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Errors only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    configure_logging(verbose, quiet)


app.command()(seal)
app.command()(unseal)
app.command()(inspect)
app.command("burn")(burn_command)
app.command("open")(open_command)
app.command("rekey")(rekey_command)
app.command("import")(import_command)
app.command()(demo)
app.command("encapsulate")(encapsulate_command)
app.command("extract")(extract_command)
app.command("scan")(scan_command)
app.command("sanitize")(sanitize_command)
app.add_typer(password_app, name="password")
app.add_typer(keys_app, name="keys")
app.add_typer(recipients_app, name="recipients")


def main() -> None:
    """Console-script entry point."""
    app()
