"""Rekeying media (new recipients, same ciphertext), and the registry's recovery and rekey through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from pydicom import dcmread

from dcmseal.audit import FileSink, validate_message
from dcmseal.errors import DecryptionError
from dcmseal.keys.escrow import unlock_escrow_key
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, BurnResult, burn
from dcmseal.media.open import OpenRequest, open_medium
from dcmseal.media.rekey import RekeyRequest, RekeyResult, rekey
from dcmseal.reader.isofiles import extract_iso
from dcmseal.scan import Verdict, scan_paths
from tests.conftest import RsaIdentityFactory
from tests.media.conftest import MediaCli, MediaEscrow, medium_files, openssl_decrypt, openssl_unseal
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD
from tests.peers.postgres import create_database
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
MR_SMALL = pydicom_file("MR_small.dcm")
NEW_PASSWORD = "Harbor-lichen-Copper-saddle-whistle"
README = "README.TXT"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield reg
    reg.close()


def _burn(
    out: Path, registry: Registry, escrow: MediaEscrow, *, output_format: str = "iso", viewer: bool = True
) -> BurnResult:
    request = BurnRequest(
        sources=(str(CT_SMALL), str(MR_SMALL)),
        out=out,
        operator="rekey-tester",
        output_format=output_format,
        password=PASSWORD.encode(),
        escrow_certificate=escrow.certificate,
        iterations=FAST_ITERATIONS,
        viewer=viewer,
    )
    return burn(request, registry=registry, audit=FileSink(out.parent / "burn-audit.log"))


def _rekey(
    medium: Path,
    out: Path,
    registry: Registry,
    escrow: MediaEscrow,
    *,
    audit_log: Path | None = None,
    passwords: tuple[bytes, ...] = (),
    private_keys: tuple[bytes, ...] = (),
    new_password: bytes | None = None,
    recipients: tuple[x509.Certificate, ...] = (),
    keep_recipients: bool = False,
) -> RekeyResult:
    request = RekeyRequest(
        medium=medium,
        out=out,
        operator="rekey-tester",
        escrow_certificate=escrow.certificate,
        iterations=FAST_ITERATIONS,
        passwords=passwords,
        private_keys=private_keys,
        new_password=new_password,
        recipients=recipients,
        keep_recipients=keep_recipients,
    )
    return rekey(request, registry=registry, audit=FileSink(audit_log or out.parent / "rekey-audit.log"))


def _sealed_files(medium: Path, scratch: Path) -> dict[str, Path]:
    """Relative path -> file of every Secure DICOM File on a medium (an ISO image is extracted to ``scratch``)."""
    root = medium
    if medium.is_file():
        extract_iso(medium, scratch)
        root = scratch
    # README.TXT and the offline viewer (INDEX.HTM, VIEWER/) are the medium's only plain files.
    return {
        p.relative_to(root).as_posix(): p
        for p in medium_files(root)
        if p.name != README and p.relative_to(root).parts[0] not in ("INDEX.HTM", "VIEWER")
    }


def _encrypted_content(path: Path) -> bytes:
    info = asn1_cms.ContentInfo.load(path.read_bytes())
    assert info["content_type"].native == "enveloped_data"
    content: bytes = info["content"]["encrypted_content_info"]["encrypted_content"].native
    return content


def _recipient_kinds(path: Path) -> list[str]:
    info = asn1_cms.ContentInfo.load(path.read_bytes())
    return sorted(r.name for r in info["content"]["recipient_infos"])


@pytest.mark.parametrize("output_format", ["iso", "dir"])
def test_rekey_readdresses_every_file_and_reuses_the_ciphertext(
    output_format: str,
    tmp_path: Path,
    registry: Registry,
    media_escrow: MediaEscrow,
    rsa_identity_factory: RsaIdentityFactory,
    openssl_bin: str,
) -> None:
    old = tmp_path / ("old.iso" if output_format == "iso" else "old")
    new = tmp_path / ("new.iso" if output_format == "iso" else "new")
    burned = _burn(old, registry, media_escrow, output_format=output_format)
    doctor_cert, doctor_key = rsa_identity_factory(tmp_path, "New Doctor")

    result = _rekey(
        old,
        new,
        registry,
        media_escrow,
        passwords=(PASSWORD.encode(),),
        new_password=NEW_PASSWORD.encode(),
        recipients=(x509.load_pem_x509_certificate(doctor_cert.read_bytes()),),
    )

    assert result.output_format == output_format
    assert result.medium_id != burned.medium_id
    old_files = _sealed_files(old, tmp_path / "old-x")
    new_files = _sealed_files(new, tmp_path / "new-x")
    assert set(new_files) == set(old_files) == {"DICOMDIR", *(f.file_id for f in burned.files)}
    assert result.files == len(new_files)
    escrow_key = (media_escrow.certificate_path, media_escrow.key_path, media_escrow.passphrase)
    for relative, new_file in new_files.items():
        old_file = old_files[relative]
        assert _encrypted_content(new_file) == _encrypted_content(old_file), relative
        assert new_file.read_bytes() != old_file.read_bytes()
        digested = openssl_unseal(openssl_bin, old_file, password=PASSWORD)
        assert openssl_unseal(openssl_bin, new_file, password=NEW_PASSWORD) == digested
        assert openssl_unseal(openssl_bin, new_file, key=escrow_key) == digested
        assert openssl_unseal(openssl_bin, new_file, key=(doctor_cert, doctor_key, None)) == digested
        assert openssl_decrypt(openssl_bin, new_file, password=PASSWORD).returncode != 0
    readme = (
        (new / README).read_text("ascii")
        if new.is_dir()
        else (tmp_path / "new-x" / README).read_text("ascii")
    )
    assert result.medium_id in readme
    assert NEW_PASSWORD not in readme
    assert NEW_PASSWORD not in result.cover_letter

    opened = open_medium(
        OpenRequest(medium=new, out=tmp_path / "opened", operator="t", passwords=(NEW_PASSWORD.encode(),)),
        audit=FileSink(tmp_path / "open.log"),
    )
    assert opened.failed == ()
    assert opened.disagreements == ()
    uids = {f.sop_instance_uid: f.file_id for f in opened.files if f.sop_instance_uid}
    for source in (CT_SMALL, MR_SMALL):
        expected = dcmread(source)
        file_id = uids[str(expected.SOPInstanceUID)]
        assert file_id is not None
        assert dcmread(tmp_path / "opened" / file_id) == expected

    details = registry.get_medium(result.medium_id)
    assert details.has_escrowed_password
    recovered = registry.recover_password(
        result.medium_id,
        private_key=_escrow_private_key(media_escrow),
        certificate=media_escrow.certificate,
        operator="auditor",
        reason="check the rekeyed medium's escrow",
    )
    assert recovered == NEW_PASSWORD
    assert result.to_json()["schema"] == "dcmseal.rekey/1"


def test_a_rekeyed_medium_is_registered_with_the_originals_counts(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """The registry's file_count means instances for a burn (len(plan.files), DICOMDIR not counted).

    Today rekey.py records ``file_count=count``, where ``count`` also counts the sealed DICOMDIR, so the same
    content is registered as 2 files when burned and 3 when rekeyed (README.TXT's "Files:" line too).
    """
    old = tmp_path / "old"
    burned = _burn(old, registry, media_escrow, output_format="dir")

    result = _rekey(
        old,
        tmp_path / "new",
        registry,
        media_escrow,
        passwords=(PASSWORD.encode(),),
        new_password=NEW_PASSWORD.encode(),
    )

    original, rekeyed = registry.get_medium(burned.medium_id), registry.get_medium(result.medium_id)
    assert rekeyed.file_set_uid == original.file_set_uid
    assert [(s.study_instance_uid, s.instance_count) for s in rekeyed.studies] == [
        (s.study_instance_uid, s.instance_count) for s in original.studies
    ]
    assert rekeyed.file_count == original.file_count == len(burned.files)


def _escrow_private_key(escrow: MediaEscrow) -> rsa.RSAPrivateKey:
    return unlock_escrow_key(escrow.key_path, escrow.passphrase.encode())


def test_rekey_keeps_the_old_recipients_only_when_asked(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow, openssl_bin: str
) -> None:
    old = tmp_path / "old"
    _burn(old, registry, media_escrow, output_format="dir")
    kept, dropped = tmp_path / "kept", tmp_path / "dropped"
    passwords, new_password = (PASSWORD.encode(),), NEW_PASSWORD.encode()

    _rekey(
        old,
        kept,
        registry,
        media_escrow,
        keep_recipients=True,
        passwords=passwords,
        new_password=new_password,
    )
    _rekey(old, dropped, registry, media_escrow, passwords=passwords, new_password=new_password)

    for relative in ("DICOMDIR",):
        assert openssl_decrypt(openssl_bin, kept / relative, password=PASSWORD).returncode == 0
        assert openssl_decrypt(openssl_bin, kept / relative, password=NEW_PASSWORD).returncode == 0
        assert openssl_decrypt(openssl_bin, dropped / relative, password=PASSWORD).returncode != 0
        assert openssl_decrypt(openssl_bin, dropped / relative, password=NEW_PASSWORD).returncode == 0
        assert _recipient_kinds(kept / relative).count("pwri") == 2
        assert _recipient_kinds(dropped / relative) == ["ktri", "pwri"]


def test_the_escrow_key_opens_a_medium_for_rekeying(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow, openssl_bin: str
) -> None:
    old = tmp_path / "old"
    _burn(old, registry, media_escrow, output_format="dir")

    result = _rekey(
        old,
        tmp_path / "new",
        registry,
        media_escrow,
        private_keys=(media_escrow.private_key_der,),
        new_password=NEW_PASSWORD.encode(),
    )

    assert result.files == 3
    assert openssl_decrypt(openssl_bin, tmp_path / "new" / "DICOMDIR", password=NEW_PASSWORD).returncode == 0


def test_rekey_with_a_wrong_password_writes_nothing(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    old = tmp_path / "old.iso"
    _burn(old, registry, media_escrow)
    before = registry.count_media()

    with pytest.raises(DecryptionError):
        _rekey(
            old,
            tmp_path / "new.iso",
            registry,
            media_escrow,
            passwords=(b"Quartz-meadow-Falcon-ribbon-tundra",),
            new_password=NEW_PASSWORD.encode(),
        )

    assert not (tmp_path / "new.iso").exists()
    assert sorted(tmp_path.glob(".*.staging")) == []
    assert registry.count_media() == before


def test_rekey_appends_one_valid_export_message(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    """PS3.15 A.5.3.4: the rekeyed medium's Export message must validate like the burn's.

    Today rekey.py builds ``StudyRef(study_instance_uid=uid)`` without SOP classes while ``encrypted=True``
    adds ``<Encrypted>``: "a study description with optional fields needs SOPClass (PS3.15 Table A.5.2-1)".
    """
    old = tmp_path / "old"
    _burn(old, registry, media_escrow, output_format="dir")
    log = tmp_path / "rekey.log"

    result = _rekey(
        old,
        tmp_path / "new",
        registry,
        media_escrow,
        audit_log=log,
        passwords=(PASSWORD.encode(),),
        new_password=NEW_PASSWORD.encode(),
    )

    [line] = log.read_bytes().splitlines()
    assert b'csd-code="110106"' in line  # Export
    assert result.medium_id.encode() in line
    assert validate_message(line) == []


VIEWER_NAMES = {"INDEX.HTM", "VIEWER/VIEWER.CSS", "VIEWER/VIEWER.JS"}
VIEWER_KEPT = "the offline viewer (INDEX.HTM, VIEWER/) was kept as it is"


@pytest.mark.parametrize("viewer", [True, False])
def test_rekey_carries_the_viewer_over_and_its_readme_paragraph(
    viewer: bool, tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _burn(old, registry, media_escrow, output_format="dir", viewer=viewer)

    result = _rekey(
        old, new, registry, media_escrow, passwords=(PASSWORD.encode(),), new_password=NEW_PASSWORD.encode()
    )

    names = {p.relative_to(new).as_posix() for p in medium_files(new)}
    readme = (new / README).read_text("ascii")
    if viewer:
        assert names >= VIEWER_NAMES
        for name in VIEWER_NAMES:
            assert (new / name).read_bytes() == (old / name).read_bytes(), name
        assert result.notes == (VIEWER_KEPT,)  # one line, no "not encrypted" per file
        assert "open INDEX.HTM in a" in readme
        assert "INDEX.HTM runs only in your browser" in readme
        assert _viewer_paragraph(readme) == _viewer_paragraph((old / README).read_text("ascii"))
        # The rekeyed medium scans as the burned one: its viewer is the known bundle.
        report = scan_paths([new])
        assert report.verdict is Verdict.CLEAN
        assert "medium.viewer" in [f.code for f in report.medium_findings]
    else:
        assert not names & VIEWER_NAMES
        assert result.notes == ()
        assert "INDEX.HTM" not in readme
        assert "There is no program on this medium" in readme


def _viewer_paragraph(readme: str) -> list[str]:
    """README.TXT's lines from the viewer's paragraph to "Nothing on this medium runs by itself"."""
    lines = readme.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("To look at the images now"))
    last = next(i for i, line in enumerate(lines) if line.startswith("Nothing on this medium runs"))
    return lines[first : last + 1]


def test_a_changed_viewer_is_carried_over_and_said_to_be_unknown(
    tmp_path: Path, registry: Registry, media_escrow: MediaEscrow
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _burn(old, registry, media_escrow, output_format="dir")
    script = old / "VIEWER" / "VIEWER.JS"
    script.write_bytes(script.read_bytes() + b"\n")

    result = _rekey(
        old, new, registry, media_escrow, passwords=(PASSWORD.encode(),), new_password=NEW_PASSWORD.encode()
    )

    assert (new / "VIEWER" / "VIEWER.JS").read_bytes() == script.read_bytes()
    assert result.notes == (
        f"{VIEWER_KEPT}: it is not the viewer this dcmseal burns, so `dcmseal scan` flags it",
    )


# --- the registry through the CLI, on SQLite and on PostgreSQL: recovery, then rekey -------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared-registry.sqlite3'}"
    return create_database(request.getfixturevalue("postgres_url"))


def test_recovery_then_rekey_through_the_cli(
    registry_url: str, tmp_path: Path, media_cli: MediaCli, media_escrow: MediaEscrow
) -> None:
    password_file = tmp_path / "pw.txt"
    password_file.write_text(PASSWORD + "\n")
    new_password_file = tmp_path / "new-pw.txt"
    new_password_file.write_text(NEW_PASSWORD + "\n")
    passphrase_file = tmp_path / "escrow-pass.txt"
    passphrase_file.write_text(media_escrow.passphrase + "\n")
    fast = ("--iterations", str(FAST_ITERATIONS))
    medium = tmp_path / "m.iso"

    burned = media_cli(
        "burn",
        CT_SMALL,
        "--out",
        medium,
        "--password-file",
        password_file,
        "--registry",
        registry_url,
        *fast,
        "--json",
        env={"DCMSEAL_OPERATOR": "burner"},
    )
    assert burned.code == 0, burned.everything
    medium_id = burned.json()["medium_id"]

    recovered = media_cli(
        "keys",
        "recover",
        medium_id,
        "--escrow-key",
        media_cli.escrow_dir / "escrow-key.pem",
        "--passphrase-file",
        passphrase_file,
        "--reason",
        "patient lost the letter",
        "--registry",
        registry_url,
        env={"DCMSEAL_OPERATOR": "helpdesk"},
    )
    assert recovered.code == 0, recovered.everything
    assert recovered.stdout.strip() == PASSWORD

    shown = media_cli("keys", "show", medium_id, "--registry", registry_url, "--json")
    assert shown.code == 0, shown.everything
    document = shown.json()
    assert document["operator"] == "burner"
    [recovery] = document["recoveries"]
    assert recovery["operator"] == "helpdesk"
    assert recovery["reason"] == "patient lost the letter"
    assert recovery["recovered_at"]
    assert PASSWORD not in shown.stdout

    rekeyed = media_cli(
        "rekey",
        medium,
        "--out",
        tmp_path / "new.iso",
        "--password-file",
        password_file,
        "--new-password-file",
        new_password_file,
        "--registry",
        registry_url,
        *fast,
        "--json",
    )
    assert rekeyed.code == 0, rekeyed.everything
    assert rekeyed.json()["schema"] == "dcmseal.rekey/1"
    new_id = rekeyed.json()["medium_id"]
    listed = media_cli("keys", "list", "--registry", registry_url, "--json")
    assert {m["medium_id"] for m in listed.json()["media"]} == {medium_id, new_id}

    with_new = media_cli(
        "open", tmp_path / "new.iso", "--out", tmp_path / "o1", "--password-file", new_password_file
    )
    assert with_new.code == 0, with_new.everything
    with_old = media_cli(
        "open", tmp_path / "new.iso", "--out", tmp_path / "o2", "--password-file", password_file
    )
    assert with_old.code == 1
    assert not (tmp_path / "o2").exists()
    with_escrow = media_cli(
        "open",
        tmp_path / "new.iso",
        "--out",
        tmp_path / "o3",
        "--key",
        media_cli.escrow_dir / "escrow-key.pem",
        "--key-passphrase-env",
        "ESCROW_PASSPHRASE",
        env={"ESCROW_PASSPHRASE": media_escrow.passphrase},
    )
    assert with_escrow.code == 0, with_escrow.everything
