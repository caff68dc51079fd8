"""Tests of `dcmseal keys` (init, list, show, recover) and `dcmseal recipients` (the address book, burn --to)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydicom import dcmread

from dcmseal.audit import validate_message
from tests.cli.conftest import Invoke
from tests.conftest import RsaIdentityFactory
from tests.media.conftest import MediaEscrow, install_escrow, make_media_escrow
from tests.part10.dicomfiles import FAST_ITERATIONS
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
FAST = ("--iterations", str(FAST_ITERATIONS))
PASSPHRASE = "Escrow-Pass1"


@pytest.fixture(scope="session")
def cli_escrow(tmp_path_factory: pytest.TempPathFactory) -> MediaEscrow:
    return make_media_escrow(tmp_path_factory.mktemp("cli-keys-escrow"))


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$XDG_DATA_HOME`` in tmp_path (no escrow identity yet); returns its dcmseal folder."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "dcmseal"


@pytest.fixture
def data_dir(data_home: Path, cli_escrow: MediaEscrow) -> Path:
    """The data folder with the session's escrow identity installed as `keys init` leaves it."""
    install_escrow(cli_escrow, data_home.parent)
    return data_home


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "escrow-passphrase.txt"
    path.write_text(PASSPHRASE + "\n")
    return path


def _audit_lines(data_dir: Path) -> list[bytes]:
    log = data_dir / "audit.log"
    return log.read_bytes().splitlines() if log.exists() else []


def _burn(invoke: Invoke, out: Path, *args: str | Path) -> str:
    result = invoke("burn", CT_SMALL, "--out", out, *args, *FAST, "--json")
    assert result.code == 0, result.everything
    medium_id: str = result.json()["medium_id"]
    return medium_id


# --- keys init --------------------------------------------------------------------------------------------------


def test_keys_init_creates_an_encrypted_rsa_3072_escrow_identity_that_burn_uses(
    invoke: Invoke, tmp_path: Path, data_home: Path, passphrase_file: Path, password_file: Path
) -> None:
    result = invoke("keys", "init", "--org", "Example Clinic", "--passphrase-file", passphrase_file, "--json")

    assert result.code == 0, result.everything
    assert result.json()["schema"] == "dcmseal.keys.init/1"
    key_path = data_home / "escrow" / "escrow-key.pem"
    cert_path = data_home / "escrow" / "escrow-cert.pem"
    with pytest.raises(TypeError):  # encrypted: no key without the passphrase
        serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=PASSPHRASE.encode())
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size >= 3072
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    certified = certificate.public_key()
    assert isinstance(certified, rsa.RSAPublicKey)
    assert certified.public_numbers() == key.public_key().public_numbers()
    assert "Example Clinic" in certificate.subject.rfc4514_string()
    assert key_path.stat().st_mode & 0o077 == 0
    # Key creation is a change of the security configuration (PS3.15 A.5.3.11, CID 403 110129).
    [created] = _audit_lines(data_home)
    assert validate_message(created) == []
    assert b'csd-code="110129"' in created
    assert result.json()["fingerprint"].encode() in created
    assert PASSPHRASE.encode() not in created

    again = invoke("keys", "init", "--org", "Other", "--passphrase-file", passphrase_file)
    assert again.code == 1
    assert "never overwritten" in again.stderr_flat
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == certificate

    burned = invoke(
        "burn", CT_SMALL, "--out", tmp_path / "m.iso", "--password-file", password_file, *FAST, "--json"
    )
    assert burned.code == 0, burned.everything
    assert burned.json()["recipients"] == ["password", certificate.subject.rfc4514_string()]


def test_burn_without_an_escrow_identity_says_how_to_make_one(
    invoke: Invoke, tmp_path: Path, data_home: Path, password_file: Path
) -> None:
    result = invoke("burn", CT_SMALL, "--out", tmp_path / "m.iso", "--password-file", password_file, *FAST)

    assert result.code == 2
    assert "keys init" in result.stderr_flat
    assert not (tmp_path / "m.iso").exists()


# --- the registry: list, show, recover ----------------------------------------------------------------------


def test_recovery_prints_the_password_and_is_recorded_and_audited(
    invoke: Invoke, tmp_path: Path, data_dir: Path, passphrase_file: Path, password_file: Path
) -> None:
    medium_id = _burn(invoke, tmp_path / "m.iso", "--password-file", password_file, "--label", "Chest CT")
    listed = invoke("keys", "list", "--json")
    assert [m["medium_id"] for m in listed.json()["media"]] == [medium_id]
    assert listed.json()["media"][0]["label"] == "CHEST_CT"

    recovered = invoke(
        "keys",
        "recover",
        medium_id,
        "--escrow-key",
        data_dir / "escrow" / "escrow-key.pem",
        "--passphrase-file",
        passphrase_file,
        "--reason",
        "the patient lost the letter",
        env={"DCMSEAL_OPERATOR": "helpdesk-7"},
    )

    assert recovered.code == 0, recovered.everything
    assert recovered.stdout.strip() == password_file.read_text().strip()
    assert "recorded" in recovered.stderr_flat
    shown = invoke("keys", "show", medium_id, "--json")
    assert shown.code == 0, shown.everything
    document = shown.json()
    assert document["schema"] == "dcmseal.keys.show/1"
    assert password_file.read_text().strip() not in shown.stdout
    [recovery] = document["recoveries"]
    assert recovery["operator"] == "helpdesk-7"  # who
    assert recovery["recovered_at"]  # when
    assert recovery["reason"] == "the patient lost the letter"  # why
    text = invoke("keys", "show", medium_id)
    assert "helpdesk-7" in text.stdout
    assert "the patient lost the letter" in text.stdout
    _export, alert = _audit_lines(data_dir)
    assert validate_message(alert) == []
    assert b'csd-code="110113"' in alert  # Security Alert
    assert medium_id.encode() in alert
    assert password_file.read_text().strip().encode() not in alert


