"""The demo command: seal pydicom's sample study for a passphrase and a certificate, inspect, unseal, compare."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from dcmseal import cms
from dcmseal.cli.common import cli_settings, err_console, out_console, user_errors
from dcmseal.cli.envelope import render_inspect
from dcmseal.errors import DecryptionError, ExitCode
from dcmseal.fsutil import make_dirs
from dcmseal.keys import generate_passphrase, sealing_password
from dcmseal.part10 import SealPlan, UnsealPlan, inspect_file, seal_tree, unseal_file, unseal_tree
from dcmseal.part10.fileformat import PREAMBLE_BYTES, ZERO_PREAMBLE

__all__ = ["demo"]

#: A small study from the samples pydicom ships (CT_small and MR_small carry TIFF preambles).
DEMO_FILES = ("CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "examples_rgb_color.dcm", "JPEG2000.dcm")


def _ephemeral_identity(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dcmseal demo recipient (ephemeral)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "recipient-cert.pem", directory / "recipient-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _same_but_preamble(original: Path, opened: Path) -> bool:
    a, b = original.read_bytes(), opened.read_bytes()
    return (
        len(a) == len(b) and b[:PREAMBLE_BYTES] == ZERO_PREAMBLE and a[PREAMBLE_BYTES:] == b[PREAMBLE_BYTES:]
    )


def demo(
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Keep everything in this folder instead of a temporary one."),
    ] = None,
) -> None:
    """Seal pydicom's sample study with a generated passphrase and an ephemeral certificate, then prove it.

    Then the media journey: an escrow identity, a secure disc image burned and opened again, and the
    password recovered from the registry with the escrow key (all in a temporary folder).

    Shows what a Secure DICOM File looks like (inspect), opens the set with each key, checks the files
    are the originals with a zeroed preamble, cross-checks one file with `openssl cms`, and shows that a
    wrong password is refused.
    """
    with user_errors():
        base = Path(tempfile.mkdtemp(prefix="dcmseal-demo-")) if workdir is None else workdir
        make_dirs(base)
        try:
            ok = _run(base)
        finally:
            if workdir is None:
                shutil.rmtree(base, ignore_errors=True)
        if not ok:
            raise typer.Exit(int(ExitCode.INPUT))


def _step(text: str) -> None:
    out_console.print(f"\n== {text}", style="bold cyan")


def _run(base: Path) -> bool:
    from pydicom.data import get_testdata_file

    settings = cli_settings()
    study = base / "study"
    study.mkdir(exist_ok=True)
    for index, name in enumerate(DEMO_FILES, start=1):
        shutil.copyfile(get_testdata_file(name), study / f"IM{index:06d}")  # type: ignore[arg-type]
    _step(f"1. A study of {len(DEMO_FILES)} Part 10 files from pydicom's samples in {study}")

    phrase = generate_passphrase(words=7)
    sealing = sealing_password(
        phrase, iterations=settings.pbkdf2_iterations, prf=settings.pbkdf2_prf, salt_bytes=settings.salt_bytes
    )
    password = sealing.password
    cert_path, key_path = _ephemeral_identity(base)
    _step("2. A generated passphrase (send it by another route than the disc) and an ephemeral certificate")
    out_console.print(f"passphrase:  {phrase}")
    out_console.print(f"certificate: {cert_path}")

    plan = SealPlan(
        password=password,
        kdf=sealing.kdf,
        certificates=(
            x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(serialization.Encoding.DER),
        ),
        cipher=cms.ContentCipher(settings.cipher),
        digest=cms.DigestAlgorithm(settings.digest),
    )
    sealed_dir = base / "sealed"
    context = cms.Context()  # the demo's run: the set's key is derived once, for sealing and opening
    report = seal_tree([study], sealed_dir, plan, overwrite=True, context=context)
    _step(
        f"3. Sealed {len(report.outcomes) - len(report.failed)} files into {sealed_dir} "
        f"({report.pbkdf2_derivations} PBKDF2 derivation for the whole set)"
    )
    for outcome in report.outcomes:
        notes = "; ".join(outcome.result.notes) if outcome.result else (outcome.reason or "")
        out_console.print(
            f"{outcome.destination or outcome.source}: {outcome.status}{'  ' + notes if notes else ''}"
        )

    first = sealed_dir / "IM000001"
    _step(f"4. What `dcmseal inspect {first}` shows (no key needed)")
    render_inspect(inspect_file(first))

    opened_pw = unseal_tree(
        [sealed_dir],
        base / "opened-password",
        UnsealPlan(passwords=(password,)),
        overwrite=True,
        context=context,
    )
    key_der = serialization.load_pem_private_key(key_path.read_bytes(), password=None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    opened_key = unseal_tree(
        [sealed_dir],
        base / "opened-certificate",
        UnsealPlan(private_keys=(key_der,)),
        overwrite=True,
        context=context,
    )
    all_ok = not report.failed and not opened_pw.failed and not opened_key.failed
    _step("5. Unsealed with the passphrase and, separately, with the certificate's private key")
    for label, batch in (("passphrase", opened_pw), ("private key", opened_key)):
        identical = 0
        for outcome in batch.outcomes:
            if outcome.destination is not None and _same_but_preamble(
                study / outcome.destination.name, outcome.destination
            ):
                identical += 1
        all_ok &= identical == len(DEMO_FILES)
        out_console.print(
            f"{label}: {identical}/{len(DEMO_FILES)} files identical to the originals (preamble zeroed), "
            f"digest verified, {batch.pbkdf2_derivations} new PBKDF2 derivation(s)"
        )

    openssl = shutil.which("openssl")
    _step("6. Cross-check with OpenSSL, an independent CMS implementation")
    if openssl is None:
        out_console.print("openssl not found: skipped (apt-get install openssl)")
    else:
        # The demo passphrase is throwaway; never pass a real password on a command line.
        run = subprocess.run(
            [
                openssl,
                "cms",
                "-decrypt",
                "-binary",
                "-inform",
                "DER",
                "-in",
                str(first),
                "-recip",
                str(cert_path),
                "-inkey",
                str(key_path),
                "-out",
                str(base / "openssl-inner.der"),
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        out_console.print(
            f"openssl cms -decrypt -recip ...: {'ok' if run.returncode == 0 else 'FAILED ' + run.stderr.decode()[:200]}"
            f" ({(base / 'openssl-inner.der').stat().st_size if run.returncode == 0 else 0:,} bytes of DigestedData)"
        )
        all_ok &= run.returncode == 0

    _step("7. A wrong password is refused, and nothing is written")
    wrong = base / "wrong" / "IM000001"
    try:
        unseal_file(first, wrong, credentials=[cms.PasswordCredential(password=b"not-the-passphrase")])
        out_console.print("UNEXPECTED: opened with a wrong password", style="bold red")
        all_ok = False
    except DecryptionError as exc:
        out_console.print(f"error: {exc}")
        out_console.print(f"output exists: {wrong.exists()}")
        all_ok &= not wrong.exists()

    all_ok &= _media(base, study, phrase, password)

    if all_ok:
        err_console.print("\ndemo complete: every step checked", style="bold green")
    else:
        err_console.print("\ndemo FAILED: see above", style="bold red")
    return all_ok


def _media(base: Path, study: Path, phrase: str, password: bytes) -> bool:
    """The media journey: escrow identity, burn an ISO, open it, recover the password from the registry."""
    from dcmseal.audit import FileSink
    from dcmseal.audit.validate import validate_message
    from dcmseal.keys.escrow import RecoverRequest, create_escrow_identity, load_escrow_certificate, recover
    from dcmseal.keys.registry import Registry
    from dcmseal.media.burn import BurnRequest, burn
    from dcmseal.media.open import OpenRequest, open_medium

    settings = cli_settings()
    ok = True
    escrow_passphrase = b"demo-escrow-passphrase-kept-offline"
    identity = create_escrow_identity("dcmseal demo hospital", base / "escrow", passphrase=escrow_passphrase)
    escrow_certificate = load_escrow_certificate(identity.certificate_path)
    audit_log = base / "audit.log"
    audit = FileSink(audit_log)
    with Registry.open(f"sqlite:///{base / 'registry.sqlite3'}") as registry:
        _step(
            "8. Burn the study to an encrypted disc image (STD-GEN-SEC-*), sealed to the escrow key as well"
        )
        disc = base / "disc.iso"
        burned = burn(
            BurnRequest(
                sources=(str(study),),
                out=disc,
                operator="demo",
                password=password,
                escrow_certificate=escrow_certificate,
                label="DEMO",
                iterations=settings.pbkdf2_iterations,
                prf=cms.Prf(settings.pbkdf2_prf),
            ),
            registry=registry,
            audit=audit,
        )
        out_console.print(
            f"medium {burned.medium_id}: {len(burned.files)} instances, {burned.profile.value}, "
            f"{burned.size_bytes:,} bytes, {burned.pbkdf2_derivations} PBKDF2 derivation"
        )
        for note in burned.notes:
            out_console.print(f"  note: {note}")

        _step("9. Open the disc with the passphrase: unseal, verify, check the DICOMDIR, write a File-set")
        opened = open_medium(
            OpenRequest(
                medium=disc, out=base / "disc-opened", operator="demo", passwords=(phrase.encode("ascii"),)
            ),
            audit=audit,
        )
        summary = opened.to_json()["summary"]
        assert isinstance(summary, dict)
        counts = ", ".join(f"{n} {state}" for state, n in summary.items() if state != "elapsed_s")
        out_console.print(
            f"{counts}; DICOMDIR {'rebuilt' if opened.dicomdir_rebuilt else 'verified'}, "
            f"{len(opened.disagreements)} disagreement(s)"
        )
        ok &= not opened.failed and not opened.disagreements

        _step("10. The password is lost: the escrow key holder recovers it, and the recovery is recorded")
        recovered = recover(
            RecoverRequest(
                medium_id=burned.medium_id,
                escrow_key=identity.key_path,
                passphrase=escrow_passphrase,
                reason="demo: the patient lost the letter",
                operator="demo",
            ),
            registry=registry,
            audit=audit,
        ).password
        out_console.print(f"recovered the same passphrase: {recovered == phrase}")
        out_console.print(f"recoveries on record: {len(registry.recoveries(burned.medium_id))}")
        ok &= recovered == phrase

    lines = audit_log.read_bytes().splitlines()
    problems = [p for line in lines for p in validate_message(line)]
    _step(
        f"11. The audit log holds {len(lines)} DICOM audit messages (PS3.15 A.5), {len(problems)} problem(s)"
    )
    ok &= not problems and len(lines) >= 2
    return ok
