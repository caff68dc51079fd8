"""The seal, unseal and inspect commands: Secure DICOM Files from and to Part 10 files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dcmseal import cms
from dcmseal.cli import options
from dcmseal.cli.common import (
    cli_settings,
    err_console,
    is_quiet,
    load_certificate,
    load_private_key,
    out_console,
    print_json,
    print_table,
    read_password,
    refuse_argv_password,
    user_errors,
)
from dcmseal.errors import DcmsealError, UsageError
from dcmseal.fsutil import iter_files
from dcmseal.keys.passwords import sealing_password
from dcmseal.part10 import (
    BatchReport,
    FileOutcome,
    InspectResult,
    SealPlan,
    UnsealPlan,
    inspect_file,
    read_patient_context,
    seal_tree,
    unseal_tree,
)

__all__ = ["inspect", "render_inspect", "seal", "unseal"]


@contextmanager
def _progress(total: int, label: str, *, enabled: bool) -> Iterator[Callable[[FileOutcome], None]]:
    """A progress bar on stderr (TTY only) fed by the workflow's per-file callback."""
    if not enabled or not err_console.is_terminal or total < 2:
        yield lambda _outcome: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda _outcome: progress.advance(task)


def _render_batch(report: BatchReport, *, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(report.to_json())
        return
    table = Table(title=None, show_edge=False, pad_edge=False)
    table.add_column("file", overflow="fold")
    table.add_column("status")
    table.add_column("details", overflow="fold")
    for outcome in report.outcomes:
        if outcome.status == "failed":
            table.add_row(str(outcome.source), "failed", outcome.reason or "", style="red")
            continue
        details: list[str] = []
        result = outcome.result
        status: str = outcome.status.value
        if result is None and outcome.reason:
            details.append(outcome.reason)
        if result is not None:
            details.extend(result.notes)
            if getattr(result, "verified", True) is False:
                status = "unsealed, NOT verified"
            signers = getattr(getattr(result, "decrypted", None), "inner", None)
            if signers is not None and signers.signers:
                details.append("signed by " + ", ".join(s.subject for s in signers.signers))
        table.add_row(
            str(outcome.destination),
            status,
            "; ".join(details),
            style=None if status == outcome.status else "yellow",
        )
    print_table(table)
    skipped = sum(1 for o in report.outcomes if o.status == "skipped")
    ok = len(report.outcomes) - len(report.failed) - skipped
    summary = (
        f"{ok} of {len(report.outcomes)} files {verb}, "
        + (f"{skipped} already {verb} by an earlier run, " if skipped else "")
        + f"{len(report.failed)} failed; "
        f"{report.pbkdf2_derivations} PBKDF2 derivation(s), {report.workers} worker(s), {report.elapsed_s:.2f} s"
    )
    if report.not_verified:
        summary += f"; {len(report.not_verified)} NOT verified (no digest or signature inside)"
    err_console.print(
        summary, style="bold green" if not report.failed and not report.not_verified else "bold yellow"
    )


def _run_batch(
    paths: list[Path], out: Path, plan: SealPlan | UnsealPlan, *, workers: int, force: bool, as_json: bool
) -> None:
    """Seal or unseal (as the plan says) with a progress bar, report, exit non-zero if a file failed."""
    sealing = isinstance(plan, SealPlan)
    total = sum(1 for _ in iter_files(list(paths))) if all(p.exists() for p in paths) else 0
    # Each failure is said once: in the table (or the JSON); only -q, which leaves the table out, logs them.
    log_failures = is_quiet() and not as_json
    with _progress(total, "sealing" if sealing else "unsealing", enabled=not as_json) as advance:
        if isinstance(plan, SealPlan):
            report = seal_tree(
                paths,
                out,
                plan,
                workers=workers,
                overwrite=force,
                on_outcome=advance,
                log_failures=log_failures,
            )
        else:
            report = unseal_tree(
                paths,
                out,
                plan,
                workers=workers,
                overwrite=force,
                on_outcome=advance,
                log_failures=log_failures,
            )
    _render_batch(report, as_json=as_json, verb="sealed" if sealing else "unsealed")
    if report.failed:
        raise typer.Exit(report.exit_code)


def seal(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="PATH", help="Part 10 files or folders (walked; relative paths kept)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the Secure DICOM Files.")],
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    recipient: Annotated[
        list[Path] | None,
        typer.Option("--recipient", "-r", help="Certificate (PEM/DER) of a recipient; repeatable."),
    ] = None,
    sign_key: Annotated[
        Path | None, typer.Option("--sign-key", help="RSA key to sign with (SignedData).")
    ] = None,
    sign_cert: Annotated[
        Path | None, typer.Option("--sign-cert", help="Certificate of the signing key.")
    ] = None,
    key_passphrase_file: options.KeyPassphraseFile = None,
    key_passphrase_env: options.KeyPassphraseEnv = None,
    cipher: Annotated[
        cms.ContentCipher | None, typer.Option("--cipher", help="Content cipher. [env var: DCMSEAL_CIPHER]")
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option("--iterations", help="PBKDF2 iterations. [env var: DCMSEAL_PBKDF2_ITERATIONS]"),
    ] = None,
    prf: Annotated[
        cms.Prf | None, typer.Option("--prf", help="PBKDF2 PRF. [env var: DCMSEAL_PBKDF2_PRF]")
    ] = None,
    salt_bytes: Annotated[
        int | None, typer.Option("--salt-bytes", help="PBKDF2 salt length. [env var: DCMSEAL_SALT_BYTES]")
    ] = None,
    digest: Annotated[
        cms.DigestAlgorithm | None, typer.Option("--digest", help="DigestedData/SignedData digest.")
    ] = None,
    oaep: Annotated[
        bool,
        typer.Option("--oaep", help="RSA-OAEP key transport (outside PS3.15 D.1, which names PKCS#1 v1.5)."),
    ] = False,
    subject_key_id: Annotated[
        bool, typer.Option("--subject-key-id", help="Name certificate recipients by subjectKeyIdentifier.")
    ] = False,
    allow_weak_password: options.AllowWeakPassword = False,
    workers: options.Workers = None,
    force: options.Force = False,
    as_json: options.Json = False,
) -> None:
    """Seal Part 10 files into Secure DICOM Files (PS3.10 §7.4, PS3.15 D.1).

    Every file gets the same recipients: a password (PBKDF2 + RFC 3211, one salt for the whole set) and/or
    certificates (RSA key transport). With no password source and no --recipient, the password is asked
    for twice.
    """
    with user_errors():
        refuse_argv_password(password)
        settings = cli_settings(
            cipher=cipher.value if cipher else None,
            pbkdf2_iterations=iterations,
            pbkdf2_prf=prf.value if prf else None,
            salt_bytes=salt_bytes,
            digest=digest.value if digest else None,
            workers=workers,
        )
        recipients = recipient or []
        asked = password_file is None and password_env is None and not recipients
        text = read_password(
            password_file=password_file,
            password_env=password_env,
            prompt="Password for the sealed files" if asked else None,
            confirm=True,
        )
        password_bytes: bytes | None = None
        kdf: cms.Pbkdf2Params | None = None
        if text is not None:
            files = [p for p, _ in iter_files(list(paths))] if all(p.exists() for p in paths) else []
            sealing = sealing_password(
                text,
                context=read_patient_context(files),
                allow_weak=allow_weak_password,
                iterations=settings.pbkdf2_iterations,
                prf=settings.pbkdf2_prf,
                salt_bytes=settings.salt_bytes,
            )
            options.warn_weak_password(sealing.problems)
            password_bytes, kdf = sealing.password, sealing.kdf
        if (sign_key is None) != (sign_cert is None):
            raise UsageError("signing needs both --sign-key and --sign-cert")
        plan = SealPlan(
            password=password_bytes,
            kdf=kdf,
            certificates=tuple(
                load_certificate(p).public_bytes(serialization.Encoding.DER) for p in recipients
            ),
            key_transport=cms.KeyTransport.RSA_OAEP if oaep else cms.KeyTransport.RSA_PKCS1V15,
            identifier=cms.RecipientIdType.SUBJECT_KEY_ID
            if subject_key_id
            else cms.RecipientIdType.ISSUER_SERIAL,
            cipher=cms.ContentCipher(settings.cipher),
            digest=cms.DigestAlgorithm(settings.digest),
            signer_key=load_private_key(
                sign_key, passphrase_file=key_passphrase_file, passphrase_env=key_passphrase_env
            )
            if sign_key
            else None,
            signer_certificate=load_certificate(sign_cert).public_bytes(serialization.Encoding.DER)
            if sign_cert
            else None,
        )
        plan.signer()  # check key and certificate belong together before any file is read
        for deviation in plan.outside_profile():
            err_console.print(f"warning: {deviation}", style="yellow")
        _run_batch(paths, out, plan, workers=settings.workers, force=force, as_json=as_json)


