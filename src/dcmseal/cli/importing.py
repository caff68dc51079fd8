"""The import command: a medium into a PACS, over C-STORE or STOW-RS, scanned, reconciled and journaled."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from dcmseal.cli.context import audit_sink, operator_name
from dcmseal.config import default_import_journal, default_quarantine_directory
from dcmseal.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from dcmseal.importer import RetryPolicy
    from dcmseal.importer.reconcile import ReconciledStudy
    from dcmseal.importer.verify import Verification
    from dcmseal.importer.worklist import MatchRules, WorklistService

__all__ = ["import_command", "reconcile_command"]

_STYLES = {"failed": "red", "quarantined": "bold red", "skipped": "dim", "pending": "yellow"}

# The options `import` and `reconcile` share, declared once.
CallingAet = Annotated[
    str | None, typer.Option("--aet", help="Our calling AE title [env var: DCMSEAL_AE_TITLE].")
]
Reconcile = Annotated[
    Path | None,
    typer.Option(
        "--reconcile",
        help="Mapping file (CSV or JSON): foreign patient/accession to local ones (asked before the worklist).",
    ),
]
Worklist = Annotated[
    str | None,
    typer.Option(
        "--worklist",
        help="Modality Worklist SCP, dicom://AET@host:port: one C-FIND per foreign study for the local patient "
        "and order; exactly one match coerces the study, none or several hold it.",
        show_default=False,
    ),
]
Match = Annotated[
    str,
    typer.Option(
        "--match",
        help="Keys that must agree with a worklist entry: name, birth, sex, accession, id; 'key?' = only when "
        "both sides have it.",
    ),
]
Scheduled = Annotated[
    str | None,
    typer.Option(
        "--scheduled",
        help="Only worklist entries scheduled on this date or range (YYYYMMDD-YYYYMMDD, today).",
    ),
]
StationAet = Annotated[
    str | None,
    typer.Option("--station-aet", help="Only worklist entries scheduled for this station AE title."),
]
Modality = Annotated[
    str | None,
    typer.Option("--modality", help="Only worklist entries of this modality (e.g. OT for imports)."),
]
WorklistTimeout = Annotated[
    float,
    typer.Option("--worklist-timeout", help="Seconds to wait for the worklist (connection and each answer)."),
]


def import_command(
    medium: options.Medium,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="dicom://AET@host[:port] (C-STORE; port 104 by default) or http(s)://host/dicom-web (STOW-RS).",
            show_default=False,
        ),
    ],
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    key: options.Key = None,
    cert: options.Cert = None,
    key_passphrase_file: options.KeyPassphraseFile = None,
    key_passphrase_env: options.KeyPassphraseEnv = None,
    accept_unprotected: options.AcceptUnprotected = False,
    reconcile: Reconcile = None,
    worklist: Worklist = None,
    match: Match = "name,birth,sex?",
    scheduled: Scheduled = None,
    station_aet: StationAet = None,
    modality: Modality = None,
    worklist_timeout: WorklistTimeout = 10.0,
    uids: Annotated[
        str, typer.Option("--uids", help="keep the Study/Series/SOP Instance UIDs, or regenerate them.")
    ] = "keep",
    quarantine: Annotated[
        Path | None, typer.Option("--quarantine", help="Folder for files that cannot be made safe.")
    ] = None,
    journal: Annotated[
        Path | None, typer.Option("--journal", help="The import journal (SQLite); a rerun with it resumes.")
    ] = None,
    aet: CallingAet = None,
    user: options.HttpUser = None,
    user_password_file: options.HttpUserPasswordFile = None,
    user_password_env: options.HttpUserPasswordEnv = None,
    token_file: options.HttpTokenFile = None,
    token_env: options.HttpTokenEnv = None,
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
    resend_in_doubt: Annotated[
        bool,
        typer.Option(
            "--resend-in-doubt",
            help="Send again what an interrupted run sent without getting an answer, when the PACS cannot be "
            "asked whether it holds it (no QIDO-RS or C-FIND, e.g. DCMTK storescp). Without it such instances "
            "stay failed as 'in doubt', because sending them blind may store them twice. A PACS that can be "
            "asked is always asked first.",
        ),
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes to open the medium with.")
    ] = None,
    as_json: options.Json = False,
) -> None:
    """Import a medium into a PACS: open, scan, sanitize or quarantine, reconcile, send, verify, journal.

    Exit code 0 when every instance is stored, 1 when any failed or is held for reconciliation, 3 when the PACS
    or the worklist failed (nothing is sent when the worklist cannot be asked), 4 when files were quarantined
    (and nothing failed).
    """
    from dcmseal.importer import RetryPolicy, State, UidPolicy, load_reconciliation, parse_target
    from dcmseal.importer.pipeline import ImportRequest, import_medium

    with user_errors(as_json=as_json):
        refuse_argv_password(password)
        settings = cli_settings(workers=workers, ae_title=aet)
        target = parse_target(to)
        try:
            policy = UidPolicy(uids)
        except ValueError:
            raise UsageError(f"--uids must be keep or regenerate, not {uids!r}") from None
        http = options.read_http_credentials(
            user=user,
            password_file=user_password_file,
            password_env=user_password_env,
            token_file=token_file,
            token_env=token_env,
        )
        credentials = options.read_credentials(
            password_file=password_file,
            password_env=password_env,
            keys=key,
            certs=cert,
            key_passphrase_file=key_passphrase_file,
            key_passphrase_env=key_passphrase_env,
        )
        mapping = load_reconciliation(reconcile) if reconcile is not None else None
        retry = RetryPolicy(attempts=retries, initial_delay_s=retry_delay, max_total_s=retry_time)
        service, rules = _worklist(
            worklist, match, scheduled, station_aet, modality, settings.ae_title, worklist_timeout, retry
        )
        request = ImportRequest(
            medium=medium,
            target=target,
            operator=operator_name(),
            journal=journal or default_import_journal(settings),
            quarantine=quarantine or default_quarantine_directory(settings),
            passwords=credentials.passwords,
            private_keys=credentials.private_keys,
            certificates=credentials.certificates,
            reconciliation=mapping,
            worklist=service,
            match_rules=rules,
            uid_policy=policy,
            calling_aet=settings.ae_title,
            username=http.username if http else None,
            http_password=http.password if http else None,
            http_token=http.token if http else None,
            retry=retry,
            keep_sent=keep_sent,
            max_iterations=settings.max_pbkdf2_iterations,
            workers=settings.workers,
            ask_password=credentials.ask_password(),
            verify=verify,
            resend_in_doubt=resend_in_doubt,
            accept_unprotected=accept_unprotected,
            kdf_budget_per_medium=settings.kdf_budget_per_medium,
        )
        with progress_handlers(not as_json) as handlers:
            result = import_medium(replace(request, handlers=handlers), audit=audit_sink(settings))

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
        print_table(table)
        for finding in result.medium_findings:
            err_console.print(f"medium: {finding.severity.value}: {finding.message}", style="yellow")
        for note in result.notes:
            err_console.print(f"note: {note}", style="dim")
        for line in _reconciliation_lines(result.reconciliation):
            err_console.print(line, soft_wrap=True)
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


def _worklist(
    url: str | None,
    match: str,
    scheduled: str | None,
    station_aet: str | None,
    modality: str | None,
    calling_aet: str,
    timeout_s: float,
    retry: RetryPolicy | None = None,
) -> tuple[WorklistService | None, MatchRules | None]:
    """The worklist and its rules from the options, or (None, None) without --worklist; ``retry`` is the
    import's own policy (--retries, --retry-delay, --retry-time), so the worklist is retried as the send is."""
    if url is None:
        return None, None
    from dcmseal.importer.worklist import parse_worklist

    return parse_worklist(
        url,
        match=match,
        scheduled=scheduled,
        station_aet=station_aet,
        modality=modality,
        calling_aet=calling_aet,
        timeout_s=timeout_s,
        retry=retry,
    )


