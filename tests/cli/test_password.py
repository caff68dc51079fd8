"""Tests of `dcmseal password new|check` and of how seal and unseal take (and refuse) passwords."""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke, Subprocess
from tests.part10.dicomfiles import (
    CT_SMALL_PATIENT_NAME,
    FAST_ITERATIONS,
    PASSWORD,
    copy_ct_small,
    leftovers,
    write_part10,
)

FAST = ("--iterations", str(FAST_ITERATIONS))


@functools.cache
def _wordlist() -> frozenset[str]:
    text = importlib.resources.files("dcmseal.keys").joinpath("eff_large_wordlist.txt").read_text("ascii")
    return frozenset(text.split())


def _word_counts(phrase: str) -> set[int]:
    """How many list words ``phrase`` can be read as, joined by "-" (a few EFF words hold a hyphen)."""
    pieces = phrase.split("-")
    counts: dict[int, set[int]] = {0: {0}}
    for end in range(1, len(pieces) + 1):
        counts[end] = {
            n + 1 for start in range(end) if "-".join(pieces[start:end]) in _wordlist() for n in counts[start]
        }
    return counts[len(pieces)]


# -- password new -------------------------------------------------------------------------------------------
def test_password_new_prints_seven_words_by_default(invoke: Invoke) -> None:
    result = invoke("password", "new")
    assert result.code == 0
    phrase = result.stdout.strip()
    assert result.stdout == phrase + "\n"
    assert 7 in _word_counts(phrase)
    assert phrase.isascii()
    assert phrase not in result.stderr
    assert "90.5 bits" in result.stderr_flat


def test_password_new_words_8(invoke: Invoke) -> None:
    result = invoke("password", "new", "--words", "8")
    assert result.code == 0
    assert 8 in _word_counts(result.stdout.strip())


def test_password_new_refuses_too_few_words(invoke: Invoke) -> None:
    result = invoke("password", "new", "--words", "5")
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr_flat.startswith("error: ")
    assert "Traceback" not in result.everything


def test_password_new_json(invoke: Invoke) -> None:
    document = invoke("password", "new", "--json", "--words", "9").json()
    assert document["schema"] == "dcmseal.password.new/1"
    assert document["words"] == 9
    assert document["bits"] >= 80
    assert 9 in _word_counts(document["passphrase"])


def test_two_passphrases_differ(invoke: Invoke) -> None:
    assert invoke("password", "new").stdout != invoke("password", "new").stdout


# -- password check -----------------------------------------------------------------------------------------
def test_password_check_accepts_a_generated_passphrase(invoke: Invoke) -> None:
    phrase = invoke("password", "new").stdout.strip()
    result = invoke("password", "check", input=phrase + "\n")
    assert result.code == 0, result.everything
    assert result.stdout.startswith("accepted")
    assert phrase not in result.everything


def test_password_check_refuses_name_and_birth_date(invoke: Invoke) -> None:
    result = invoke("password", "check", input="Jane19700101\n")
    assert result.code == 1
    assert result.stdout.startswith("refused")
    assert "date" in result.stdout
    assert "Jane19700101" not in result.everything


def test_password_check_json(invoke: Invoke) -> None:
    refused = invoke("password", "check", "--json", input="Jane19700101\n")
    assert refused.code == 1
    document = refused.json()
    assert document["schema"] == "dcmseal.password.check/1"
    assert document["acceptable"] is False
    assert document["problems"]
    assert {"score", "entropy_bits", "crack_time_seconds", "crack_time_display"} <= document.keys()

    accepted = invoke("password", "check", "--json", input=PASSWORD + "\n")
    assert accepted.code == 0
    assert accepted.json()["acceptable"] is True
    assert accepted.json()["problems"] == []


def test_password_check_uses_the_context(invoke: Invoke) -> None:
    result = invoke("password", "check", "--context", "Doe^Jane", input="Jane-Kestrel-amber-Lantern-orbit\n")
    assert result.code == 1
    assert "patient's name" in result.stdout


