"""The command-line parameters several commands share, each declared once, with their resolution to bytes.

Imported by every command module that main.py loads on demand, so it must stay as light as ``common``: typer,
the standard library and what ``common`` already loads, nothing that reaches pydicom or the workflows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from cryptography.hazmat.primitives import serialization

from dcmseal.cli.common import err_console, load_certificate, load_private_key, read_password
from dcmseal.errors import UsageError

if TYPE_CHECKING:
    from dcmseal.webauth import HttpCredentials

__all__ = [
    "AllowWeakPassword",
    "Cert",
    "Credentials",
    "Force",
    "HttpTokenEnv",
    "HttpTokenFile",
    "HttpUser",
    "HttpUserPasswordEnv",
    "HttpUserPasswordFile",
    "Json",
    "Key",
    "KeyPassphraseEnv",
    "KeyPassphraseFile",
    "Medium",
    "PasswordEnv",
    "PasswordFile",
    "PasswordOnArgv",
    "Registry",
    "Workers",
    "read_credentials",
    "read_http_credentials",
    "warn_weak_password",
]

PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file", help="Read the password from the first line of this file (- : standard input)."
    ),
]
PasswordEnv = Annotated[
    str | None, typer.Option("--password-env", help="Read the password from this environment variable.")
]
#: Hidden: only there to refuse a password on the command line with a clear message (refuse_argv_password).
PasswordOnArgv = Annotated[str | None, typer.Option("--password", hidden=True)]
AllowWeakPassword = Annotated[
    bool,
    typer.Option("--allow-weak-password", help="Accept a password the policy refuses (test setups only)."),
]
Key = Annotated[
    list[Path] | None, typer.Option("--key", "-k", help="RSA private key (PEM/DER, PKCS#8); repeatable.")
]
KeyPassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--key-passphrase-file",
        help="An encrypted --key's passphrase, from the first line of this file (- : stdin).",
    ),
]
KeyPassphraseEnv = Annotated[
    str | None,
    typer.Option(
        "--key-passphrase-env", help="An encrypted --key's passphrase, from this environment variable."
    ),
]
Cert = Annotated[
    list[Path] | None,
    typer.Option("--cert", help="Certificate of each --key, in the same order (optional)."),
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", help="Processes to use (0 = one per core). [env var: DCMSEAL_WORKERS]"),
]
AcceptUnprotected = Annotated[
    bool,
    typer.Option(
        "--accept-unprotected",
        help="Also open envelopes with no digest or signature inside (plain `openssl cms -encrypt`); "
        "their integrity is NOT verified, and every report says so.",
    ),
]
HttpUser = Annotated[
    str | None,
    typer.Option("--user", help="DICOMweb user (HTTP Basic authentication); its password is asked."),
]
HttpUserPasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--user-password-file", help="The --user password, from the first line of this file (- : stdin)."
    ),
]
HttpUserPasswordEnv = Annotated[
    str | None,
    typer.Option("--user-password-env", help="The --user password, from this environment variable."),
]
HttpTokenFile = Annotated[
    Path | None,
    typer.Option("--token-file", help="DICOMweb bearer token (RFC 6750), from the first line of this file."),
]
HttpTokenEnv = Annotated[
    str | None, typer.Option("--token-env", help="DICOMweb bearer token, from this environment variable.")
]
Json = Annotated[bool, typer.Option("--json", help="Write one JSON document to stdout (no progress).")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]
Registry = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URL (SQLAlchemy), e.g. postgresql+psycopg://... [env var: DCMSEAL_REGISTRY]",
    ),
]
Medium = Annotated[
    Path,
    typer.Argument(metavar="MEDIUM", help="An ISO image, a folder (mounted disc, USB stick) or a zip."),
]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What --password-file/--password-env, --key and --cert name, read and checked for the workflows."""

    passwords: tuple[bytes, ...]
    private_keys: tuple[bytes, ...]  # unencrypted PKCS#8 DER
    certificates: tuple[bytes, ...]  # DER, paired with private_keys by position

    def ask_password(self) -> Callable[[], str] | None:
        """A prompt for when the input turns out to be encrypted: only with no key and a terminal to ask."""
        if self.private_keys or not sys.stdin.isatty():
            return None
        return _ask_password


def _ask_password() -> str:
    answer = read_password(password_file=None, password_env=None, prompt="Password", confirm=False)
    assert answer is not None  # with a prompt, read_password returns the answer or raises
    return answer


def read_credentials(
    *,
    password_file: Path | None,
    password_env: str | None,
    keys: list[Path] | None,
    certs: list[Path] | None = None,
    key_passphrase_file: Path | None = None,
    key_passphrase_env: str | None = None,
    prompt: str | None = None,
) -> Credentials:
    """Read the password, the private keys and their certificates; ``prompt`` asks if nothing was given.

    An encrypted key opens with ``key_passphrase_file``/``key_passphrase_env`` (--key-passphrase-file/-env).
    """
    keys, certs = keys or [], certs or []
    if certs and len(certs) != len(keys):
        raise UsageError("give one --cert per --key, in the same order, or none")
    text = read_password(
        password_file=password_file,
        password_env=password_env,
        prompt=None if keys else prompt,
        confirm=False,
    )
    return Credentials(
        passwords=(text.encode("ascii"),) if text is not None else (),
        private_keys=tuple(
            load_private_key(k, passphrase_file=key_passphrase_file, passphrase_env=key_passphrase_env)
            for k in keys
        ),
        certificates=tuple(load_certificate(c).public_bytes(serialization.Encoding.DER) for c in certs),
    )


def warn_weak_password(problems: Sequence[str]) -> None:
    """Say why the policy would have refused a password that --allow-weak-password let through.

    The policy itself is the library's (:func:`dcmseal.keys.check_password`, applied by the workflows);
    this only renders what it found.
    """
    if problems:
        err_console.print(
            "warning: weak password accepted because of --allow-weak-password: " + "; ".join(problems),
            style="bold yellow",
        )


def read_http_credentials(
    *,
    user: str | None,
    password_file: Path | None,
    password_env: str | None,
    token_file: Path | None,
    token_env: str | None,
) -> HttpCredentials | None:
    """--user with its password (file, variable or prompt), or a bearer token (file or variable); None if none."""
    from dcmseal.webauth import HttpCredentials

    if (password_file or password_env) and user is None:
        raise UsageError("--user-password-file and --user-password-env go with --user")
    if (token_file or token_env) and user is not None:
        raise UsageError("give --user or a bearer token (--token-file, --token-env), not both")
    if token_file is not None or token_env is not None:
        token = read_password(
            password_file=token_file,
            password_env=token_env,
            prompt=None,
            confirm=False,
            flags=("--token-file", "--token-env"),
        )
        return HttpCredentials(token=token)
    if user is None:
        return None
    if password_file is None and password_env is None and not sys.stdin.isatty():
        raise UsageError("--user needs --user-password-file or --user-password-env (no terminal to ask on)")
    password = read_password(
        password_file=password_file,
        password_env=password_env,
        prompt=f"HTTP password of {user}",
        confirm=False,
        flags=("--user-password-file", "--user-password-env"),
    )
    return HttpCredentials(username=user, password=password)
