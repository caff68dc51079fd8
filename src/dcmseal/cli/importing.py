"""The import command: a medium into a PACS, over C-STORE or STOW-RS, scanned, reconciled and journaled."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dcmseal.cli import options
from dcmseal.cli.common import (
    err_console,
    out_console,
    print_json,
    read_password,
    refuse_argv_password,
    stage_progress,
    user_errors,
)
from dcmseal.cli.context import audit_sink, operator_name
from dcmseal.config import default_import_journal, default_quarantine_directory, load_settings
from dcmseal.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from dcmseal.importer.verify import Verification

__all__ = ["import_command"]

_STYLES = {"failed": "red", "quarantined": "bold red", "skipped": "dim", "pending": "yellow"}


def import_command(
    medium: options.Medium,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="dicom://AET@host:port (C-STORE) or http(s)://host/dicom-web (STOW-RS).",
            show_default=False,
        ),
    ],
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    key: options.Key = None,
    cert: options.Cert = None,
    reconcile: Annotated[
        Path | None,
        typer.Option(
            "--reconcile", help="Mapping file (CSV or JSON): foreign patient/accession to local ones."
        ),
    ] = None,
    uids: Annotated[
        str, typer.Option("--uids", help="keep the Study/Series/SOP Instance UIDs, or regenerate them.")
    ] = "keep",
    quarantine: Annotated[
        Path | None, typer.Option("--quarantine", help="Folder for files that cannot be made safe.")
    ] = None,
    journal: Annotated[
        Path | None, typer.Option("--journal", help="The import journal (SQLite); a rerun with it resumes.")
    ] = None,
    aet: Annotated[
        str | None, typer.Option("--aet", help="Our calling AE title [env var: DCMSEAL_AE_TITLE].")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="HTTP basic authentication user (STOW-RS).")
    ] = None,
    user_password_file: Annotated[
        Path | None, typer.Option("--user-password-file", help="The --user password, from a file.")
    ] = None,
    user_password_env: Annotated[
        str | None,
        typer.Option("--user-password-env", help="The --user password, from this environment variable."),
    ] = None,
    keep_sent: Annotated[
        Path | None, typer.Option("--keep-sent", help="Also keep a copy of every file sent in this folder.")
    ] = None,
    retries: Annotated[int, typer.Option("--retries", help="Attempts per instance when the PACS fails.")] = 5,
    retry_time: Annotated[
        float,
        typer.Option("--retry-time", help="Seconds of retrying at most, per instance, before giving up."),
    ] = 120.0,
    retry_delay: Annotated[
        float,
        typer.Option("--retry-delay", help="First pause between attempts, doubled each time (seconds)."),
    ] = 1.0,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="After sending, ask the PACS (QIDO-RS or C-FIND, one query per study) whether it holds what it "
            "confirmed; an instance it confirmed but does not hold is failed, so a rerun sends it again. A PACS "
            "that cannot be asked keeps its confirmations, with a note.",
        ),
    ] = True,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes to open the medium with.")
    ] = None,
    as_json: options.Json = False,
) -> None:
    """Import a medium into a PACS: open, scan, sanitize or quarantine, reconcile, send, verify, journal.

    Exit code 0 when every instance is stored, 1 when any failed or is held for reconciliation, 3 when the PACS
    failed, 4 when files were quarantined (and nothing failed).
    """
    from dcmseal.importer import RetryPolicy, State, UidPolicy, load_reconciliation, parse_target
    from dcmseal.importer.pipeline import ImportRequest, import_medium

    with user_errors(as_json=as_json):
        refuse_argv_password(password)
        settings = load_settings(overrides={"workers": workers, "ae_title": aet})
        target = parse_target(to)
        try:
            policy = UidPolicy(uids)
        except ValueError:
            raise UsageError(f"--uids must be keep or regenerate, not {uids!r}") from None
        if (user_password_file or user_password_env) and user is None:
            raise UsageError("--user-password-file and --user-password-env go with --user")
        http_password = None
        if user is not None:
            if user_password_file is None and user_password_env is None and not sys.stdin.isatty():
                raise UsageError(
                    "--user needs --user-password-file or --user-password-env (no terminal to ask on)"
                )
            http_password = read_password(
                password_file=user_password_file,
                password_env=user_password_env,
                prompt=f"HTTP password of {user}",
                confirm=False,
            )
        credentials = options.read_credentials(
            password_file=password_file, password_env=password_env, keys=key, certs=cert
        )
        mapping = load_reconciliation(reconcile) if reconcile is not None else None
        request = ImportRequest(
            medium=medium,
            target=target,
            operator=operator_name(),
            journal=journal or default_import_journal(),
            quarantine=quarantine or default_quarantine_directory(),
            passwords=credentials.passwords,
            private_keys=credentials.private_keys,
            certificates=credentials.certificates,
            reconciliation=mapping,
            uid_policy=policy,
            calling_aet=settings.ae_title,
            username=user,
            http_password=http_password,
            retry=RetryPolicy(attempts=retries, initial_delay_s=retry_delay, max_total_s=retry_time),
            keep_sent=keep_sent,
            max_iterations=settings.max_pbkdf2_iterations,
            workers=settings.workers,
            ask_password=credentials.ask_password(),
            verify=verify,
        )
        with stage_progress(not as_json) as progress:
            result = import_medium(request, audit=audit_sink(settings), progress=progress)

    if as_json:
        print_json(result.to_json())
    else:
        table = Table(show_edge=False, pad_edge=False)
        for column in ("file on the medium", "outcome", "reason"):
            table.add_column(column, overflow="fold")
        for f in result.files:
            detail = f.reason or ""
            if f.changes and f.status is not State.STORED:  # a stored file's reason names the changes
                detail = f"{detail} (sanitized: {'; '.join(f.changes)})".strip()
            table.add_row(f.path, f.outcome, detail, style=_STYLES.get(f.status.value))
        out_console.print(table)
        for finding in result.medium_findings:
            err_console.print(f"medium: {finding.severity.value}: {finding.message}", style="yellow")
        for note in result.notes:
            err_console.print(f"note: {note}", style="dim")
        if result.verification is not None:
            err_console.print(_verification_line(result.verification), style="dim", soft_wrap=True)
        stored = result.count(State.STORED)
        earlier = sum(1 for f in result.files if f.earlier_run)
        err_console.print(
            f"{stored} stored ({earlier} by an earlier run), {result.count(State.FAILED)} failed "
            f"({result.held} held for reconciliation), {result.count(State.QUARANTINED)} quarantined, "
            f"{result.count(State.SKIPPED)} skipped -> {result.target}; journal {result.journal}",
            style="bold green" if result.ok and not result.count(State.QUARANTINED) else "bold yellow",
        )
    if result.peer_error is not None:
        err_console.print(f"error: {result.peer_error}", style="bold red", soft_wrap=True)
        raise typer.Exit(int(ExitCode.PEER))
    if not result.ok:
        raise typer.Exit(int(ExitCode.INPUT))
    if result.count(State.QUARANTINED):
        raise typer.Exit(int(ExitCode.FINDINGS))


def _verification_line(v: Verification) -> str:
    """What the check after the send found, in one line: held, not held, left unchecked."""
    line = (
        f"verified with {v.query}: {len(v.held)} held, {len(v.not_held)} not held "
        f"({v.queries} quer{'y' if v.queries == 1 else 'ies'} for {v.studies_checked} of {v.studies} stud"
        f"{'y' if v.studies == 1 else 'ies'})"
    )
    if v.carried_over:
        line += f"; {v.carried_over} confirmed by an earlier run and checked now"
    if v.unverified:
        line += f"; {v.unverified} left unchecked (a rerun asks again)"
    return line
