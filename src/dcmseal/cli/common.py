"""What every command shares: consoles, the one error funnel, password and key sources, JSON output."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from dcmseal import events
from dcmseal.config import Settings, load_settings, private_state_directory
from dcmseal.errors import DcmsealError, ExitCode, InputError, UsageError, one_line
from dcmseal.events import HandlerSpec
from dcmseal.fsutil import sweep_staging, use_state_directory
from dcmseal.keys import encode_password

__all__ = [
    "PASSWORD_ON_ARGV_MESSAGE",
    "SharedOptionsCommand",
    "cli_settings",
    "configure_logging",
    "err_console",
    "is_quiet",
    "load_certificate",
    "load_private_key",
    "out_console",
    "print_json",
    "print_table",
    "progress_handlers",
    "read_password",
    "refuse_argv_password",
    "start_invocation",
    "user_errors",
    "wants_json",
]


def _click_exception() -> type[Exception]:
    """The base of typer's usage errors: typer 0.28 carries its own copy of click (a wheel install has no
    ``click`` package at all), typer 0.24 uses click itself."""
    import importlib

    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found: type[Exception] = importlib.import_module(module).ClickException
        except ImportError:  # typer < 0.25 has no copy; a wheel install with typer 0.28 has no click
            continue
        return found
    raise ImportError("neither typer's copy of click nor click is installed")


_CLICK_EXCEPTION = _click_exception()

# Paths from a disc may contain "[" and control characters: no markup, no highlighting.
out_console = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)

PASSWORD_ON_ARGV_MESSAGE = (
    "a password on the command line is visible to other users (ps, shell history): "  # noqa: S105 - a message
    "use --password-file, --password-env or the prompt"
)


def refuse_argv_password(password: str | None) -> None:
    """A password given on argv is a usage error (visible in ps and shell history)."""
    if password is not None:
        raise UsageError(PASSWORD_ON_ARGV_MESSAGE)


# -- what one invocation knows: the options every command takes, wherever they stand on the line ------------------
@dataclass(slots=True)
class Invocation:
    """The shared options of one ``dcmseal`` run: from the root (before the command) and after the command."""

    config: Path | None = None
    verbose: int = 0
    quiet: bool = False
    json: bool = False
    command: str = ""  # as typed after "dcmseal": "keys list"


#: Set fresh by the root callback of every run (main._root), filled by the command's SharedOptionsCommand.
_INVOCATION: ContextVar[Invocation] = ContextVar("dcmseal_invocation")


def start_invocation(*, config: Path | None, verbose: int, quiet: bool) -> None:
    """The root options of a new run (``dcmseal -v --config F open ...``); sets the log level."""
    _INVOCATION.set(Invocation(config=config, verbose=verbose, quiet=quiet))
    configure_logging(verbose, quiet)


def _invocation() -> Invocation:
    try:
        return _INVOCATION.get()
    except LookupError:  # a command function called without the app (embedding): the defaults
        return Invocation()


#: The options every command takes after its name as well as before it (said in every command's --help).
SHARED_OPTIONS_HELP = (
    "Every command also takes --config FILE (settings; else $DCMSEAL_CONFIG, ~/.config/dcmseal/config.toml, "
    "/etc/dcmseal/config.toml), -v/--verbose (-vv: debug) and -q/--quiet (no per-file table)."
)


def _clean_up_after_killed_runs() -> None:
    """A run killed earlier (kill -9, power loss) may have left a staging folder of plaintext: every command
    removes those of runs that are gone (issue 12 §4), before it starts. Run records go where the settings
    keep state (a shared station's folder, else the user's)."""
    try:
        settings = cli_settings()
        use_state_directory(private_state_directory(settings) if settings.state_dir else None)
    except DcmsealError:
        return  # a broken configuration: the command itself says so
    for folder in sweep_staging():
        logging.getLogger("dcmseal").info("removed %s, left by an interrupted run", folder)


class SharedOptionsCommand(TyperCommand):
    """A command that also takes --config, -v and -q after its name, and answers a usage error in JSON.

    The shared options are taken off the argument list before the command parses its own, so no command
    declares them and ``dcmseal open -q ...`` means what ``dcmseal -q open ...`` does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epilog = SHARED_OPTIONS_HELP

    def _valued_options(self) -> set[str]:
        """The command's own options that take a value (their value is never a shared flag)."""
        names: set[str] = set()
        for parameter in self.params:
            if not (getattr(parameter, "is_flag", True) or getattr(parameter, "count", False)):
                names.update(getattr(parameter, "opts", ()))
        return names

    def _take_shared(self, args: list[str]) -> list[str]:
        """Record the shared options found among ``args`` and return the others, in order."""
        state = _invocation()
        valued = self._valued_options()
        rest: list[str] = []
        position = 0
        while position < len(args):
            argument = args[position]
            position += 1
            if argument == "--":
                rest.extend(args[position - 1 :])
                break
            if argument in valued:  # its value follows, whatever it looks like (--label -q is a label)
                rest.extend(args[position - 1 : position + 1])
                position += 1
            elif argument == "--config" and position < len(args):
                state.config = Path(args[position])
                position += 1
            elif argument.startswith("--config="):
                state.config = Path(argument.split("=", 1)[1])
            elif argument in ("-q", "--quiet"):
                state.quiet = True
            elif argument == "--verbose" or re.fullmatch(r"-v+", argument):
                state.verbose += 1 if argument == "--verbose" else len(argument) - 1
            else:
                state.json = state.json or argument == "--json"
                rest.append(argument)
        configure_logging(state.verbose, state.quiet)
        return rest

    # typer's Context type lives in its private click copy: the override is annotated with Any.
    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        rest = self._take_shared(args)
        _clean_up_after_killed_runs()
        state = _invocation()
        state.command = " ".join(filter(None, (_below_root(parent), info_name or "")))
        try:
            return super().make_context(info_name, rest, parent=parent, **extra)
        except Exception as exc:
            # A usage error of the command line (click's UsageError, exit code 2) under --json: one JSON
            # document as well as the line on stderr that typer prints.
            if state.json and getattr(exc, "exit_code", None) == int(ExitCode.USAGE):
                formatter = getattr(exc, "format_message", None)
                message = str(formatter()) if callable(formatter) else str(exc)
                _print_error_json(state.command, ExitCode.USAGE, message, None)
            raise


