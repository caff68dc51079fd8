"""The scan and sanitize commands: verdicts on files and media, and safe copies (or quarantine) of what they find."""

from __future__ import annotations

from collections.abc import Iterator
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
    stage_progress,
    user_errors,
)
from dcmseal.cli.context import audit_sink, operator_name, warn
from dcmseal.errors import DcmsealError, ExitCode, InputError, MissingInputError
from dcmseal.fsutil import relative_output_path
from dcmseal.reader.containers import iter_folder, printable_name
from dcmseal.scan import (
    QuarantineRecord,
    SanitizeResult,
    ScanReport,
    Verdict,
    is_quarantine_dir,
    quarantine_file,
    sanitize_file,
    scan_paths,
)

__all__ = ["sanitize_command", "scan_command"]

_STYLE = {Verdict.MALICIOUS: "bold red", Verdict.SUSPICIOUS: "yellow", Verdict.CLEAN: None}


def _alert(report: ScanReport, paths: list[Path]) -> None:
    """A Security Alert audit event (PS3.15 A.5.3.11) when anything malicious was found."""
    from dcmseal.audit import AuditUser, EventOutcome, security_alert

    malicious = [f.path for f in report.files if f.verdict is Verdict.MALICIOUS]
    malicious += [f.message for f in report.medium_findings if f.severity is Verdict.MALICIOUS]
    if not malicious:
        return
    try:
        audit_sink(cli_settings()).emit(
            security_alert(
                user=AuditUser(user_id=operator_name()),
                description=f"dcmseal scan: malicious content in {len(malicious)} item(s): "
                + "; ".join(malicious[:5]),
                medium_id=", ".join(str(p) for p in paths),
                outcome=EventOutcome.MINOR_FAILURE,
            )
        )
    except (DcmsealError, OSError) as exc:
        warn(f"the Security Alert audit message could not be written: {exc}")


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
        with progress_handlers(not as_json) as handlers:
            report = scan_paths(
                paths,
                allow_tiff=allow_tiff,
                passwords=credentials.passwords,
                private_keys=credentials.private_keys,
                handlers=handlers,
                workers=settings.workers,
                max_iterations=settings.max_pbkdf2_iterations,
                accept_unprotected=accept_unprotected,
                kdf_budget_per_medium=settings.kdf_budget_per_medium,
            )
        _alert(report, paths)
        if as_json:
            print_json(report.to_json())
        else:
            _render_scan(report, show_all=show_all)
        if report.verdict is not Verdict.CLEAN:
            raise typer.Exit(int(ExitCode.FINDINGS))


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


def _targets(paths: list[Path], out: Path) -> Iterator[tuple[Path, Path, str]]:
    """(source, destination, label) for every file, mirroring the inputs' structure under ``out``."""
    several = len(paths) > 1
    for path in paths:
        if path.is_dir():
            if is_quarantine_dir(path):
                continue
            base = Path(path.resolve().name) if several else Path()
            for member in iter_folder(path):
                if member.symlink or member.path is None:
                    continue
                relative = base / member.name
                yield Path(member.path), relative_output_path(out, relative), relative.as_posix()
        elif path.is_file():
            yield path, relative_output_path(out, Path(path.name)), str(path)
        else:
            raise MissingInputError(path)


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
        if quarantine is not None and out.resolve() == quarantine.resolve():
            raise InputError("--quarantine must not be the --out folder", path=quarantine)
        targets = list(_targets(paths, out))
        results: list[SanitizeResult] = []
        records: list[QuarantineRecord] = []
        with stage_progress(not as_json) as progress:
            for index, (src, dst, label) in enumerate(targets, 1):
                result = sanitize_file(src, dst, keep_tiff=keep_tiff, overwrite=force)
                results.append(result)
                if result.output is None and quarantine is not None:
                    records.append(
                        quarantine_file(
                            src,
                            quarantine,
                            reason=result.refused or "refused",
                            findings=result.report.findings,
                            source=label,
                        )
                    )
                progress("sanitize", index, len(targets))
        refused = [r for r in results if r.output is None]
        if as_json:
            print_json(
                {
                    "schema": "dcmseal.sanitize/1",
                    "output": str(out),
                    "quarantine": str(quarantine) if quarantine is not None else None,
                    "files": [r.to_json() for r in results],
                    "quarantined": [q.to_json() for q in records],
                    "summary": {
                        "files": len(results),
                        "sanitized": sum(1 for r in results if r.status == "sanitized"),
                        "copied": sum(1 for r in results if r.status == "copied"),
                        "refused": len(refused),
                        "quarantined": len(records),
                    },
                }
            )
        else:
            table = Table(show_edge=False, pad_edge=False)
            for column in ("file", "status", "changes / reason"):
                table.add_column(column, overflow="fold")
            for r in results:
                detail = "\n".join(r.changes) if r.output is not None else (r.refused or "")
                style = "yellow" if r.output is None else None
                table.add_row(printable_name(r.source), r.status, detail, style=style)
            print_table(table)
            if records:
                err_console.print(f"{len(records)} file(s) quarantined in {quarantine}", style="yellow")
            err_console.print(
                f"{len(results) - len(refused)} safe file(s) in {out}, {len(refused)} refused",
                style="bold green" if not refused else "bold yellow",
            )
        if refused:
            raise typer.Exit(int(ExitCode.FINDINGS))