# -- where seal and unseal take the password from ------------------------------------------------------------
@pytest.fixture
def one_file_study(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    write_part10(root / "IM0001")
    return root


@pytest.mark.parametrize("command", ["seal", "unseal"])
def test_password_on_the_command_line_is_refused(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, command: str
) -> None:
    secret = "Sup3r-Secret-On-Argv-Xq7"
    result = invoke(command, one_file_study, "--out", tmp_path / "out", "--password", secret)
    assert result.code == 2
    assert "command line" in result.stderr_flat
    assert secret not in result.everything
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("command", ["seal", "unseal"])
def test_no_password_source_and_no_terminal_is_a_usage_error(
    dcmseal: Subprocess, one_file_study: Path, tmp_path: Path, command: str
) -> None:
    run = dcmseal(command, one_file_study, "--out", tmp_path / "out", *FAST[: 2 if command == "seal" else 0])
    assert run.code == 2
    assert "no password given and no terminal" in run.stderr_flat
    assert "--password-file" in run.stderr_flat
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert leftovers(tmp_path / "out") == []


def test_password_file_and_env_together_is_a_usage_error(
    invoke: Invoke, one_file_study: Path, tmp_path: Path, password_file: Path
) -> None:
    result = invoke(
        "seal",
        one_file_study,
        "--out",
        tmp_path / "out",
        "--password-file",
        password_file,
        "--password-env",
        "PW",
        env={"PW": PASSWORD},
    )
    assert result.code == 2
    assert result.stderr_flat.startswith("error: ")


def test_unset_password_variable_is_a_usage_error(
    invoke: Invoke, one_file_study: Path, tmp_path: Path
) -> None:
    result = invoke(
        "unseal", one_file_study, "--out", tmp_path / "out", "--password-env", "DCMSEAL_TEST_UNSET"
    )
    assert result.code == 2
    assert "DCMSEAL_TEST_UNSET" in result.stderr_flat


def test_empty_password_file_is_refused(invoke: Invoke, one_file_study: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    result = invoke("seal", one_file_study, "--out", tmp_path / "out", "--password-file", empty)
    assert result.code == 1
    assert result.stderr_flat == f"error: {empty}: the password file is empty"


def test_non_ascii_password_is_refused_citing_the_standard(
    invoke: Invoke, one_file_study: Path, tmp_path: Path
) -> None:
    secret = "Pässwörd-ß-long-enough-1"
    path = tmp_path / "pw.txt"
    path.write_text(secret + "\n", encoding="utf-8")
    result = invoke("seal", one_file_study, "--out", tmp_path / "out", "--password-file", path, *FAST)
    assert result.code == 1
    assert "ISO-IR 6" in result.stderr_flat
    assert "PS3.15 D.1" in result.stderr_flat
    assert secret not in result.everything
    assert result.stderr.count("error:") == 1
    assert leftovers(tmp_path / "out") == []


def test_weak_password_is_refused_unless_allowed(
    invoke: Invoke, one_file_study: Path, tmp_path: Path
) -> None:
    path = tmp_path / "pw.txt"
    path.write_text("19700101\n")
    refused = invoke("seal", one_file_study, "--out", tmp_path / "refused", "--password-file", path, *FAST)
    assert refused.code == 1
    assert "password refused" in refused.stderr_flat
    assert "date" in refused.stderr_flat
    assert "19700101" not in refused.everything
    assert leftovers(tmp_path / "refused") == []

    allowed = invoke(
        "seal",
        one_file_study,
        "--out",
        tmp_path / "allowed",
        "--password-file",
        path,
        *FAST,
        "--allow-weak-password",
        "--json",
    )
    assert allowed.code == 0, allowed.everything
    assert "warning: weak password accepted" in allowed.stderr_flat
    assert "19700101" not in allowed.everything
    assert [f["status"] for f in allowed.json()["files"]] == ["sealed"]


def test_password_holding_the_patient_name_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    study = tmp_path / "study"
    copy_ct_small(study / "IM0001")
    secret = "CompressedSamples-Kestrel-amber-Lantern"
    path = tmp_path / "pw.txt"
    path.write_text(secret + "\n")
    result = invoke("seal", study, "--out", tmp_path / "out", "--password-file", path, *FAST)
    assert result.code == 1
    assert "patient's name" in result.stderr_flat
    assert secret not in result.everything
    assert CT_SMALL_PATIENT_NAME not in result.everything
