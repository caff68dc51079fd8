"""The habits of Unix and DICOM users the CLI follows (issue 14 §3): pipes, --json errors, -q/-v anywhere,
secrets from stdin and files, flags named as they are, one exit code for a missing input, a shared station.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from dcmseal.media.readme import MediumText, readme_text
from tests.cli.conftest import Invoke, Subprocess
from tests.cli.runner import run_on_terminal
from tests.conftest import RsaIdentityFactory
from tests.media.conftest import MediaEscrow, install_escrow, make_media_escrow
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD, write_part10
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
FAST = ("--iterations", str(FAST_ITERATIONS))


@pytest.fixture(scope="session")
def habits_escrow(tmp_path_factory: pytest.TempPathFactory) -> MediaEscrow:
    return make_media_escrow(tmp_path_factory.mktemp("habits-escrow"))


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, habits_escrow: MediaEscrow) -> Path:
    """``$XDG_DATA_HOME`` in tmp_path with the escrow identity installed as `keys init` leaves it."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    install_escrow(habits_escrow, home)
    return home


def _burn(invoke: Invoke, out: Path, password_file: Path, *extra: str | Path) -> str:
    result = invoke("burn", CT_SMALL, "--out", out, "--password-file", password_file, *FAST, *extra, "--json")
    assert result.code == 0, result.everything
    medium_id: str = result.json()["medium_id"]
    return medium_id


# -- piped output is never cut -----------------------------------------------------------------------------------
def test_keys_list_into_a_pipe_gives_whole_medium_ids_as_tsv(
    dcmseal: Subprocess, invoke: Invoke, tmp_path: Path, password_file: Path, data_home: Path
) -> None:
    medium_id = _burn(invoke, tmp_path / "a.iso", password_file, "--label", "CT of 22 November 2026")
    # A narrow pipe: rich would fold or cut the columns at 40 characters.
    run = dcmseal("keys", "list", columns=40, env={"XDG_DATA_HOME": str(data_home)})
    assert run.code == 0, run.stderr
    header, *rows = run.stdout.splitlines()
    assert header.split("\t") == ["medium", "created", "operator", "profile", "files", "label"]
    assert len(rows) == 1
    fields = rows[0].split("\t")
    assert fields[0] == medium_id  # what `keys recover` needs, whole
    (recorded,) = dcmseal("keys", "list", "--json", env={"XDG_DATA_HOME": str(data_home)}).json()["media"]
    assert fields[-1] == recorded["label"]  # the whole label, as the registry holds it
    assert len(fields) == 6


def test_keys_show_prints_values_not_python_reprs(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_home: Path
) -> None:
    medium_id = _burn(invoke, tmp_path / "a.iso", password_file)
    result = invoke("keys", "show", medium_id)
    assert result.code == 0, result.everything
    for repr_only in ("{'", "['", "None", "True", "False"):
        assert repr_only not in result.stdout, result.stdout
    assert f"medium_id: {medium_id}" in result.stdout
    assert "  - kind: password" in result.stdout
    assert "modalities: CT" in result.stdout


def test_the_registry_records_each_studys_date_and_never_an_invented_one(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_home: Path
) -> None:
    study = tmp_path / "two-studies"
    study.mkdir()
    shutil.copyfile(CT_SMALL, study / "ct")
    undated = dcmread(write_part10(study / "no-date"))  # no Study Date: the DICOMDIR gets a placeholder,
    undated.StudyInstanceUID, undated.SeriesInstanceUID = generate_uid(), generate_uid()  # the registry none
    undated.save_as(study / "no-date", enforce_file_format=True)
    result = invoke(
        "burn", study, "--out", tmp_path / "a.iso", "--password-file", password_file, *FAST, "--json"
    )
    assert result.code == 0, result.everything
    shown = invoke("keys", "show", result.json()["medium_id"], "--json")
    dates = {s["modalities"][0]: s["study_date"] for s in shown.json()["studies"]}
    assert dates == {"CT": "2004-01-19", "OT": None}
    # A rekeyed medium's record takes the dates from the DICOMDIR's STUDY records (not its placeholder).
    rekeyed = invoke(
        "rekey", tmp_path / "a.iso", "--out", tmp_path / "b.iso", "--password-file", password_file,
        "--new-password-file", password_file, *FAST, "--json",
    )  # fmt: skip
    assert rekeyed.code == 0, rekeyed.everything
    again = invoke("keys", "show", rekeyed.json()["medium_id"], "--json").json()["studies"]
    assert sorted(str(s["study_date"]) for s in again) == ["2004-01-19", "None"]