def _below_root(parent: Any) -> str:
    """The group names between ``dcmseal`` and the command ("keys" for ``dcmseal keys list``)."""
    path = str(getattr(parent, "command_path", "") or "")
    return path.split(" ", 1)[1] if " " in path else ""


def cli_settings(**overrides: object | None) -> Settings:
    """The Settings of this invocation: its --config file (if any) under the flags given as ``overrides``."""
    return load_settings(config_file=_invocation().config, overrides=overrides)


def is_quiet() -> bool:
    """-q was given (before or after the command's name)."""
    return _invocation().quiet


def wants_json() -> bool:
    """The running command was given --json."""
    return _invocation().json


def print_table(table: Table, *, is_result: bool = False) -> None:
    """A table: rich columns on a terminal, tab-separated full values into a pipe or a file.

    Nothing is cut or folded in a pipe (``dcmseal keys list | cut -f1`` gives whole medium IDs). -q leaves
    out a per-file table (the summary on stderr stays); a table that is the command's result
    (``is_result``: keys list, inspect) is always printed.
    """
    if is_quiet() and not is_result:
        return
    if out_console.is_terminal:
        for column in table.columns:  # a narrow terminal wraps a value, never cuts it to "DCMS-9EG…"
            if column.overflow == "ellipsis":
                column.overflow = "fold"
        out_console.print(table)
        return
    rows = [[_plain(column.header) for column in table.columns]] if table.show_header else []
    cells = [list(column.cells) for column in table.columns]
    rows += [[_plain(column[i]) for column in cells] for i in range(table.row_count)]
    sys.stdout.write("".join("\t".join(row) + "\n" for row in rows))
    sys.stdout.flush()


