"""The scan and sanitize commands: verdicts on files and media, and safe copies (or quarantine) of what they find."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dcmseal.cli import options
from dcmseal.cli.common import (
    cli_settings,
    err_console,
    out_console,
    print_json,
    print_table,
    progress_handlers,
    refuse_argv_password,
    user_errors,
)
from dcmseal.cli.context import audit_sink, operator_name, warn
from dcmseal.errors import ExitCode
from dcmseal.reader.containers import printable_name
from dcmseal.scan import ScanReport, Verdict
from dcmseal.scan.workflow import SanitizeRequest, ScanRequest, sanitize, scan

__all__ = ["sanitize_command", "scan_command"]

_STYLE = {Verdict.MALICIOUS: "bold red", Verdict.SUSPICIOUS: "yellow", Verdict.CLEAN: None}


def scan_command(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH", help="Files, folders (mounted media), ISO images or zip archives."),
    ],
    allow_tiff: Annotated[
        bool,
        typer.Option(
            "--allow-tiff/--no-allow-tiff", help="A TIFF dual-personality preamble is clean (PS3.10 §7.5)."
        ),
    ] = True,
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    key: Annotated[
        list[Path] | None,
        typer.Option("--key", "-k", help="RSA private key for Secure DICOM Files; repeatable."),
    ] = None,
    accept_unprotected: options.AcceptUnprotected = False,
    workers: options.Workers = None,
    show_all: Annotated[bool, typer.Option("--all", help="List clean files too.")] = False,
    as_json: options.Json = False,
) -> None:
    """Scan files and media for hostile content: preamble, hidden payloads, trailing data, documents, medium.

    Exit 0 when everything is clean, 4 when anything is suspicious or malicious. Secure DICOM Files are
    scanned after decryption (in memory) when a password or key is given.
    """
    with user_errors():
        refuse_argv_password(password)
        settings = cli_settings(workers=workers)
        credentials = options.read_credentials(
            password_file=password_file, password_env=password_env, keys=key
        )
        request = ScanRequest(
            paths=tuple(paths),
            operator=operator_name(),
            allow_tiff=allow_tiff,
            passwords=credentials.passwords,
            private_keys=credentials.private_keys,
            workers=settings.workers,
            max_iterations=settings.max_pbkdf2_iterations,
            accept_unprotected=accept_unprotected,
            kdf_budget_per_medium=settings.kdf_budget_per_medium,
        )
        with progress_handlers(not as_json) as handlers:
            result = scan(request, audit=audit_sink(settings), handlers=handlers)
        if result.audit_error is not None:
            warn(f"the Security Alert audit message could not be written: {result.audit_error}")
        if as_json:
            print_json(result.to_json())
        else:
            _render_scan(result.report, show_all=show_all)
        if result.exit_code is not ExitCode.OK:
            raise typer.Exit(int(result.exit_code))


def _render_scan(report: ScanReport, *, show_all: bool) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("file", "verdict", "kind", "findings"):
        table.add_column(column, overflow="fold")
    shown = 0
    for f in report.files:
        notable = [x for x in f.findings if x.severity is not Verdict.CLEAN]
        if not notable and not show_all:
            continue
        lines = [f"{x.code}: {x.message}" for x in (f.findings if show_all else notable)]
        table.add_row(
            printable_name(f.path), f.verdict.value, f.kind, "\n".join(lines), style=_STYLE[f.verdict]
        )
        shown += 1
    if shown:
        print_table(table)
    for finding in report.medium_findings:
        style = _STYLE[finding.severity] or "dim"
        out_console.print(f"medium: {finding.code}: {printable_name(finding.message)}", style=style)
    secure = sum(1 for f in report.files if f.kind == "secure")
    summary = (
        f"{len(report.files)} files: {report.count(Verdict.CLEAN)} clean, "
        f"{report.count(Verdict.SUSPICIOUS)} suspicious, {report.count(Verdict.MALICIOUS)} malicious"
    )
    if secure:
        summary += f"; {secure} Secure DICOM File(s) not opened (give --password-file or --key to scan them)"
    err_console.print(f"{summary} -> {report.verdict.value}", style=_STYLE[report.verdict] or "bold green")


def sanitize_command(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH", help="Files or folders to sanitize.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the safe copies (mirrors the inputs).")
    ],
    keep_tiff: Annotated[
        bool, typer.Option("--keep-tiff", help="Keep a valid TIFF dual-personality preamble (PS3.10 §7.5).")
    ] = False,
    quarantine: Annotated[
        Path | None,
        typer.Option("--quarantine", help="Folder for files that cannot be made safe (untouched + record)."),
    ] = None,
    force: options.Force = False,
    as_json: options.Json = False,
) -> None:
    """Write safe copies: zeroed preamble, hidden payload elements and trailing data removed; originals untouched.

    Files that cannot be made safe are refused, and copied untouched to --quarantine with a record of why.
    Exit 0 when every file was written safe, 4 when any was refused.
    """
    with user_errors():
        request = SanitizeRequest(
            paths=tuple(paths),
            out=out,
            operator=operator_name(),
            keep_tiff=keep_tiff,
            quarantine=quarantine,
            overwrite=force,
        )
        with progress_handlers(not as_json) as handlers:
            report = sanitize(request, audit=audit_sink(cli_settings()), handlers=handlers)
        if report.audit_error is not None:
            warn(f"an audit message could not be written: {report.audit_error}")
        if as_json:
            print_json(report.to_json())
        else:
            table = Table(show_edge=False, pad_edge=False)
            for column in ("file", "status", "changes / reason"):
                table.add_column(column, overflow="fold")
            for r in report.files:
                detail = "\n".join(r.changes) if r.output is not None else (r.refused or "")
                style = "yellow" if r.output is None else None
                table.add_row(printable_name(r.source), r.status, detail, style=style)
            print_table(table)
            if report.quarantined:
                err_console.print(
                    f"{len(report.quarantined)} file(s) quarantined in {quarantine}", style="yellow"
                )
            refused = len(report.refused)
            err_console.print(
                f"{len(report.files) - refused} safe file(s) in {out}, {refused} refused",
                style="bold green" if not refused else "bold yellow",
            )
        if report.exit_code is not ExitCode.OK:
            raise typer.Exit(int(report.exit_code))