def test_quiet_after_the_command_leaves_out_the_table_not_the_summary(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path
) -> None:
    loud = invoke("seal", study, "--out", tmp_path / "a", "--password-file", password_file, *FAST)
    quiet = invoke("seal", study, "--out", tmp_path / "b", "--password-file", password_file, *FAST, "-q")
    assert loud.code == quiet.code == 0, quiet.everything
    assert "IM0001" in loud.stdout
    assert quiet.stdout == ""
    assert "3 of 3 files sealed" in quiet.stderr_flat


def test_a_failed_file_is_said_once_in_the_table_or_once_in_the_log_under_quiet(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path
) -> None:
    assert invoke("seal", study, "--out", tmp_path / "s", "--password-file", password_file, *FAST).code == 0
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-password\n")
    base = ("unseal", tmp_path / "s", "--password-file", wrong)
    table = invoke(*base, "--out", tmp_path / "o1")
    quiet = invoke(*base, "--out", tmp_path / "o2", "-q")
    as_json = invoke(*base, "--out", tmp_path / "o3", "--json")
    assert table.code == quiet.code == as_json.code == 1
    for outcome in (table, quiet):
        assert outcome.everything.count("IM0001: wrong password") == 1, outcome.everything
    assert quiet.stdout == ""
    assert "IM0001: wrong password" not in as_json.stderr  # stdout's JSON document has it
    assert [f["status"] for f in as_json.json()["files"]] == ["failed"] * 3


def test_verbose_after_the_command_is_the_root_verbose(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path
) -> None:
    after = invoke("seal", study, "--out", tmp_path / "a", "--password-file", password_file, *FAST, "-vv")
    before = invoke("-vv", "seal", study, "--out", tmp_path / "b", "--password-file", password_file, *FAST)
    assert after.code == before.code == 0
    assert "DEBUG" in before.stderr
    assert "DEBUG" in after.stderr


def test_a_value_that_looks_like_a_shared_flag_stays_the_option_value(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_home: Path
) -> None:
    result = invoke(
        "burn", CT_SMALL, "--out", tmp_path / "a.iso", "--password-file", password_file, *FAST,
        "--label", "-q", "--json",
    )  # fmt: skip
    assert result.code == 0, result.everything
    assert result.json()["medium_id"]