def _plain(cell: object) -> str:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    # One record per line, one field per tab: a tab or line break inside a value becomes a space.
    return " ".join(text.replace("\t", " ").splitlines())


def configure_logging(verbose: int, quiet: bool) -> None:
    """Install the one handler (rich, stderr); the library itself only has a NullHandler.

    By default only errors are logged: every command already shows each file's notes (preamble
    zeroed, raw payload) in its table or JSON; ``-v`` adds the library's warnings and per-file lines.
    """
    level = logging.ERROR if quiet or verbose == 0 else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler: logging.Handler
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    else:  # a pipe or a file: one record per line, never wrapped
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger("dcmseal")
    root.handlers = [h for h in root.handlers if isinstance(h, logging.NullHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    # Library warnings (pydicom's value checks on odd input files) follow the same level and handler.
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.handlers = [handler]
    warnings_logger.setLevel(level)
    warnings_logger.propagate = False


@contextmanager
def user_errors(*, as_json: bool = False) -> Iterator[None]:
    """Turn a DcmsealError into one coloured line on stderr and its exit code; anything else is a bug.

    Under --json (seen on the command line, or ``as_json``) the error is also the one JSON document on
    stdout (``dcmseal.error/1``), so a caller parsing ``--json`` gets one on failure too.
    """
    try:
        yield
    except DcmsealError as exc:
        if os.environ.get("DCMSEAL_DEBUG") == "1" or _invocation().verbose > 1:
            err_console.print_exception()
        if as_json or wants_json():
            _print_error_json(_invocation().command, exc.exit_code, exc.message, exc.path)
        err_console.print(f"error: {exc}", style="bold red", soft_wrap=True)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        if as_json or wants_json():
            _print_error_json(_invocation().command, ExitCode.INTERRUPTED, "interrupted", None)
        err_console.print("interrupted", style="bold red")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except (typer.Exit, typer.Abort, _CLICK_EXCEPTION):
        raise  # typer's own ways out (an exit code chosen by the command, a usage error)
    except Exception as exc:
        # A bug: the traceback is for whoever debugs (-vv, DCMSEAL_DEBUG=1); the user gets one line, and a
        # caller parsing --json still gets its one document.
        if os.environ.get("DCMSEAL_DEBUG") == "1" or _invocation().verbose > 1:
            raise
        message = f"unexpected error, a bug in dcmseal ({one_line(exc)}); DCMSEAL_DEBUG=1 shows where"
        if as_json or wants_json():
            _print_error_json(_invocation().command, ExitCode.INPUT, message, None)
        err_console.print(f"error: {message}", style="bold red", soft_wrap=True)
        raise typer.Exit(int(ExitCode.INPUT)) from None


def print_json(document: dict[str, Any]) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


ERROR_SCHEMA = "dcmseal.error/1"


def _print_error_json(command: str, code: ExitCode, message: str, path: Path | None) -> None:
    """A fatal error under --json: still exactly one JSON document on stdout (the line on stderr stays)."""
    print_json(
        {
            "schema": ERROR_SCHEMA,
            "command": command,
            "error": {
                "code": code.name.lower(),
                "exit_code": int(code),
                "message": message,
                "file": str(path) if path is not None else None,
            },
        }
    )


#: The flags of the medium's password; other secrets name theirs (keys init: --passphrase-file/-env).
PASSWORD_FLAGS = ("--password-file", "--password-env")
KEY_PASSPHRASE_FLAGS = ("--key-passphrase-file", "--key-passphrase-env")
#: ``--password-file -``: the password is the first line of standard input (OpenSSL's ``-pass stdin``).
STDIN_PATH = Path("-")


def read_password(
    *,
    password_file: Path | None,
    password_env: str | None,
    prompt: str | None,
    confirm: bool,
    flags: tuple[str, str] = PASSWORD_FLAGS,
) -> str | None:
    """The password from a file (``-``: standard input), an environment variable or the prompt; None if none.

    The file's first line is the password (a trailing newline is not part of it). Passwords are checked
    to be ISO-IR 6 here, before any work, so a bad one fails fast. ``flags`` are the two options that
    gave ``password_file`` and ``password_env``, as the messages name them.
    """
    file_flag, env_flag = flags
    if password_file is not None and password_env is not None:
        raise UsageError(f"give {file_flag} or {env_flag}, not both")
    text: str | None = None
    if password_file is not None:
        raw = _read_secret_file(password_file, file_flag)
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                "the password file is not text; PS3.15 D.1 passwords are printable ASCII", path=password_file
            ) from None
        text = decoded.splitlines()[0] if decoded.splitlines() else ""
        if not text:
            raise InputError("the password file is empty", path=password_file)
    elif password_env is not None:
        value = os.environ.get(password_env)
        if not value:
            raise UsageError(f"environment variable {password_env} is not set or empty")
        text = value
    elif prompt is not None:
        if not sys.stdin.isatty():
            raise UsageError(f"no password given and no terminal to ask on: use {file_flag} or {env_flag}")
        text = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    if text is not None:
        encode_password(text)  # ISO-IR 6 check with its own clear message
    return text


def _read_secret_file(path: Path, flag: str) -> bytes:
    """A secret's file, or its first line from standard input for ``-``."""
    if path == STDIN_PATH:
        if sys.stdin.isatty():
            raise UsageError(f"{flag} - reads standard input, which is a terminal: pipe the secret in")
        return sys.stdin.buffer.readline()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the password file: {exc.strerror or exc}", path=path) from None


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror or exc}", path=path) from None


