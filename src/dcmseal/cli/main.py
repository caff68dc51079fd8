"""The ``dcmseal`` command: one typer app, one sub-command or group per module, imported on demand."""

from __future__ import annotations

import importlib
import sys
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from dcmseal import __version__
from dcmseal.cli.common import SharedOptionsCommand, out_console, start_invocation

__all__ = ["COMMANDS", "GROUPS", "build_app", "main"]  # and `app`, built on first access (see __getattr__)

#: Command name -> (module, function), in the order ``--help`` lists them. A command's module is imported only
#: when that command runs (or for ``--help``): the modules behind ``import``, ``encapsulate`` or ``scan`` pull in
#: pydicom, numpy and requests, which cost a ``seal`` more start-up time than its PBKDF2 derivation.
COMMANDS: dict[str, tuple[str, str]] = {
    "seal": ("dcmseal.cli.envelope", "seal"),
    "unseal": ("dcmseal.cli.envelope", "unseal"),
    "inspect": ("dcmseal.cli.envelope", "inspect"),
    "burn": ("dcmseal.cli.media", "burn_command"),
    "open": ("dcmseal.cli.media", "open_command"),
    "rekey": ("dcmseal.cli.media", "rekey_command"),
    "import": ("dcmseal.cli.importing", "import_command"),
    "reconcile": ("dcmseal.cli.importing", "reconcile_command"),
    "demo": ("dcmseal.cli.demo", "demo"),
    "encapsulate": ("dcmseal.cli.documents", "encapsulate_command"),
    "extract": ("dcmseal.cli.documents", "extract_command"),
    "scan": ("dcmseal.cli.scan", "scan_command"),
    "sanitize": ("dcmseal.cli.scan", "sanitize_command"),
}
#: Group name -> (module, typer app).
GROUPS: dict[str, tuple[str, str]] = {
    "password": ("dcmseal.cli.password", "password_app"),
    "keys": ("dcmseal.cli.keys", "keys_app"),
    "recipients": ("dcmseal.cli.keys", "recipients_app"),
}


def _version(value: bool) -> None:
    if value:
        out_console.print(f"dcmseal {__version__}")
        raise typer.Exit()


def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log warnings and each file (-vv: debug).")
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Errors and summaries only: no per-file table.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", dir_okay=False, help="TOML settings file (every command also takes it)."),
    ] = None,
) -> None:
    start_invocation(config=config, verbose=verbose, quiet=quiet)


def _load(module: str, attribute: str) -> Any:
    return getattr(importlib.import_module(module), attribute)


def build_app(only: str | None = None) -> typer.Typer:
    """The ``dcmseal`` app with every command, or with the one named ``only`` (a group stays a group)."""
    # Locals never appear in tracebacks: they may hold a password (typer docs, "exceptions").
    app = typer.Typer(
        name="dcmseal",
        help="Secure DICOM exchange media: seal and open Secure DICOM Files (PS3.10 §7.4, PS3.15 Annex D).",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        add_completion=False,
        rich_markup_mode=None,
    )
    app.callback()(_root)
    # Every command takes --config, -v and -q after its name too, and answers in JSON under --json.
    for name, (module, attribute) in COMMANDS.items():
        if only is None or only == name:
            app.command(name, cls=SharedOptionsCommand)(_load(module, attribute))
    for name, (module, attribute) in GROUPS.items():
        if only is None or only == name:
            group: typer.Typer = _load(module, attribute)
            for info in group.registered_commands:
                if info.cls in (None, TyperCommand):
                    info.cls = SharedOptionsCommand
            app.add_typer(group, name=name)
    return app


@cache
def _full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> Any:
    # ``from dcmseal.cli.main import app`` (tests, embedding) gets every command; the console script does not.
    if name == "app":
        return _full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _command_name(arguments: list[str]) -> str | None:
    # The root options are flags but --config, which takes a value: skip it, the first other word is the name.
    skip = False
    for argument in arguments:
        if skip:
            skip = False
            continue
        if argument == "--":
            return None
        if argument == "--config":
            skip = True
        elif not argument.startswith("-"):
            return argument
    return None


def main() -> None:
    """Console-script entry point: imports only the command that runs (all of them for help or a typo)."""
    arguments = sys.argv[1:]
    name = _command_name(arguments)
    if name in COMMANDS or name in GROUPS:
        build_app(only=name)()
    elif name is None and "--version" in arguments and "--help" not in arguments:
        build_app(only="")()
    else:
        build_app()()
