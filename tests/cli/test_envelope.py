"""Tests of `dcmseal seal`, `unseal` and `inspect`: round trips, options, JSON documents, per-file errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.errors import WRONG_KEY_MESSAGE
from tests.cli.conftest import Invoke, Outcome, Subprocess
from tests.conftest import RsaIdentityFactory
from tests.part10.dicomfiles import (
    FAST_ITERATIONS,
    PASSWORD,
    copy_ct_small,
    digested_data_der,
    envelope_bytes,
    leftovers,
    snapshot,
    write_part10,
)

FAST = ("--iterations", str(FAST_ITERATIONS))
PW_ENV = {"DCMSEAL_TEST_PASSWORD": PASSWORD}


def _relative_files(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in leftovers(root)]


def _assert_same_but_preamble(original_root: Path, opened_root: Path) -> None:
    names = _relative_files(original_root)
    assert _relative_files(opened_root) == names
    for name in names:
        original = (original_root / name).read_bytes()
        opened = (opened_root / name).read_bytes()
        assert opened == bytes(128) + original[128:], name


def _seal_with_password(invoke: Invoke, study: Path, out: Path, password_file: Path, *extra: str) -> Outcome:
    return invoke("seal", study, "--out", out, "--password-file", password_file, *FAST, *extra)


def _unseal_with_password(invoke: Invoke, sealed: Path, out: Path, *extra: str) -> Outcome:
    return invoke(
        "unseal", sealed, "--out", out, "--password-env", "DCMSEAL_TEST_PASSWORD", *extra, env=PW_ENV
    )


# -- round trips ------------------------------------------------------------------------------------------
def test_password_round_trip_keeps_relative_paths_and_payloads(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path
) -> None:
    sealed, opened = tmp_path / "sealed", tmp_path / "opened"
    before = snapshot(study)
    result = _seal_with_password(invoke, study, sealed, password_file)
    assert result.code == 0, result.everything
    assert _relative_files(sealed) == _relative_files(study)

    result = _unseal_with_password(invoke, sealed, opened)
    assert result.code == 0, result.everything
    _assert_same_but_preamble(study, opened)
    assert snapshot(study) == before


def test_seal_and_unseal_json_documents(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path
) -> None:
    sealed = tmp_path / "sealed"
    seal_doc = _seal_with_password(invoke, study, sealed, password_file, "--json").json()
    assert seal_doc["schema"] == "dcmseal.seal/1"
    assert [f["status"] for f in seal_doc["files"]] == ["sealed"] * 3
    assert seal_doc["summary"]["total"] == 3
    assert seal_doc["summary"]["ok"] == 3
    assert seal_doc["summary"]["failed"] == 0
    assert seal_doc["summary"]["pbkdf2_derivations"] == 1  # a fresh salt per run, one derivation
    notes = {Path(f["source"]).name: f["notes"] for f in seal_doc["files"]}
    assert any("TIFF" in n for n in notes["IM0001"])
    assert notes["IM0002"] == []
    assert any("non-zero preamble zeroed" in n for n in notes["IM0003"])

    unseal_doc = _unseal_with_password(invoke, sealed, tmp_path / "opened", "--json").json()
    assert unseal_doc["schema"] == "dcmseal.unseal/1"
    assert [f["status"] for f in unseal_doc["files"]] == ["unsealed"] * 3
    assert all(f["content"] == "digested-data" and f["is_part10"] for f in unseal_doc["files"])
    assert unseal_doc["summary"]["ok"] == 3


def test_cli_seal_with_a_process_pool_derives_once(
    dcmseal: Subprocess, tmp_path: Path, password_file: Path
) -> None:
    study = tmp_path / "many"
    template = write_part10(tmp_path / "template.dcm")
    for index in range(20):
        target = study / f"IM{index:04d}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(template, target)
    run = dcmseal(
        "seal",
        study,
        "--out",
        tmp_path / "sealed",
        "--password-file",
        password_file,
        *FAST,
        "--workers",
        "2",
        "--json",
    )
    assert run.code == 0, run.stderr
    summary = run.json()["summary"]
    assert (summary["total"], summary["ok"], summary["workers"], summary["pbkdf2_derivations"]) == (
        20,
        20,
        2,
        1,
    )


@pytest.mark.parametrize(
    "options",
    [
        pytest.param((), id="pkcs1v15-issuer-serial"),
        pytest.param(("--oaep",), id="oaep"),
        pytest.param(("--subject-key-id",), id="subject-key-id"),
        pytest.param(("--oaep", "--subject-key-id"), id="oaep-subject-key-id"),
    ],
)
def test_certificate_only_round_trip(
    invoke: Invoke,
    study: Path,
    tmp_path: Path,
    rsa_identity_factory: RsaIdentityFactory,
    options: tuple[str, ...],
) -> None:
    cert, key = rsa_identity_factory(tmp_path, "cli recipient")
    sealed = tmp_path / "sealed"
    result = invoke("seal", study, "--out", sealed, "--recipient", cert, *options)
    assert result.code == 0, result.everything
    if "--oaep" in options:
        assert "RSA-OAEP key transport is outside PS3.15 D.1" in result.stderr_flat

    (recipient,) = invoke("inspect", sealed / "IM0001", "--json").json()["files"][0]["recipients"]
    assert recipient["kind"] == "certificate"
    assert recipient["key_encryption"] == ("rsaes_oaep" if "--oaep" in options else "rsaes_pkcs1v15")
    assert recipient["in_profile"] is ("--oaep" not in options)
    assert ("subject_key_identifier" in recipient) is ("--subject-key-id" in options)

    for label, extra in (("key-only", ()), ("key-and-cert", ("--cert", str(cert)))):
        opened = tmp_path / f"opened-{label}"
        result = invoke("unseal", sealed, "--out", opened, "--key", key, *extra)
        assert result.code == 0, (label, result.everything)
        _assert_same_but_preamble(study, opened)


@pytest.mark.parametrize(("digest", "in_profile"), [("sha224", False), ("sha384", True)])
def test_a_digest_outside_d1_warns_and_is_reported_outside_the_profile(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path, digest: str, in_profile: bool
) -> None:
    sealed = tmp_path / "sealed"
    result = _seal_with_password(invoke, study, sealed, password_file, "--digest", digest, "--json")
    assert result.code == 0, result.everything
    assert ("outside PS3.15 D.1" in result.stderr_flat) is not in_profile
    envelope = result.json()["files"][0]["envelope"]
    assert envelope["digest"] == digest
    assert envelope["in_profile"] is in_profile


def test_signed_envelope_reports_its_signer(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    sign_cert, sign_key = rsa_identity_factory(tmp_path, "cli signer")
    sealed = tmp_path / "sealed"
    result = _seal_with_password(
        invoke, study, sealed, password_file, "--sign-key", str(sign_key), "--sign-cert", str(sign_cert)
    )
    assert result.code == 0, result.everything
    info = invoke("inspect", sealed / "IM0001", "--json").json()["files"][0]
    assert info["content_type"] == "signed-data"

    document = _unseal_with_password(invoke, sealed, tmp_path / "opened", "--json").json()
    for entry in document["files"]:
        assert entry["content"] == "signed-data"
        assert [s["subject"] for s in entry["signers"]] == ["CN=cli signer"]
    _assert_same_but_preamble(study, tmp_path / "opened")


@pytest.mark.parametrize("cipher", ["3des", "aes128", "aes192", "aes256"])
def test_content_ciphers(invoke: Invoke, tmp_path: Path, password_file: Path, cipher: str) -> None:
    study = tmp_path / "study"
    write_part10(study / "IM0001")
    sealed = tmp_path / "sealed"
    result = _seal_with_password(invoke, study, sealed, password_file, "--cipher", cipher)
    assert result.code == 0, result.everything
    info = invoke("inspect", sealed / "IM0001", "--json").json()["files"][0]
    assert info["content_cipher"] == cipher
    (recipient,) = info["recipients"]
    assert recipient["kek_cipher"] == {"3des": "tripledes_3key"}.get(cipher, f"{cipher}_cbc")
    result = _unseal_with_password(invoke, sealed, tmp_path / "opened")
    assert result.code == 0, result.everything
    assert (tmp_path / "opened" / "IM0001").read_bytes() == (study / "IM0001").read_bytes()


def test_iterations_and_prf_reach_the_envelope(invoke: Invoke, tmp_path: Path, password_file: Path) -> None:
    study = tmp_path / "study"
    write_part10(study / "IM0001")
    sealed = tmp_path / "sealed"
    result = invoke(
        "seal",
        study,
        "--out",
        sealed,
        "--password-file",
        password_file,
        "--iterations",
        "1000",
        "--prf",
        "sha512",
    )
    assert result.code == 0, result.everything
    (recipient,) = invoke("inspect", sealed / "IM0001", "--json").json()["files"][0]["recipients"]
    assert recipient["kind"] == "password"
    assert recipient["kdf"] == "pbkdf2"
    assert recipient["iterations"] == 1000
    assert recipient["prf"] == "sha512"
    assert len(bytes.fromhex(recipient["salt"])) == 16
    assert _unseal_with_password(invoke, sealed, tmp_path / "opened").code == 0


# -- inspect --------------------------------------------------------------------------------------------------
def test_inspect_shows_recipients_algorithms_and_content(
    invoke: Invoke, tmp_path: Path, password_file: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert, _ = rsa_identity_factory(tmp_path, "cli inspect")
    study = tmp_path / "study"
    write_part10(study / "IM0001")
    sealed = tmp_path / "sealed"
    assert _seal_with_password(invoke, study, sealed, password_file, "--recipient", str(cert)).code == 0

    document = invoke("inspect", sealed / "IM0001", "--json").json()
    assert document["schema"] == "dcmseal.inspect/1"
    (info,) = document["files"]
    assert info["content_cipher"] == "aes256"
    assert info["content_type"] == "digested-data"
    assert info["size"] == (sealed / "IM0001").stat().st_size
    kinds = {r["kind"]: r for r in info["recipients"]}
    assert sorted(kinds) == ["certificate", "password"]
    assert (kinds["password"]["iterations"], kinds["password"]["prf"]) == (FAST_ITERATIONS, "sha256")
    assert kinds["certificate"]["issuer"]

    human = invoke("inspect", sealed / "IM0001")
    assert human.code == 0
    text = human.stdout
    for expected in ("AES256-CBC", "digested-data", "password", "certificate", "PBKDF2-HMAC-SHA256", "1,000"):
        assert expected in text, expected
    assert f"salt {kinds['password']['salt'][:8]}" in text


def test_inspect_json_has_per_file_status_and_a_summary(
    invoke: Invoke, tmp_path: Path, password_file: Path
) -> None:
    # style.md §7 and the issue: `--json` on seal/unseal/inspect gives one document with a schema,
    # per-file `status` and a `summary`.
    study = tmp_path / "study"
    write_part10(study / "IM0001")
    assert _seal_with_password(invoke, study, tmp_path / "sealed", password_file).code == 0
    document = invoke("inspect", tmp_path / "sealed" / "IM0001", "--json").json()
    assert document["schema"] == "dcmseal.inspect/1"
    (entry,) = document["files"]
    assert entry.get("status") not in (None, "failed"), sorted(entry)
    assert document.get("summary", {}).get("total") == 1, sorted(document)


def test_inspect_reports_every_file_in_json(invoke: Invoke, tmp_path: Path, password_file: Path) -> None:
    study = tmp_path / "study"
    write_part10(study / "IM0001")
    assert _seal_with_password(invoke, study, tmp_path / "sealed", password_file).code == 0
    plain = copy_ct_small(tmp_path / "plain.dcm")
    result = invoke("inspect", tmp_path / "sealed" / "IM0001", plain, "--json")
    assert result.code == 1
    assert result.stdout.strip(), f"no JSON document on stdout; stderr: {result.stderr_flat}"
    document = result.json()  # one document even though one file failed
    statuses = {Path(f.get("path", f.get("source", ""))).name: f.get("status") for f in document["files"]}
    assert statuses["plain.dcm"] == "failed"
    assert statuses["IM0001"] not in (None, "failed")


def test_inspect_plain_dicom_is_a_one_line_error(invoke: Invoke, tmp_path: Path) -> None:
    plain = copy_ct_small(tmp_path / "ct.dcm")
    result = invoke("inspect", plain)
    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr_flat == f"error: {plain}: not a Secure DICOM File: a plain DICOM PS3.10 file"
    assert "Traceback" not in result.everything


# -- failures: exit 1, named file, nothing written ------------------------------------------------------------
@pytest.fixture
def sealed_study(invoke: Invoke, study: Path, tmp_path: Path, password_file: Path) -> Path:
    sealed = tmp_path / "sealed"
    result = _seal_with_password(invoke, study, sealed, password_file)
    assert result.code == 0, result.everything
    return sealed


def test_wrong_password_exit_1_and_no_output(invoke: Invoke, sealed_study: Path, tmp_path: Path) -> None:
    before = snapshot(sealed_study)
    out = tmp_path / "opened"
    result = invoke(
        "unseal",
        sealed_study,
        "--out",
        out,
        "--password-env",
        "WRONG",
        "--json",
        env={"WRONG": "Wrong-wrong-wrong-1"},
    )
    assert result.code == 1
    files = result.json()["files"]
    assert len(files) == 3
    for entry in files:
        assert entry["status"] == "failed"
        assert entry["reason"] == f"{entry['source']}: {WRONG_KEY_MESSAGE}"
    assert leftovers(out) == []
    assert snapshot(sealed_study) == before


def test_not_a_recipient_exit_1_and_no_output(
    invoke: Invoke, study: Path, tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert, _ = rsa_identity_factory(tmp_path, "cli addressee")
    other_cert, other_key = rsa_identity_factory(tmp_path, "cli bystander")
    sealed = tmp_path / "sealed"
    assert invoke("seal", study, "--out", sealed, "--recipient", cert).code == 0
    for extra in ((), ("--cert", str(other_cert))):
        out = tmp_path / f"opened{len(extra)}"
        result = invoke("unseal", sealed, "--out", out, "--key", other_key, *extra, "--json")
        assert result.code == 1
        reasons = {f["reason"].split(": ", 1)[1] for f in result.json()["files"]}
        assert reasons == {WRONG_KEY_MESSAGE}
        assert leftovers(out) == []


def test_corrupt_envelope_exit_1_names_file_and_problem(
    invoke: Invoke, sealed_study: Path, tmp_path: Path
) -> None:
    broken = sealed_study / "IM0001"
    broken.write_bytes(broken.read_bytes()[:500])
    out = tmp_path / "opened"
    document = _unseal_with_password(invoke, sealed_study, out, "--json")
    assert document.code == 1
    failed = [f for f in document.json()["files"] if f["status"] == "failed"]
    assert [Path(f["source"]).name for f in failed] == ["IM0001"]
    assert failed[0]["reason"].startswith(f"{broken}: ")
    assert "remain" in failed[0]["reason"] or "truncated" in failed[0]["reason"]
    assert _relative_files(out) == ["series2/IM0002", "series2/IM0003"]


def test_digest_mismatch_exit_1_and_no_output(invoke: Invoke, tmp_path: Path) -> None:
    payload = write_part10(tmp_path / "a.dcm").read_bytes()
    sealed = tmp_path / "sealed"
    sealed.mkdir()
    (sealed / "IM0001").write_bytes(
        envelope_bytes(digested_data_der(payload, digest=bytes(32)), inner=cms.RawContent())
    )
    out = tmp_path / "opened"
    result = _unseal_with_password(invoke, sealed, out, "--json")
    assert result.code == 1
    (entry,) = result.json()["files"]
    assert entry["status"] == "failed"
    assert (
        entry["reason"] == f"{sealed / 'IM0001'}: {WRONG_KEY_MESSAGE}"
    )  # a digest says what a wrong key says
    assert leftovers(out) == []


def test_non_dicom_payload_noted_and_refused_with_strict(invoke: Invoke, tmp_path: Path) -> None:
    sealed = tmp_path / "sealed"
    sealed.mkdir()
    (sealed / "letter").write_bytes(envelope_bytes(b"Dear colleague, please find enclosed...\n" * 5))

    lenient = _unseal_with_password(invoke, sealed, tmp_path / "lenient", "--json")
    assert lenient.code == 0
    (entry,) = lenient.json()["files"]
    assert entry["is_part10"] is False
    assert any("not a DICOM PS3.10 file" in note for note in entry["notes"])

    strict_out = tmp_path / "strict"
    strict = _unseal_with_password(invoke, sealed, strict_out, "--strict", "--json")
    assert strict.code == 1
    (entry,) = strict.json()["files"]
    assert entry["status"] == "failed"
    assert "not a DICOM PS3.10 file" in entry["reason"]
    assert leftovers(strict_out) == []


def test_existing_outputs_need_force(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path
) -> None:
    sealed = tmp_path / "sealed"
    assert _seal_with_password(invoke, study, sealed, password_file).code == 0
    first = snapshot(sealed)

    again = _seal_with_password(invoke, study, sealed, password_file, "--json")
    assert again.code == 1
    for entry in again.json()["files"]:
        assert entry["status"] == "failed"
        assert "already exists (use --force" in entry["reason"]
    assert snapshot(sealed) == first
    assert "Traceback" not in again.everything

    forced = _seal_with_password(invoke, study, sealed, password_file, "--force", "--json")
    assert forced.code == 0
    assert [f["status"] for f in forced.json()["files"]] == ["sealed"] * 3


def test_folder_with_a_text_file_seals_the_rest_and_exits_1(
    invoke: Invoke, study: Path, tmp_path: Path, password_file: Path
) -> None:
    (study / "series2" / "notes.txt").write_text("exported 2024-05-01\n")
    sealed = tmp_path / "sealed"
    result = _seal_with_password(invoke, study, sealed, password_file, "--json")
    assert result.code == 1
    document = result.json()
    by_name = {Path(f["source"]).name: f for f in document["files"]}
    assert sorted(by_name) == ["IM0001", "IM0002", "IM0003", "notes.txt"]
    assert by_name["notes.txt"]["status"] == "failed"
    assert "not a DICOM PS3.10 file" in by_name["notes.txt"]["reason"]
    assert [by_name[n]["status"] for n in ("IM0001", "IM0002", "IM0003")] == ["sealed"] * 3
    assert document["summary"]["failed"] == 1
    assert _relative_files(sealed) == ["IM0001", "series2/IM0002", "series2/IM0003"]

    human = _seal_with_password(invoke, study, tmp_path / "sealed-human", password_file)
    assert human.code == 1
    assert "notes.txt" in human.stdout
    assert "3 of 4 files sealed, 1 failed" in human.stderr_flat