def test_the_security_alert_names_the_medium_as_registered_not_as_typed(
    invoke: Invoke, tmp_path: Path, data_dir: Path, passphrase_file: Path, password_file: Path
) -> None:
    """The registry forgives case and Crockford look-alikes when a person types a medium ID; the audit trail
    must still name the medium by its one canonical ID, or a search for it misses the recovery.

    Today cli/keys.py (recover) passes the argument as typed, ``medium_id=medium``, to security_alert.
    """
    medium_id = _burn(invoke, tmp_path / "m.iso", "--password-file", password_file)
    typed = medium_id.lower()

    recovered = invoke(
        "keys",
        "recover",
        typed,
        "--escrow-key",
        data_dir / "escrow" / "escrow-key.pem",
        "--passphrase-file",
        passphrase_file,
        "--reason",
        "the patient lost the letter",
    )

    assert recovered.code == 0, recovered.everything
    assert invoke("keys", "show", typed, "--json").json()["recoveries"][0]["medium_id"] == medium_id
    alert = _audit_lines(data_dir)[-1]
    assert b'csd-code="110113"' in alert
    assert f'ParticipantObjectID="{medium_id}"'.encode() in alert


def test_recovery_with_a_wrong_passphrase_reveals_and_records_nothing(
    invoke: Invoke, tmp_path: Path, data_dir: Path, password_file: Path
) -> None:
    medium_id = _burn(invoke, tmp_path / "m.iso", "--password-file", password_file)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("Not-the-escrow-pass\n")

    result = invoke(
        "keys",
        "recover",
        medium_id,
        "--escrow-key",
        data_dir / "escrow" / "escrow-key.pem",
        "--passphrase-file",
        wrong,
        "--reason",
        "curious",
    )

    assert result.code == 1
    assert password_file.read_text().strip() not in result.everything
    assert invoke("keys", "show", medium_id, "--json").json()["recoveries"] == []
    _export, alert = _audit_lines(data_dir)  # the burn's Export, then the failed attempt
    assert b'EventOutcomeIndicator="8"' in alert
    assert b"110132" in alert  # Use of Restricted Function, as a recovery that succeeds
    assert password_file.read_text().strip().encode() not in alert
    assert validate_message(alert) == []


def test_recovery_needs_a_reason(
    invoke: Invoke, tmp_path: Path, data_dir: Path, passphrase_file: Path, password_file: Path
) -> None:
    medium_id = _burn(invoke, tmp_path / "m.iso", "--password-file", password_file)

    result = invoke(
        "keys",
        "recover",
        medium_id,
        "--escrow-key",
        data_dir / "escrow" / "escrow-key.pem",
        "--passphrase-file",
        passphrase_file,
        "--reason",
        "   ",
    )

    assert result.code == 2
    assert password_file.read_text().strip() not in result.everything


# --- the address book -----------------------------------------------------------------------------------------


def test_burn_to_a_partner_from_the_address_book_opens_with_its_key(
    invoke: Invoke, tmp_path: Path, data_dir: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert, key = rsa_identity_factory(tmp_path, "St Elsewhere Radiology")
    added = invoke("recipients", "add", "elsewhere", cert, "--json")
    assert added.code == 0, added.everything
    [filed] = _audit_lines(data_dir)
    assert b'csd-code="110129"' in filed
    assert added.json()["fingerprint"].encode() in filed
    listed = invoke("recipients", "list", "--json")
    assert [r["name"] for r in listed.json()["recipients"]] == ["elsewhere"]

    medium = tmp_path / "m.iso"
    burned = invoke("burn", CT_SMALL, "--out", medium, "--to", "elsewhere", *FAST, "--json")
    assert burned.code == 0, burned.everything
    assert burned.json()["recipients"][0] == "CN=St Elsewhere Radiology"
    assert "password" not in burned.json()["recipients"]
    opened = invoke("open", medium, "--out", tmp_path / "opened", "--key", key, "--json")
    assert opened.code == 0, opened.everything
    [instance] = [f for f in opened.json()["files"] if f["sop_instance_uid"]]
    assert dcmread(tmp_path / "opened" / instance["file_id"]) == dcmread(CT_SMALL)

    assert invoke("recipients", "remove", "elsewhere").code == 0
    assert invoke("recipients", "list", "--json").json()["recipients"] == []
    gone = invoke("burn", CT_SMALL, "--out", tmp_path / "m2.iso", "--to", "elsewhere", *FAST)
    assert gone.code == 1
    assert "elsewhere" in gone.stderr_flat
    assert not (tmp_path / "m2.iso").exists()


def test_burn_to_an_expired_partner_needs_allow_expired(
    invoke: Invoke, tmp_path: Path, data_dir: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert, key = rsa_identity_factory(tmp_path, "Former Partner", not_valid_after_days=-1)
    assert invoke("recipients", "add", "former", cert).code == 0
    medium = tmp_path / "m.iso"

    refused = invoke("burn", CT_SMALL, "--out", medium, "--to", "former", *FAST)
    allowed = invoke("burn", CT_SMALL, "--out", medium, "--to", "former", "--allow-expired", *FAST)

    assert refused.code == 1
    assert "expired" in refused.stderr_flat
    assert allowed.code == 0, allowed.everything
    opened = invoke("open", medium, "--out", tmp_path / "opened", "--key", key, "--cert", cert)
    assert opened.code == 0, opened.everything
