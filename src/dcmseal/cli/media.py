"""The burn, open and rekey commands: secure media from studies, and studies from secure media."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.table import Table

from dcmseal import cms
from dcmseal.cli import options
from dcmseal.cli.common import (
    cli_settings,
    err_console,
    load_certificate,
    out_console,
    print_json,
    print_table,
    progress_handlers,
    read_password,
    refuse_argv_password,
    user_errors,
)
from dcmseal.cli.context import audit_sink, escrow_certificate, open_registry, operator_name, warn
from dcmseal.errors import ExitCode, UsageError
from dcmseal.keys import generate_passphrase, password_octets
from dcmseal.reader.containers import printable_name

__all__ = ["burn_command", "open_command", "rekey_command"]

#: A medium or File-set is one output, replaced as a whole (not the shared per-file --force).
ReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace an existing image, or the files dcmseal wrote in the output folder (never other files).",
    ),
]


def burn_command(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SRC",
            help="Files, folders, zips, DICOMDIR sets, or http(s)://host/dicom-web/studies/<UID>.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The image file, or the folder to write (an empty folder, a mounted stick)."
        ),
    ],
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="iso (ISO 9660, UDF for DVD), dir (a folder or mounted USB stick) or usb-image (a FAT image for dd).",
        ),
    ] = "iso",
    profile: Annotated[
        str, typer.Option("--profile", help="auto, or a PS3.11 profile such as STD-GEN-SEC-CD.")
    ] = "auto",
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    generate_password: Annotated[
        bool, typer.Option("--generate-password", help="Generate a passphrase and print it once.")
    ] = False,
    recipient: Annotated[
        list[Path] | None, typer.Option("--recipient", "-r", help="A recipient's certificate; repeatable.")
    ] = None,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="A partner from the address book; repeatable.")
    ] = None,
    escrow_cert: Annotated[
        Path | None, typer.Option("--escrow-cert", help="Escrow certificate (default: the one of keys init).")
    ] = None,
    no_escrow: Annotated[
        bool,
        typer.Option(
            "--no-escrow", help="Burn without the escrow recipient (the medium cannot be recovered)."
        ),
    ] = False,
    allow_expired: Annotated[
        bool, typer.Option("--allow-expired", help="Burn for an expired or not yet valid certificate.")
    ] = False,
    label: Annotated[str, typer.Option("--label", help="File-set ID and volume label.")] = "",
    document_study: Annotated[
        str | None,
        typer.Option("--document-study", help="Study Instance UID that PDF/CDA/STL/OBJ/MTL sources join."),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail when any source file is not DICOM.")] = False,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="Exit 0 when some instances cannot go on the medium (they are left out and listed either way).",
        ),
    ] = False,
    allow_weak_password: options.AllowWeakPassword = False,
    iterations: Annotated[int | None, typer.Option("--iterations", help="PBKDF2 iterations.")] = None,
    no_viewer: Annotated[
        bool, typer.Option("--no-viewer", help="Leave out the offline web viewer (INDEX.HTM, VIEWER/).")
    ] = False,
    no_encrypt: Annotated[
        bool,
        typer.Option(
            "--no-encrypt",
            help="Burn a plain medium for internal use (STD-GEN-* without SEC): NOT encrypted.",
        ),
    ] = False,
    user: options.HttpUser = None,
    user_password_file: options.HttpUserPasswordFile = None,
    user_password_env: options.HttpUserPasswordEnv = None,
    token_file: options.HttpTokenFile = None,
    token_env: options.HttpTokenEnv = None,
    registry: options.Registry = None,
    workers: options.Workers = None,
    force: ReplaceOpt = False,
    as_json: options.Json = False,
) -> None:
    """Burn a secure medium (PS3.11 STD-GEN-SEC-*): every file, DICOMDIR included, a Secure DICOM File.

    Prints the medium ID and a cover letter for the recipient, which never holds the password.
    """
    # The media workflows pull in pydicom's pixel codecs, pycdlib and the DICOMweb client: load on use.
    from dcmseal.media.burn import BurnRequest, burn
    from dcmseal.media.output import OUTPUT_FORMATS
    from dcmseal.media.profiles import Profile, secure_profile_of

    with user_errors():
        refuse_argv_password(password)
        settings = cli_settings(pbkdf2_iterations=iterations, workers=workers)
        if output_format not in OUTPUT_FORMATS:
            raise UsageError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}")
        chosen_profile = None
        if profile != "auto":
            try:
                # A plain medium may name the General Purpose twin (STD-GEN-CD for STD-GEN-SEC-CD).
                chosen_profile = secure_profile_of(profile) if no_encrypt else Profile(profile.upper())
            except ValueError:
                names = ", ".join(p.value for p in Profile)
                raise UsageError(f"unknown profile {profile!r}: auto, {names}") from None
        for source in sources:
            if urlsplit(source).scheme.lower() in ("http", "https") and "@" in urlsplit(source).netloc:
                raise UsageError(
                    "no credentials in a source URL (visible in ps and shell history): use --user with "
                    "--user-password-file or --user-password-env, or --token-file/--token-env"
                )
        http_credentials = options.read_http_credentials(
            user=user,
            password_file=user_password_file,
            password_env=user_password_env,
            token_file=token_file,
            token_env=token_env,
        )
        if generate_password and (password_file or password_env):
            raise UsageError("--generate-password goes without --password-file and --password-env")
        if no_encrypt and (
            generate_password or password_file or password_env or recipient or to or escrow_cert
        ):
            raise UsageError(
                "--no-encrypt burns a plain medium: give no password, recipient or escrow option"
            )
        reg = open_registry(settings, registry)
        try:
            certificates = [load_certificate(p) for p in recipient or []]
            certificates += [reg.get_partner(name) for name in to or []]
            escrow = (
                None if no_escrow or no_encrypt else escrow_certificate(settings, escrow_cert, required=True)
            )
            if no_encrypt:
                warn("--no-encrypt: the medium is NOT encrypted; anyone holding it can read the patient data")
            elif no_escrow:
                warn("--no-escrow: if the password is lost, nobody can open this medium again")
            text: str | None
            if no_encrypt:
                text = None
            elif generate_password:
                text = generate_passphrase()
            else:
                asked = password_file is None and password_env is None and not certificates
                text = read_password(
                    password_file=password_file,
                    password_env=password_env,
                    prompt="Password for the medium" if asked else None,
                    confirm=True,
                )
            secret = password_octets(text) if text is not None else None
            request = BurnRequest(
                sources=tuple(sources),
                out=out,
                operator=operator_name(),
                output_format=output_format,
                profile=chosen_profile,
                password=secret,
                certificates=tuple(certificates),
                escrow_certificate=escrow,
                label=label,
                document_study=document_study,
                sender=settings.sender or None,
                strict=strict,
                allow_partial=allow_partial,
                allow_expired=allow_expired,
                cipher=cms.ContentCipher(settings.cipher),
                digest=cms.DigestAlgorithm(settings.digest),
                iterations=settings.pbkdf2_iterations,
                prf=cms.Prf(settings.pbkdf2_prf),
                salt_bytes=settings.salt_bytes,
                workers=settings.workers,
                overwrite=force,
                encrypt=not no_encrypt,
                viewer=not no_viewer,
                http_credentials=http_credentials,
                allow_weak_password=allow_weak_password,
            )
            options.warn_weak_password(request.password_problems)
            with progress_handlers(not as_json) as handlers:
                result = burn(request, registry=reg, audit=audit_sink(settings), handlers=handlers)
        finally:
            reg.close()
        if as_json:
            document = result.to_json()
            if generate_password and text is not None:
                document["generated_password"] = text
            print_json(document)
            raise typer.Exit(int(result.exit_code))
        for rejected in result.rejected:
            err_console.print(f"left out: {rejected.shown}: {rejected.reason}", style="yellow")
        for note in result.notes:
            err_console.print(f"note: {note}", style="dim")
        for deviation in result.outside_profile:
            err_console.print(
                f"warning: {deviation}: the medium is outside {result.profile_name}", style="yellow"
            )
        out_console.print(
            f"medium {result.medium_id}: {len(result.files)} instances, {result.profile_name}, "
            f"{result.size_bytes:,} bytes -> {result.output}",
            style="bold green",
        )
        if generate_password and text is not None:
            out_console.print(f"password (shown once; send it by another route): {text}", style="bold")
        out_console.print("\n" + result.cover_letter)
        if result.safe_to_remove:
            err_console.print(result.safe_to_remove, style="bold green")
        if result.left_out:
            err_console.print(
                f"the medium is incomplete: {len(result.left_out)} instance(s) of the sources are not on it"
                + ("" if allow_partial else " (--allow-partial accepts that)"),
                style="bold yellow",
            )
        raise typer.Exit(int(result.exit_code))


def open_command(
    medium: options.Medium,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the plain File-set.")],
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    key: options.Key = None,
    cert: options.Cert = None,
    key_passphrase_file: options.KeyPassphraseFile = None,
    key_passphrase_env: options.KeyPassphraseEnv = None,
    accept_unprotected: options.AcceptUnprotected = False,
    workers: options.Workers = None,
    force: ReplaceOpt = False,
    as_json: options.Json = False,
) -> None:
    """Open a secure (or plain) medium: unseal and verify every file, check the DICOMDIR, write a File-set.

    Certificate validity is never a reason to refuse: a disc opened years later must open.
    """
    from dcmseal.intake import Integrity
    from dcmseal.media.open import OpenRequest, open_medium

    with user_errors():
        refuse_argv_password(password)
        settings = cli_settings(workers=workers)
        credentials = options.read_credentials(
            password_file=password_file,
            password_env=password_env,
            keys=key,
            certs=cert,
            key_passphrase_file=key_passphrase_file,
            key_passphrase_env=key_passphrase_env,
        )
        request = OpenRequest(
            medium=medium,
            out=out,
            operator=operator_name(),
            passwords=credentials.passwords,
            private_keys=credentials.private_keys,
            certificates=credentials.certificates,
            max_iterations=settings.max_pbkdf2_iterations,
            workers=settings.workers,
            overwrite=force,
            accept_unprotected=accept_unprotected,
            kdf_budget_per_medium=settings.kdf_budget_per_medium,
            # Asked only when the medium holds encrypted files (a plain disc needs no password).
            ask_password=credentials.ask_password(),
        )
        with progress_handlers(not as_json) as handlers:
            result = open_medium(replace(request, handlers=handlers), audit=audit_sink(settings))
        if as_json:
            print_json(result.to_json())
        else:
            table = Table(show_edge=False, pad_edge=False)
            for column in ("file on the medium", "status", "in the File-set / reason"):
                table.add_column(column, overflow="fold")
            for f in result.files:
                status = f.status.value
                style = {"failed": "red", "quarantined": "red", "skipped": "dim"}.get(f.status)
                if f.integrity is Integrity.NOT_VERIFIED:
                    status, style = "opened, NOT verified", "yellow"
                where = f.file_id or ""
                detail = f"{where} ({f.reason})" if where and f.reason else (f.reason or where)
                table.add_row(printable_name(f.path), status, detail, style=style)
            print_table(table)
            for d in result.disagreements:
                err_console.print(f"DICOMDIR: {d.message}", style="yellow")
            for note in result.notes:
                err_console.print(f"note: {note}", style="dim")
            opened = sum(1 for f in result.files if f.status in ("opened", "copied") and f.file_id)
            skipped = sum(1 for f in result.files if f.status == "skipped")
            err_console.print(
                f"{opened} files into {result.output}, {len(result.quarantined)} quarantined, "
                f"{skipped} skipped, {len(result.failed)} failed; "
                f"{result.kdf_derivations} PBKDF2 derivation(s); DICOMDIR {'rebuilt' if result.dicomdir_rebuilt else 'verified'}",
                style="bold green" if not result.failed else "bold yellow",
            )
        if result.failed:
            raise typer.Exit(int(ExitCode.INPUT))
        if result.quarantined:
            raise typer.Exit(int(ExitCode.FINDINGS))


def rekey_command(
    medium: Annotated[
        Path, typer.Argument(metavar="MEDIUM", help="The medium to rekey (ISO image, folder or zip).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The new medium (same format unless --format).")],
    password_file: options.PasswordFile = None,
    password_env: options.PasswordEnv = None,
    password: options.PasswordOnArgv = None,
    key: Annotated[
        list[Path] | None, typer.Option("--key", "-k", help="A key that opens the medium.")
    ] = None,
    cert: options.Cert = None,
    key_passphrase_file: options.KeyPassphraseFile = None,
    key_passphrase_env: options.KeyPassphraseEnv = None,
    accept_unprotected: options.AcceptUnprotected = False,
    recipient: Annotated[
        list[Path] | None, typer.Option("--recipient", "-r", help="New recipient certificate; repeatable.")
    ] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="New recipient from the address book.")] = None,
    new_password_file: Annotated[
        Path | None, typer.Option("--new-password-file", help="The new medium's password, from a file.")
    ] = None,
    new_password_env: Annotated[
        str | None, typer.Option("--new-password-env", help="The new medium's password, from a variable.")
    ] = None,
    generate_password: Annotated[
        bool, typer.Option("--generate-password", help="Generate the new medium's passphrase.")
    ] = False,
    keep_recipients: Annotated[
        bool, typer.Option("--keep-recipients", help="Keep the old recipients as well.")
    ] = False,
    output_format: Annotated[
        str | None, typer.Option("--format", help="iso or dir (default: as the medium).")
    ] = None,
    escrow_cert: Annotated[Path | None, typer.Option("--escrow-cert", help="Escrow certificate.")] = None,
    iterations: Annotated[int | None, typer.Option("--iterations", help="PBKDF2 iterations.")] = None,
    allow_weak_password: options.AllowWeakPassword = False,
    registry: options.Registry = None,
    force: ReplaceOpt = False,
    as_json: options.Json = False,
) -> None:
    """Write a new medium for new recipients from an existing one, given any key that opens it.

    The content ciphertext is reused; only the recipient information changes. Every file is verified
    first (digest or signature): an altered or unprotected file is not passed on under new keys.
    """
    from dcmseal.media.rekey import RekeyRequest, rekey

    with user_errors():
        refuse_argv_password(password)
        settings = cli_settings(pbkdf2_iterations=iterations)
        credentials = options.read_credentials(
            password_file=password_file,
            password_env=password_env,
            keys=key,
            certs=cert,
            key_passphrase_file=key_passphrase_file,
            key_passphrase_env=key_passphrase_env,
            prompt="Password of the medium",
        )
        new_text = (
            generate_passphrase()
            if generate_password
            else read_password(
                password_file=new_password_file,
                password_env=new_password_env,
                prompt=None,
                confirm=False,
                flags=("--new-password-file", "--new-password-env"),
            )
        )
        new_secret = password_octets(new_text) if new_text else None
        reg = open_registry(settings, registry)
        try:
            certificates = [load_certificate(p) for p in recipient or []]
            certificates += [reg.get_partner(name) for name in to or []]
            request = RekeyRequest(
                medium=medium,
                out=out,
                operator=operator_name(),
                passwords=credentials.passwords,
                private_keys=credentials.private_keys,
                certificates=credentials.certificates,
                new_password=new_secret,
                recipients=tuple(certificates),
                escrow_certificate=escrow_certificate(settings, escrow_cert, required=False),
                keep_recipients=keep_recipients,
                output_format=output_format,
                sender=settings.sender or None,
                iterations=settings.pbkdf2_iterations,
                prf=cms.Prf(settings.pbkdf2_prf),
                salt_bytes=settings.salt_bytes,
                max_iterations=settings.max_pbkdf2_iterations,
                overwrite=force,
                accept_unprotected=accept_unprotected,
                kdf_budget_per_medium=settings.kdf_budget_per_medium,
                allow_weak_password=allow_weak_password,
            )
            options.warn_weak_password(request.password_problems)
            with progress_handlers(not as_json) as handlers:
                result = rekey(request, registry=reg, audit=audit_sink(settings), handlers=handlers)
        finally:
            reg.close()
        if as_json:
            document = result.to_json()
            if generate_password and new_text:
                document["generated_password"] = new_text
            print_json(document)
            return
        out_console.print(
            f"medium {result.medium_id}: {result.files} files re-addressed to {', '.join(result.recipients)} -> {result.output}",
            style="bold green",
        )
        if generate_password and new_text:
            out_console.print(f"password (shown once; send it by another route): {new_text}", style="bold")
        out_console.print("\n" + result.cover_letter)
