"""The encapsulate and extract commands: documents (PDF, CDA, STL, OBJ, MTL) into and out of DICOM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dcmseal.cli import options
from dcmseal.cli.common import cli_settings, err_console, out_console, print_json, print_table, user_errors
from dcmseal.cli.context import audit_sink, operator_name, warn
from dcmseal.documents import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DocumentKind,
    ExtractResult,
    ModelOptions,
    PatientInfo,
    encapsulate,
    extract,
)
from dcmseal.errors import DcmsealError, ExitCode, UsageError

__all__ = ["encapsulate_command", "extract_command"]


def encapsulate_command(
    doc: Annotated[
        Path, typer.Argument(help="The document: PDF, HL7 CDA, STL, OBJ or MTL (kind from content).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The DICOM file to write.")],
    study: Annotated[
        Path | None,
        typer.Option(
            "--study", help="A DICOM file (or folder) of the study the document joins, in a new series."
        ),
    ] = None,
    patient_id: Annotated[
        str | None, typer.Option("--patient-id", help="Patient ID (without --study).")
    ] = None,
    patient_name: Annotated[
        str | None, typer.Option("--patient-name", help="Patient name, Family^Given (without --study).")
    ] = None,
    patient_birth_date: Annotated[
        str | None, typer.Option("--patient-birth-date", help="Birth date, YYYYMMDD.")
    ] = None,
    patient_sex: Annotated[str | None, typer.Option("--patient-sex", help="M, F or O.")] = None,
    title: Annotated[
        str | None, typer.Option("--title", help="Document Title (default: CDA title or file name).")
    ] = None,
    series_description: Annotated[
        str | None, typer.Option("--series-description", help="Series Description of the new series.")
    ] = None,
    kind: Annotated[
        DocumentKind | None,
        typer.Option("--kind", help="Refuse the document unless its content is of this kind."),
    ] = None,
    mtl: Annotated[
        Path | None, typer.Option("--mtl", help="The MTL of an OBJ: encapsulated and referenced.")
    ] = None,
    override: Annotated[
        bool, typer.Option("--override", help="Encapsulate a CDA whose header names another patient.")
    ] = False,
    no_burned_in_annotation: Annotated[
        bool,
        typer.Option(
            "--no-burned-in-annotation", help="Burned In Annotation NO: the document identifies no one."
        ),
    ] = False,
    units: Annotated[
        str,
        typer.Option("--units", help="Unit of a 3D model's coordinates: mm, cm, m, um or in (STL/OBJ/MTL)."),
    ] = "mm",
    device_serial: Annotated[
        str | None,
        typer.Option(
            "--device-serial",
            help="Device Serial Number of a 3D model (default: this workstation's host name).",
        ),
    ] = None,
    max_size: Annotated[
        int, typer.Option("--max-size", help="Refuse documents larger than this many bytes.", min=1)
    ] = DEFAULT_MAX_DOCUMENT_BYTES,
    force: options.Force = False,
    as_json: options.Json = False,
) -> None:
    """Encapsulate a document as DICOM (Encapsulated PDF/CDA/STL/OBJ/MTL), alone or joining a study."""
    with user_errors():
        demographics = (patient_id, patient_name, patient_birth_date, patient_sex)
        if study is not None and any(v is not None for v in demographics):
            raise UsageError("give --study or the --patient-* options, not both")
        patient: PatientInfo | None = None
        if any(v is not None for v in demographics):
            if patient_id is None or patient_name is None:
                raise UsageError("--patient-id and --patient-name go together")
            try:
                patient = PatientInfo(
                    patient_id=patient_id,
                    patient_name=patient_name,
                    birth_date=patient_birth_date or "",
                    sex=(patient_sex or "").upper(),
                )
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        try:
            model = (
                ModelOptions(units=units, device_serial_number=device_serial)
                if device_serial is not None
                else ModelOptions(units=units)
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        result = encapsulate(
            doc,
            out,
            audit=audit_sink(cli_settings()),
            operator=operator_name(),
            study=study,
            patient=patient,
            title=title,
            series_description=series_description,
            burned_in_annotation=not no_burned_in_annotation,
            override=override,
            kind=kind,
            mtl_for_obj=mtl,
            model=model,
            max_bytes=max_size,
            overwrite=force,
        )
    if result.audit_error is not None:
        warn(f"the audit message could not be written: {result.audit_error}")
    if as_json:
        print_json(result.to_json())
        return
    for instance in result.instances:
        out_console.print(
            f"{instance.path}: Encapsulated {instance.kind.value.upper()} ({instance.document_length} bytes)"
        )
    for note in result.notes:
        err_console.print(note, style="yellow")


def extract_command(
    files: Annotated[list[Path], typer.Argument(help="Encapsulated Document instances.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the documents.")],
    force: options.Force = False,
    as_json: options.Json = False,
) -> None:
    """Write the documents of Encapsulated Document instances back, byte for byte, with their extension."""
    results: list[tuple[Path, ExtractResult | None, str]] = []
    with user_errors():
        audit, operator = audit_sink(cli_settings()), operator_name()
    for file in files:
        try:
            extracted = extract(file, out, audit=audit, operator=operator, overwrite=force)
        except DcmsealError as exc:
            results.append((file, None, str(exc)))
            continue
        results.append((file, extracted, ""))
        if extracted.audit_error is not None:
            warn(f"{file}: the audit message could not be written: {extracted.audit_error}")
    failed = [r for r in results if r[1] is None]
    if as_json:
        print_json(
            {
                "schema": "dcmseal.extract/1",
                "files": [
                    {"source": str(f), "status": "ok", "reason": None, **r.to_json()}
                    if r is not None
                    else {"source": str(f), "status": "failed", "reason": reason}
                    for f, r, reason in results
                ],
            }
        )
    else:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("file", overflow="fold")
        table.add_column("status")
        table.add_column("details", overflow="fold")
        for file, result, reason in results:
            if result is None:
                table.add_row(str(file), "failed", reason, style="red")
            else:
                table.add_row(str(file), "ok", f"{result.path} ({result.kind.value}, {result.length} bytes)")
        print_table(table)
        err_console.print(
            f"{len(results) - len(failed)} of {len(results)} documents extracted, {len(failed)} failed",
            style="bold yellow" if failed else "bold green",
        )
    if failed:
        raise typer.Exit(int(ExitCode.INPUT))
