"""Tests of the one error funnel: exit codes 0/1/2, one line on stderr, no traceback, no secrets in output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.cli.conftest import Invoke, Subprocess
from tests.conftest import RsaIdentityFactory
from tests.part10.dicomfiles import (
    CT_SMALL_PATIENT_NAME,
    FAST_ITERATIONS,
    PASSWORD,
    copy_ct_small,
    leftovers,
    write_part10,
)

FAST = ("--iterations", str(FAST_ITERATIONS))


def _one_error_line(stderr: str) -> str:
    flat = " ".join(stderr.split())
    assert flat.startswith("error: "), stderr
    assert flat.count("error: ") == 1, stderr
    assert "Traceback" not in stderr
    return flat


@pytest.fixture
def one_file_study(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    write_part10(root / "IM0001")
    return root


# -- input and usage errors: one line, the right exit code -------------------------------------------------------
def test_missing_input_path(invoke: Invoke, tmp_path: Path, password_file: Path) -> None:
    missing = tmp_path / "no-such-study"
    for command, source in (
        ("seal", ("--password-file", str(password_file), *FAST)),
        ("unseal", ("--password-file", str(password_file))),
    ):
        result = invoke(command, missing, "--out", tmp_path / "out", *source)
        assert result.code == 1, (
            command,
            result.everything,
        )  # as in every command (tests/cli/test_habits.py)
        line = _one_error_line(result.stderr)
        assert str(missing) in line
        assert "no such file" in line
        assert result.stdout == ""


def test_unreadable_certificate(invoke: Invoke, one_file_study: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-cert.pem"
    result = invoke("seal", one_file_study, "--out", tmp_path / "out", "--recipient", missing)
    assert result.code == 1
    line = _one_error_line(result.stderr)
    assert line.startswith(f"error: {missing}: cannot read the certificate")
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize(
    "content", [b"not a certificate\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_certificate_that_is_not_a_certificate(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, content: bytes
) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_bytes(content)
    result = invoke("seal", one_file_study, "--out", tmp_path / "out", "--recipient", bogus)
    assert result.code == 1
    assert _one_error_line(result.stderr) == f"error: {bogus}: not an X.509 certificate (PEM or DER)"
    assert leftovers(tmp_path / "out") == []


def test_key_given_as_certificate(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    _, key = rsa_identity_factory(tmp_path, "cli confused")
    result = invoke("seal", one_file_study, "--out", tmp_path / "out", "--recipient", key)
    assert result.code == 1
    assert _one_error_line(result.stderr) == f"error: {key}: not an X.509 certificate (PEM or DER)"


@pytest.mark.parametrize("kind", ["text", "certificate", "missing"])
def test_key_file_that_is_not_a_key(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory, kind: str
) -> None:
    cert, _ = rsa_identity_factory(tmp_path, "cli key test")
    key = {"text": tmp_path / "key.txt", "certificate": cert, "missing": tmp_path / "missing-key.pem"}[kind]
    if kind == "text":
        key.write_text("this is not a key\n")
    result = invoke("unseal", one_file_study, "--out", tmp_path / "out", "--key", key)
    assert result.code == 1
    line = _one_error_line(result.stderr)
    assert line.startswith(f"error: {key}: ")
    assert ("cannot read the private key" if kind == "missing" else "not a private key") in line
    assert leftovers(tmp_path / "out") == []


def test_encrypted_key_needs_its_passphrase(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert, key = rsa_identity_factory(tmp_path, "cli encrypted key")
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-passphrase-123"),
        )
    )
    sealed = tmp_path / "sealed"
    assert invoke("seal", one_file_study, "--out", sealed, "--recipient", cert).code == 0

    no_passphrase = invoke("unseal", sealed, "--out", tmp_path / "o1", "--key", encrypted)
    assert no_passphrase.code == 2
    assert "--key-passphrase-file or --key-passphrase-env" in _one_error_line(no_passphrase.stderr)

    wrong = invoke(
        "unseal", sealed, "--out", tmp_path / "o2", "--key", encrypted, "--key-passphrase-env", "KEY_PW",
        env={"KEY_PW": "nope"},
    )  # fmt: skip
    assert wrong.code == 1
    assert _one_error_line(wrong.stderr) == f"error: {encrypted}: wrong passphrase for this private key"

    right = invoke(
        "unseal",
        sealed,
        "--out",
        tmp_path / "o3",
        "--key",
        encrypted,
        "--key-passphrase-env",
        "KEY_PW",
        env={"KEY_PW": "key-passphrase-123"},
    )
    assert right.code == 0, right.everything
    assert (tmp_path / "o3" / "IM0001").read_bytes() == (one_file_study / "IM0001").read_bytes()
    secret = tmp_path / "key-passphrase.txt"
    secret.write_text("key-passphrase-123\n")
    by_file = invoke(
        "unseal", sealed, "--out", tmp_path / "o4", "--key", encrypted, "--key-passphrase-file", secret
    )
    assert by_file.code == 0, by_file.everything
    # The old undocumented variable holding the passphrase itself opens nothing any more.
    old = invoke(
        "unseal", sealed, "--out", tmp_path / "o5", "--key", encrypted,
        env={"DCMSEAL_KEY_PASSPHRASE": "key-passphrase-123"},
    )  # fmt: skip
    assert old.code == 2


def test_signing_options_must_come_together_and_match(
    invoke: Invoke,
    one_file_study: Path,
    tmp_path: Path,
    password_file: Path,
    rsa_identity_factory: RsaIdentityFactory,
) -> None:
    _, key = rsa_identity_factory(tmp_path, "cli sign a")
    other_cert, _ = rsa_identity_factory(tmp_path, "cli sign b")
    base = ("seal", one_file_study, "--out", tmp_path / "out", "--password-file", password_file, *FAST)

    alone = invoke(*base, "--sign-key", key)
    assert alone.code == 2
    assert "--sign-cert" in _one_error_line(alone.stderr)

    mismatched = invoke(*base, "--sign-key", key, "--sign-cert", other_cert)
    assert mismatched.code == 2
    assert "does not belong" in _one_error_line(mismatched.stderr)
    assert leftovers(tmp_path / "out") == []


def test_cert_count_must_match_key_count(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert, key = rsa_identity_factory(tmp_path, "cli count")
    result = invoke(
        "unseal", one_file_study, "--out", tmp_path / "out", "--key", key, "--cert", cert, "--cert", cert
    )
    assert result.code == 2
    _one_error_line(result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("seal", "study"), id="missing-out"),
        pytest.param(("seal", "study", "--out", "o", "--cipher", "des"), id="bad-cipher"),
        pytest.param(("seal", "study", "--out", "o", "--prf", "md5"), id="bad-prf"),
        pytest.param(("unseal", "study", "--out", "o", "--no-such-flag"), id="unknown-option"),
        pytest.param(("frobnicate",), id="unknown-command"),
    ],
)
def test_click_usage_errors_exit_2(invoke: Invoke, args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.code == 2
    assert "Traceback" not in result.everything


def test_settings_out_of_range_are_usage_errors(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, password_file: Path
) -> None:
    for flag, value in (("--iterations", "0"), ("--salt-bytes", "4")):
        result = invoke(
            "seal", one_file_study, "--out", tmp_path / "out", "--password-file", password_file, flag, value
        )
        assert result.code == 2, flag
        _one_error_line(result.stderr)


def test_exit_codes_of_the_funnel(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, password_file: Path
) -> None:
    sealed = tmp_path / "sealed"
    ok = invoke("seal", one_file_study, "--out", sealed, "--password-file", password_file, *FAST)
    assert ok.code == 0
    wrong = invoke(
        "unseal", sealed, "--out", tmp_path / "o", "--password-env", "W", env={"W": "Wrong-wrong-wrong-1"}
    )
    assert wrong.code == 1
    usage = invoke("unseal", sealed, "--out", tmp_path / "o", "--password", "x")
    assert usage.code == 2


def test_long_error_stays_on_one_line_when_stderr_is_not_a_terminal(
    dcmseal: Subprocess, tmp_path: Path
) -> None:
    # A user's script or log file gets the error as one line: rich must not wrap it at 80 columns.
    deep = tmp_path / "a-rather-long-folder-name-from-the-pacs-export" / "another-level-of-folders"
    plain = copy_ct_small(deep / "IM000001.dcm")
    run = dcmseal("inspect", plain, columns=None)
    assert run.code == 1
    assert run.stderr.endswith("\n")
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr == f"error: {plain}: not a Secure DICOM File: a plain DICOM PS3.10 file\n"


# -- secrets and patient data never reach the output -----------------------------------------------------------
def test_verbose_runs_never_print_the_password_or_the_patient_name(
    dcmseal: Subprocess, tmp_path: Path, password_file: Path
) -> None:
    study = tmp_path / "study"
    copy_ct_small(study / "IM0001")
    (study / "notes.txt").write_text("not DICOM\n")
    sealed = tmp_path / "sealed"
    env = {"DCMSEAL_TEST_PASSWORD": PASSWORD, "WRONG": "Wrong-wrong-wrong-1"}
    runs = [
        dcmseal("-vv", "seal", study, "--out", sealed, "--password-file", password_file, *FAST),
        dcmseal(
            "-vv",
            "seal",
            study,
            "--out",
            tmp_path / "sealed2",
            "--password-file",
            password_file,
            *FAST,
            "--json",
        ),
        dcmseal("-vv", "inspect", sealed / "IM0001"),
        dcmseal(
            "-vv",
            "unseal",
            sealed,
            "--out",
            tmp_path / "open",
            "--password-env",
            "DCMSEAL_TEST_PASSWORD",
            env=env,
        ),
        dcmseal(
            "-vv",
            "unseal",
            sealed,
            "--out",
            tmp_path / "open2",
            "--password-env",
            "DCMSEAL_TEST_PASSWORD",
            "--json",
            env=env,
        ),
        dcmseal("-vv", "unseal", sealed, "--out", tmp_path / "wrong", "--password-env", "WRONG", env=env),
    ]
    assert [r.code for r in runs] == [1, 1, 0, 0, 0, 1]
    assert "sealed to" in runs[0].stderr_flat  # -vv did turn the per-file log lines on
    for run in runs:
        for stream in (run.stdout, run.stderr):
            squeezed = "".join(stream.split())
            assert PASSWORD not in squeezed, run.args
            assert CT_SMALL_PATIENT_NAME not in squeezed, run.args
            assert "CompressedSamples" not in squeezed, run.args
            assert "Traceback" not in stream


def test_per_file_log_lines_survive_the_process_pool(
    dcmseal: Subprocess, tmp_path: Path, password_file: Path
) -> None:
    # style.md §5: INFO is one line per file outcome; with -v the user sees it whatever --workers says.
    study = tmp_path / "study"
    template = write_part10(tmp_path / "template.dcm")
    for index in range(20):
        target = study / f"IM{index:04d}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(template, target)
    serial = dcmseal(
        "-v",
        "seal",
        study,
        "--out",
        tmp_path / "serial",
        "--password-file",
        password_file,
        *FAST,
        "--workers",
        "1",
        "--json",
    )
    pooled = dcmseal(
        "-v",
        "seal",
        study,
        "--out",
        tmp_path / "pooled",
        "--password-file",
        password_file,
        *FAST,
        "--workers",
        "2",
        "--json",
    )
    assert serial.code == pooled.code == 0
    assert pooled.json()["summary"]["workers"] == 2
    assert serial.stderr_flat.count("sealed to") == 20
    assert pooled.stderr_flat.count("sealed to") == 20