def unseal(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="Secure DICOM Files or folders of them.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the Part 10 files.")],
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    key: options.Key = None,
    cert: options.Cert = None,
    key_passphrase_file: options.KeyPassphraseFile = None,
    key_passphrase_env: options.KeyPassphraseEnv = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail files whose payload is not Part 10.")
    ] = False,
    keep_preamble: Annotated[
        bool,
        typer.Option(
            "--keep-preamble", help="Write a non-zero preamble as sealed (default: zeroed, PS3.10 §7.5)."
        ),
    ] = False,
    max_iterations: Annotated[
        int | None,
        typer.Option(
            "--max-iterations",
            help="Refuse PBKDF2 counts above this. [env var: DCMSEAL_MAX_PBKDF2_ITERATIONS]",
        ),
    ] = None,
    accept_unprotected: options.AcceptUnprotected = False,
    workers: options.Workers = None,
    force: options.Force = False,
    as_json: options.Json = False,
) -> None:
    """Open Secure DICOM Files with a password or a private key, verify them, and write the Part 10 files.

    A file appears in the output only after its digest or signature verified; a wrong password or an
    altered file leaves nothing behind (one message for both). Certificate validity is never a reason
    to refuse: an old disc must open. A payload whose preamble is not zero (sealed by another writer) is
    written with the preamble zeroed, and said so.
    """
    with user_errors():
        refuse_argv_password(password)
        settings = cli_settings(max_pbkdf2_iterations=max_iterations, workers=workers)
        credentials = options.read_credentials(
            password_file=password_file,
            password_env=password_env,
            keys=key,
            certs=cert,
            key_passphrase_file=key_passphrase_file,
            key_passphrase_env=key_passphrase_env,
            prompt="Password",
        )
        plan = UnsealPlan(
            passwords=credentials.passwords,
            private_keys=credentials.private_keys,
            certificates=credentials.certificates,
            strict=strict,
            max_iterations=settings.max_pbkdf2_iterations,
            max_header_bytes=settings.max_header_bytes,
            accept_unprotected=accept_unprotected,
            keep_preamble=keep_preamble,
            kdf_budget_per_medium=settings.kdf_budget_per_medium,
        )
        _run_batch(paths, out, plan, workers=settings.workers, force=force, as_json=as_json)


