"""The password commands: generate a passphrase, check a password's strength at our PBKDF2 cost."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dcmseal.cli import options
from dcmseal.cli.common import cli_settings, err_console, out_console, print_json, user_errors
from dcmseal.errors import ExitCode, UsageError
from dcmseal.keys import encode_password, estimate_strength, generate_passphrase, passphrase_entropy_bits

__all__ = ["password_app"]

password_app = typer.Typer(
    name="password",
    help="Generate and check passwords (PS3.15 D.1: printable ASCII only).",
    no_args_is_help=True,
)


@password_app.command("new")
def new(
    words: Annotated[int, typer.Option("--words", "-w", help="Words from the EFF list (7 = 90 bits).")] = 7,
    as_json: options.Json = False,
) -> None:
    """Print a generated passphrase that is easy to read over the phone (at least 80 bits)."""
    with user_errors():
        try:
            phrase = generate_passphrase(words=words)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        bits = passphrase_entropy_bits(words)
        if as_json:
            print_json(
                {"schema": "dcmseal.password.new/1", "passphrase": phrase, "words": words, "bits": bits}
            )
            return
        sys.stdout.write(phrase + "\n")
        err_console.print(
            f"{words} words, {bits:.1f} bits; send it by another route than the medium", style="dim"
        )


@password_app.command("check")
def check(
    context: Annotated[
        list[str] | None,
        typer.Option("--context", help="Patient name, ID or other words the password must avoid."),
    ] = None,
    as_json: options.Json = False,
) -> None:
    """Read a password from stdin (asked for without echo on a terminal); print its strength and offline cracking time at the configured PBKDF2 cost.

    Exits 0 when the policy accepts it, 1 when it refuses it.
    """
    with user_errors():
        settings = cli_settings()
        if sys.stdin.isatty():
            # On a terminal, asked for without echo (the screen and its scrollback never show it).
            text = typer.prompt("Password to check", hide_input=True)
        else:
            line = sys.stdin.readline()
            text = line[:-1] if line.endswith("\n") else line
        encode_password(text)
        strength = estimate_strength(
            text, context=context or (), iterations=settings.pbkdf2_iterations, prf=settings.pbkdf2_prf
        )
        if as_json:
            print_json({"schema": "dcmseal.password.check/1", **strength.to_json()})
        else:
            verdict = "accepted" if strength.acceptable else "refused"
            out_console.print(
                f"{verdict}: score {strength.score}/4, about {strength.entropy_bits:.0f} bits; "
                f"offline attack at PBKDF2-HMAC-{settings.pbkdf2_prf.upper()} x {settings.pbkdf2_iterations:,}: "
                f"{strength.crack_time_display}",
                style="green" if strength.acceptable else "red",
            )
            for problem in strength.problems:
                out_console.print(f"  - {problem}")
        if not strength.acceptable:
            raise typer.Exit(int(ExitCode.INPUT))