# -- --json: one JSON document even for a fatal error -------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "command", "code", "kind"),
    [
        (("recipients", "add", "partner", "missing.pem"), "recipients add", 1, "input"),
        (("keys", "show", "DCMS-NOSUCHMEDIUM"), "keys show", 1, "input"),
        (("seal", "missing-study", "--out", "o", "--password-env", "NO_SUCH_VARIABLE"), "seal", 2, "usage"),
        (("burn", "study"), "burn", 2, "usage"),  # --out is missing: typer's own usage error
        (("open", "x.iso", "--out", "o", "--bogus"), "open", 2, "usage"),
    ],
)
def test_a_fatal_error_under_json_is_one_json_document(
    dcmseal: Subprocess, tmp_path: Path, args: tuple[str, ...], command: str, code: int, kind: str
) -> None:
    run = dcmseal(*args, "--json", env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert run.code == code, run.stderr
    document = json.loads(run.stdout)  # exactly one document, nothing else on stdout
    assert document["schema"] == "dcmseal.error/1"
    assert document["command"] == command
    assert set(document["error"]) == {"code", "exit_code", "message", "file"}
    assert document["error"]["code"] == kind
    assert document["error"]["exit_code"] == code
    assert "Traceback" not in run.stderr


def test_the_json_error_names_the_file(dcmseal: Subprocess, tmp_path: Path) -> None:
    run = dcmseal("recipients", "add", "partner", tmp_path / "missing.pem", "--json",
                  env={"XDG_DATA_HOME": str(tmp_path / "data")})  # fmt: skip
    error = json.loads(run.stdout)["error"]
    assert error["file"] == str(tmp_path / "missing.pem")
    assert error["message"].startswith("cannot read the certificate")


# -- secrets: stdin, key passphrases, flags named as they are ----------------------------------------------------
def test_password_file_dash_reads_standard_input(dcmseal: Subprocess, study: Path, tmp_path: Path) -> None:
    sealed = dcmseal(
        "seal", study, "--out", tmp_path / "s", "--password-file", "-", *FAST, stdin=PASSWORD + "\n"
    )
    assert sealed.code == 0, sealed.stderr
    wrong = dcmseal("unseal", tmp_path / "s", "--out", tmp_path / "w", "--password-file", "-", stdin="nope\n")
    assert wrong.code == 1
    opened = dcmseal(
        "unseal", tmp_path / "s", "--out", tmp_path / "o", "--password-file", "-", stdin=PASSWORD + "\n"
    )
    assert opened.code == 0, opened.stderr
    assert sorted(p.name for p in (tmp_path / "o").rglob("IM*")) == ["IM0001", "IM0002", "IM0003"]


def test_keys_init_and_recover_name_their_own_passphrase_flags(invoke: Invoke, tmp_path: Path) -> None:
    both = invoke(
        "keys", "init", "--org", "X", "--dir", tmp_path / "e", "--passphrase-file", tmp_path / "f",
        "--passphrase-env", "V",
    )  # fmt: skip
    assert both.code == 2
    assert "give --passphrase-file or --passphrase-env, not both" in both.stderr_flat
    none = invoke("keys", "init", "--org", "X", "--dir", tmp_path / "e")  # stdin is not a terminal
    assert none.code == 2
    assert "use --passphrase-file or --passphrase-env" in none.stderr_flat
    assert "--password-file" not in none.stderr_flat
    recover = invoke("keys", "recover", "DCMS-X", "--escrow-key", tmp_path / "k.pem", "--reason", "lost")
    assert recover.code == 2
    assert "use --passphrase-file or --passphrase-env" in recover.stderr_flat


def test_recipients_add_names_replace(
    invoke: Invoke, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory, data_home: Path
) -> None:
    cert_path, _key = rsa_identity_factory(tmp_path, "habits-partner")
    assert invoke("recipients", "add", "partner", cert_path).code == 0
    again = invoke("recipients", "add", "partner", cert_path)
    assert again.code == 1
    assert "--replace" in again.stderr_flat
    assert invoke("recipients", "add", "partner", cert_path, "--replace").code == 0


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal")
def test_password_check_on_a_terminal_asks_without_echo(tmp_path: Path) -> None:
    secret = "Tr0ub4dor&3xx-never-on-screen"

    def type_it(screen: str) -> str | None:
        # click writes "Password to check:", then getpass turns echo off and writes the last " ": only then
        # is typing safe (type-ahead is echoed by the terminal and flushed by getpass).
        return secret if "Password to check: " in screen else None

    code, screen = run_on_terminal(["password", "check"], tmp_path, type_it)
    assert "Password to check:" in screen
    assert secret not in screen  # not echoed while typed, and not printed after
    assert code == 0, screen
    assert "accepted: score 4/4" in screen


# -- inputs ------------------------------------------------------------------------------------------------------
def test_inspect_a_folder_inspects_every_file_in_it(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path
) -> None:
    assert invoke("seal", study, "--out", tmp_path / "s", "--password-file", password_file, *FAST).code == 0
    result = invoke("inspect", tmp_path / "s", "--json")
    assert result.code == 0, result.everything
    document = result.json()
    assert document["summary"] == {"total": 3, "ok": 3, "failed": 0}


def test_a_missing_input_is_exit_1_and_one_message_in_every_command(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_home: Path
) -> None:
    missing = tmp_path / "no-such-input"
    secret = ("--password-file", str(password_file))
    commands = {
        "seal": ("seal", missing, "--out", tmp_path / "o1", *secret, *FAST),
        "unseal": ("unseal", missing, "--out", tmp_path / "o2", *secret),
        "inspect": ("inspect", missing),
        "burn": ("burn", missing, "--out", tmp_path / "o3.iso", *secret, *FAST),
        "open": ("open", missing, "--out", tmp_path / "o4", *secret),
        "rekey": ("rekey", missing, "--out", tmp_path / "o5", *secret, "--keep-recipients"),
        "import": ("import", missing, "--to", "dicom://PACS@127.0.0.1:9", *secret),
        "scan": ("scan", missing),
        "sanitize": ("sanitize", missing, "--out", tmp_path / "o6"),
        "extract": ("extract", missing, "--out", tmp_path / "o7"),
        "encapsulate": ("encapsulate", missing, "--out", tmp_path / "o8.dcm"),
    }
    for name, args in commands.items():
        result = invoke(*args)
        assert result.code == 1, (name, result.everything)
        assert f"{missing}: no such file or folder" in result.everything, (name, result.everything)
        assert "Traceback" not in result.everything


def test_readme_of_a_certificate_only_medium_reads_correctly() -> None:
    from datetime import UTC, datetime

    base = MediumText(
        medium_id="DCMS-TEST",
        created=datetime(2026, 12, 6, tzinfo=UTC),
        profile="STD-GEN-SEC-CD",
        file_count=1,
        has_password=False,
        certificate_subjects=("CN=Dr B",),
    )
    only_key = readme_text(base)
    lines = only_key.splitlines()
    needs = lines[lines.index("To open it you need:") + 1]
    assert needs == "  the private key of this certificate:", only_key
    both = readme_text(replace(base, has_password=True, certificate_subjects=("CN=Dr B", "CN=Esc")))
    assert "  or the private key of one of these certificates:" in both.splitlines()


def test_the_recipient_is_never_told_of_the_escrow_key(
    invoke: Invoke, tmp_path: Path, password_file: Path, data_home: Path
) -> None:
    result = invoke(
        "burn",
        CT_SMALL,
        "--out",
        tmp_path / "usb",
        "--format",
        "dir",
        "--password-file",
        password_file,
        *FAST,
    )
    assert result.code == 0, result.everything
    readme = (tmp_path / "usb" / "README.TXT").read_text()
    for text in (readme, result.stdout):  # README.TXT on the medium, the cover letter printed
        assert "escrow" not in text
        assert "private key" not in text  # the escrow is the only certificate: the password is what opens it
    lines = readme.splitlines()
    assert lines[lines.index("To open it you need:") + 1].startswith("  the password the sender gives you")
    assert "Then type the password." in lines


# -- a shared station ---------------------------------------------------------------------------------------------
def test_a_second_operator_uses_the_station_config_state_and_escrow(
    dcmseal: Subprocess, tmp_path: Path, habits_escrow: MediaEscrow, password_file: Path
) -> None:
    state = tmp_path / "var-lib-dcmseal"
    state.mkdir()
    os.chmod(state, 0o2770)  # noqa: S103 - setgid, group-writable: the operators' group
    (state / "escrow").mkdir()
    (state / "escrow" / "escrow-cert.pem").write_bytes(habits_escrow.certificate_path.read_bytes())
    system = tmp_path / "etc-dcmseal" / "config.toml"
    system.parent.mkdir()
    system.write_text(f'state_dir = "{state}"\nsender = "Burn desk, ext. 4711"\n')
    media = []
    for operator in ("alice", "bob"):  # two accounts: each its own (empty) home
        home = tmp_path / f"home-{operator}"
        run = dcmseal(
            "burn", CT_SMALL, "--out", tmp_path / f"{operator}.iso", "--password-file", password_file, *FAST,
            "--json",
            env={"DCMSEAL_SYSTEM_CONFIG": str(system), "XDG_DATA_HOME": str(home / "data"),
                 "XDG_CONFIG_HOME": str(home / "config"), "DCMSEAL_OPERATOR": operator},
        )  # fmt: skip
        assert run.code == 0, run.stderr
        media.append(run.json()["medium_id"])
        assert not (home / "data").exists()  # nothing went to the operator's own folders
    listed = dcmseal("keys", "list", "--json", env={"DCMSEAL_SYSTEM_CONFIG": str(system)})
    assert sorted(m["medium_id"] for m in listed.json()["media"]) == sorted(media)
    assert (state / "registry.sqlite3").stat().st_mode & 0o060 == 0o060  # the group can write it
    assert (state / "audit.log").stat().st_mode & 0o060 == 0o060
    assert (state / "audit.log").read_bytes().count(b"\n") >= 2


def test_config_precedence_flag_over_env_over_user_over_system(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcmseal.config import load_settings

    def toml(name: str, sender: str) -> Path:
        path = tmp_path / name
        path.write_text(f'sender = "{sender}"\n')
        return path

    system = toml("system.toml", "system")
    user_home = tmp_path / "xdg"
    (user_home / "dcmseal").mkdir(parents=True)
    (user_home / "dcmseal" / "config.toml").write_text('sender = "user"\n')
    env = {"DCMSEAL_SYSTEM_CONFIG": str(system)}
    assert load_settings(environ=env).sender == "system"
    env["XDG_CONFIG_HOME"] = str(user_home)
    assert load_settings(environ=env).sender == "user"
    env["DCMSEAL_CONFIG"] = str(toml("env.toml", "env"))
    assert load_settings(environ=env).sender == "env"
    assert load_settings(config_file=toml("flag.toml", "flag"), environ=env).sender == "flag"
    # --config on a command that never had it, after the command's name
    monkeypatch.setenv("DCMSEAL_SYSTEM_CONFIG", str(tmp_path / "none.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_setting = 1\n")
    result = invoke("keys", "list", "--config", bad)
    assert result.code == 2
    assert f"{bad}: unknown setting 'no_such_setting'" in result.stderr_flat


def test_the_import_journal_and_the_quarantine_are_the_groups_in_a_shared_station_folder(
    tmp_path: Path,
) -> None:
    from dcmseal.importer.journal import Journal
    from dcmseal.scan import quarantine_file

    shared, private = tmp_path / "shared", tmp_path / "private"
    shared.mkdir()
    private.mkdir()
    os.chmod(shared, 0o2770)  # noqa: S103 - setgid, group-writable: the operators' group
    suspicious = tmp_path / "payload.bin"
    suspicious.write_bytes(b"MZ" + bytes(200))
    old_umask = os.umask(0o022)  # a usual umask would take the group's write bit away
    try:
        for folder, file_mode, dir_mode in ((shared, 0o660, 0o2770), (private, 0o600, 0o700)):
            with Journal.open(folder / "import-journal.sqlite3"):
                pass
            assert stat.S_IMODE((folder / "import-journal.sqlite3").stat().st_mode) == file_mode
            record = quarantine_file(suspicious, folder / "quarantine", reason="test")
            assert stat.S_IMODE((folder / "quarantine").stat().st_mode) == dir_mode
            assert stat.S_IMODE(record.quarantined_path.stat().st_mode) == file_mode
    finally:
        os.umask(old_umask)