def inspect(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH", help="Secure DICOM Files or folders of them to describe (no key needed)."
        ),
    ],
    as_json: options.Json = False,
) -> None:
    """Describe Secure DICOM Files: recipients, PBKDF2 parameters, ciphers, content type, sizes.

    Every file is reported; the exit code is 1 if any could not be described.
    """
    with user_errors():
        files: list[dict[str, object]] = []
        worst = 0
        # A folder is inspected file by file (a sealed study, the root of a medium), as seal and unseal walk it.
        for path, _relative in iter_files(list(paths)):
            try:
                result = inspect_file(path)
            except DcmsealError as exc:
                worst = max(worst, int(exc.exit_code))
                files.append({"path": str(path), "status": "failed", "reason": str(exc)})
                if not as_json:
                    err_console.print(f"error: {exc}", style="bold red", soft_wrap=True)
                continue
            files.append({"status": "ok", **result.to_json()})
            if not as_json:
                render_inspect(result)
        if as_json:
            failed = sum(1 for f in files if f["status"] == "failed")
            print_json(
                {
                    "schema": "dcmseal.inspect/1",
                    "files": files,
                    "summary": {"total": len(files), "ok": len(files) - failed, "failed": failed},
                }
            )
        if worst:
            raise typer.Exit(worst)


def render_inspect(result: InspectResult) -> None:
    """Human rendering of one envelope description (like `openssl cms -cmsout -print`, but readable)."""
    envelope = result.envelope
    out_console.print(f"{result.path}", style="bold")
    summary = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    summary.add_column(style="dim")
    summary.add_column()
    summary.add_row("type", f"EnvelopedData v{envelope.version} ({'BER' if envelope.ber else 'DER'})")
    summary.add_row("content cipher", envelope.content_cipher.asn1_name.replace("_", "-").upper())
    summary.add_row("encrypted content", envelope.content_type)
    summary.add_row("sizes", f"{result.size:,} bytes, {envelope.encrypted_size:,} encrypted")
    summary.add_row("PS3.15 D.1", "conformant envelope" if envelope.in_profile else "outside the profile")
    print_table(summary, is_result=True)
    table = Table(show_edge=False, pad_edge=False)
    for column in ("#", "recipient", "identifies", "algorithms"):
        table.add_column(column, overflow="fold")
    for index, r in enumerate(envelope.recipients):
        if r.kind == "password":
            identifies = f"salt {r.salt}" if r.salt else "-"
            algorithms = (
                f"PBKDF2-HMAC-{(r.prf or 'sha1').upper()} x {r.iterations:,}"
                f"{f' keyLength {r.key_length}' if r.key_length else ''}, "
                f"{r.key_encryption} with {r.kek_cipher}"
            )
        elif r.kind == "certificate":
            identifies = (
                f"{r.issuer}, serial {r.serial_number:x}"
                if r.issuer
                else f"subjectKeyId {r.subject_key_identifier}"
            )
            algorithms = r.key_encryption
        else:
            identifies, algorithms = "-", r.key_encryption
        note = "" if r.in_profile else " (outside PS3.15 D.1)"
        table.add_row(str(index), f"{r.kind} v{r.version}{note}", identifies, algorithms)
    print_table(table, is_result=True)