def load_certificate(path: Path) -> x509.Certificate:
    """An X.509 certificate from a PEM or DER file."""
    data = _read_pem(path, "certificate")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise InputError("not an X.509 certificate (PEM or DER)", path=path) from None


def load_private_key(
    path: Path, *, passphrase_file: Path | None = None, passphrase_env: str | None = None
) -> bytes:
    """A private key from PEM or DER (PKCS#8 or traditional), returned as unencrypted PKCS#8 DER bytes.

    An encrypted key is opened with the passphrase from ``--key-passphrase-file`` or ``--key-passphrase-env``
    (``passphrase_file``/``passphrase_env``), else from the prompt on a terminal.
    """
    data = _read_pem(path, "private key")
    loader = (
        serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    )
    try:
        key = loader(data, password=None)
    except TypeError:
        if passphrase_file is None and passphrase_env is None and not sys.stdin.isatty():
            raise UsageError(
                f"{path}: the key is encrypted; give --key-passphrase-file or --key-passphrase-env"
            ) from None
        secret = read_password(
            password_file=passphrase_file,
            password_env=passphrase_env,
            prompt=f"Passphrase for {path}",
            confirm=False,
            flags=KEY_PASSPHRASE_FLAGS,
        )
        assert secret is not None  # with a prompt, read_password returns the answer or raises
        try:
            key = loader(data, password=secret.encode())
        except (ValueError, TypeError):
            raise InputError("wrong passphrase for this private key", path=path) from None
    except ValueError:
        raise InputError("not a private key (PEM or DER)", path=path) from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@contextmanager
def progress_handlers(enabled: bool) -> Iterator[list[HandlerSpec]]:
    """Handlers for a workflow's ``handlers``: one progress bar per stage (open, scan, send, ...) on stderr.

    On a terminal only, and not when ``enabled`` is false (``--json``): then there are none, and the
    workflow builds no :class:`~dcmseal.events.Progress` event at all.
    """
    if not enabled or not err_console.is_terminal:
        yield []
        return
    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(event: events.Progress) -> None:
            total = max(event.total, 1)
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=total)
            bar.update(tasks[event.stage], completed=event.done, total=total)

        yield [(events.Progress, update)]