def _reconciliation_lines(studies: Sequence[ReconciledStudy]) -> list[str]:
    """One line per foreign study (foreign -> local, or held and why), then each held study's candidates."""
    from dcmseal.importer.reconcile import StudyHeld

    lines = []
    for study in studies:
        foreign = study.foreign
        who = f"{foreign.patient_name or '(no name)'} ({foreign.patient_id or 'no ID'})"
        decision = study.decision
        head = f"study {foreign.study_instance_uid} [{study.instances} instance(s)], {who}"
        if isinstance(decision, StudyHeld):
            lines.append(f"{head}: {decision.reason}")
            lines.extend(
                f"  candidate {n}: {c.describe()}" for n, c in enumerate(decision.candidates, start=1)
            )
        else:
            local = f"{decision.patient.patient_name} ({decision.patient.patient_id})"
            accession = f", accession {decision.accession}" if decision.accession else ""
            lines.append(f"{head} -> {local}{accession} [{decision.source}]")
    return lines


def reconcile_command(
    medium: options.Medium,
    reconcile: Reconcile = None,
    worklist: Worklist = None,
    match: Match = "name,birth,sex?",
    scheduled: Scheduled = None,
    station_aet: StationAet = None,
    modality: Modality = None,
    worklist_timeout: WorklistTimeout = 10.0,
    interactive: Annotated[
        bool,
        typer.Option(
            "--interactive",
            help="On a terminal, choose among the candidates of each held study; the choice is kept in the "
            "journal, so the import and later runs do not ask again.",
        ),
    ] = False,
    journal: Annotated[
        Path | None, typer.Option("--journal", help="The import journal that keeps the choices.")
    ] = None,
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    key: options.Key = None,
    cert: options.Cert = None,
    key_passphrase_file: options.KeyPassphraseFile = None,
    key_passphrase_env: options.KeyPassphraseEnv = None,
    aet: CallingAet = None,
    as_json: options.Json = False,
) -> None:
    """Show how each foreign study of a medium would be reconciled (mapping file, then worklist); send nothing.

    Exit code 0 when every study has its local identity, 1 when any is held, 3 when the worklist failed.
    """
    from dcmseal.importer import load_reconciliation
    from dcmseal.importer.plan import ReconciliationPlanRequest, plan_reconciliation, record_choice
    from dcmseal.importer.reconcile import StudyHeld, decision_for_entry

    with user_errors():
        refuse_argv_password(password)
        if reconcile is None and worklist is None:
            raise UsageError("reconcile needs --worklist or --reconcile (a mapping file), or both")
        if interactive and (as_json or not sys.stdin.isatty()):
            raise UsageError("--interactive needs a terminal (and no --json)")
        settings = cli_settings(ae_title=aet)
        mapping = load_reconciliation(reconcile) if reconcile is not None else None
        service, rules = _worklist(
            worklist, match, scheduled, station_aet, modality, settings.ae_title, worklist_timeout
        )
        credentials = options.read_credentials(
            password_file=password_file,
            password_env=password_env,
            keys=key,
            certs=cert,
            key_passphrase_file=key_passphrase_file,
            key_passphrase_env=key_passphrase_env,
        )
        journal_path = journal or default_import_journal(settings)
        operator = operator_name()
        plan = plan_reconciliation(
            ReconciliationPlanRequest(
                medium=medium,
                operator=operator,
                journal=journal_path,
                passwords=credentials.passwords,
                private_keys=credentials.private_keys,
                certificates=credentials.certificates,
                reconciliation=mapping,
                worklist=service,
                match_rules=rules,
                max_iterations=settings.max_pbkdf2_iterations,
                workers=settings.workers,
                ask_password=credentials.ask_password(),
            )
        )
        if interactive:
            chosen = {}
            for study in plan.held:
                decision = study.decision
                assert isinstance(decision, StudyHeld)
                if not decision.candidates:
                    continue
                for line in _reconciliation_lines([study]):
                    out_console.print(line, soft_wrap=True, highlight=False)
                answer = typer.prompt(
                    f"choose 1-{len(decision.candidates)}, or 0 to leave the study held", type=int, default=0
                )
                if 1 <= answer <= len(decision.candidates):
                    entry = decision.candidates[answer - 1]
                    record_choice(
                        journal_path, plan.fingerprint, study.foreign.study_instance_uid, entry, operator
                    )
                    chosen[study.foreign.study_instance_uid] = decision_for_entry(
                        entry, f"chosen by {operator}"
                    )
            if chosen:
                plan = replace(
                    plan,
                    studies=tuple(
                        replace(s, decision=chosen.get(s.foreign.study_instance_uid, s.decision))
                        for s in plan.studies
                    ),
                )
    if as_json:
        print_json(plan.to_json())
    else:
        for line in _reconciliation_lines(plan.studies):
            out_console.print(line, soft_wrap=True, highlight=False)
        for name in plan.unreadable:
            err_console.print(f"note: {name}: not read as DICOM (left out of the plan)", style="dim")
        held = len(plan.held)
        err_console.print(
            f"{len(plan.studies) - held} of {len(plan.studies)} stud{'y' if len(plan.studies) == 1 else 'ies'} "
            f"reconciled, {held} held; nothing was sent",
            style="bold green" if not held else "bold yellow",
        )
    if plan.held:
        raise typer.Exit(int(ExitCode.INPUT))
