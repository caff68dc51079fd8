"""What every command shares: consoles, the one error funnel, password and key sources, JSON output."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from dcmseal.errors import DcmsealError, ExitCode, InputError, UsageError
from dcmseal.keys import encode_password

__all__ = [
    "PASSWORD_ON_ARGV_MESSAGE",
    "configure_logging",
    "err_console",
    "load_certificate",
    "load_private_key",
    "out_console",
    "print_json",
    "read_password",
    "refuse_argv_password",
    "stage_progress",
    "user_errors",
]

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

    With ``as_json`` the error is also the one JSON document on stdout (``dcmseal.error/1``), so a caller
    parsing ``--json`` gets one on failure too.
    """
    try:
        yield
    except DcmsealError as exc:
        if os.environ.get("DCMSEAL_DEBUG") == "1":
            err_console.print_exception()
        err_console.print(f"error: {exc}", style="bold red", soft_wrap=True)
        if as_json:
            print_json({"schema": "dcmseal.error/1", "error": str(exc), "exit_code": int(exc.exit_code)})
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        err_console.print("interrupted", style="bold red")
        if as_json:
            print_json(
                {"schema": "dcmseal.error/1", "error": "interrupted", "exit_code": int(ExitCode.INTERRUPTED)}
            )
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def print_json(document: dict[str, Any]) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def read_password(
    *,
    password_file: Path | None,
    password_env: str | None,
    prompt: str | None,
    confirm: bool,
) -> str | None:
    """The password from a file, an environment variable or the prompt, in that order; None if none.

    The file's first line is the password (a trailing newline is not part of it). Passwords are checked
    to be ISO-IR 6 here, before any work, so a bad one fails fast.
    """
    if password_file is not None and password_env is not None:
        raise UsageError("give --password-file or --password-env, not both")
    text: str | None = None
    if password_file is not None:
        try:
            raw = password_file.read_bytes()
        except OSError as exc:
            raise InputError(
                f"cannot read the password file: {exc.strerror or exc}", path=password_file
            ) from None
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
            raise UsageError(
                "no password given and no terminal to ask on: use --password-file or --password-env"
            )
        text = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    if text is not None:
        encode_password(text)  # ISO-IR 6 check with its own clear message
    return text


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


def load_private_key(path: Path, *, passphrase_env: str = "DCMSEAL_KEY_PASSPHRASE") -> bytes:  # noqa: S107
    """A private key from PEM or DER (PKCS#8 or traditional), returned as unencrypted PKCS#8 DER bytes.

    An encrypted key is opened with the passphrase in ``$DCMSEAL_KEY_PASSPHRASE`` or from the prompt.
    """
    data = _read_pem(path, "private key")
    loader = (
        serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    )
    try:
        key = loader(data, password=None)
    except TypeError:
        secret = os.environ.get(passphrase_env)
        if secret is None:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"{path}: the key is encrypted; set {passphrase_env} or run in a terminal"
                ) from None
            secret = typer.prompt(f"Passphrase for {path}", hide_input=True)
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
def stage_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """One progress bar per stage (open, scan, send, ...) on stderr, on a terminal only."""
    if not enabled or not err_console.is_terminal:
        yield lambda _stage, _done, _total: None
        return
    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        tasks: dict[str, object] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=max(total, 1))
            progress.update(tasks[stage], completed=done, total=max(total, 1))  # type: ignore[arg-type]

        yield update
