"""Tests of the Secure DICOM File recipes (PS3.10 §7.4): seal, unseal, inspect, recognition by content."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dcmseal import cms
from dcmseal.errors import (
    WRONG_KEY_MESSAGE,
    DecryptionError,
    InputError,
    MalformedEnvelopeError,
    NotPart10Error,
    UnprotectedContentError,
)
from dcmseal.part10 import (
    PreambleKind,
    SealPlan,
    UnsealPlan,
    inspect_file,
    is_secure_file,
    seal_file,
    seal_tree,
    unseal_file,
    unseal_tree,
)
from tests.conftest import RsaIdentityFactory
from tests.part10.dicomfiles import (
    CT_SMALL_PATIENT_NAME,
    PASSWORD,
    copy_ct_small,
    digested_data_der,
    envelope_bytes,
    fast_kdf,
    leftovers,
    snapshot,
    write_part10,
)
from tests.vectors import PASSWORD as VECTOR_PASSWORD
from tests.vectors import vector_path

PW = PASSWORD.encode()


def _password_recipient() -> cms.PasswordRecipient:
    return cms.PasswordRecipient(password=PW, kdf=fast_kdf())


def _with_password(password: bytes = PW) -> list[cms.Credential]:
    return [cms.PasswordCredential(password=password)]


def _seal(src: Path, dst: Path, *, recipients: Sequence[cms.Recipient] | None = None) -> Path:
    seal_file(src, dst, recipients=[_password_recipient()] if recipients is None else recipients)
    return dst


def _load_identity(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return certificate, key


# -- seal: the whole Part 10 file, preamble zeroed ----------------------------------------------------
def test_seal_payload_is_the_whole_part10_file_with_a_zeroed_preamble(tmp_path: Path) -> None:
    src = copy_ct_small(tmp_path / "in" / "ct.dcm")
    original = src.read_bytes()
    result = seal_file(src, tmp_path / "sealed" / "ct.dcm", recipients=[_password_recipient()])

    assert result.payload_size == len(original)
    assert result.preamble is PreambleKind.TIFF
    assert result.preamble_zeroed
    assert result.envelope.content_type == "digested-data"
    assert result.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    opened = unseal_file(result.destination, tmp_path / "open" / "ct.dcm", credentials=_with_password())

    payload = opened.destination.read_bytes()
    assert payload == bytes(128) + original[128:]
    assert payload[128:132] == b"DICM"
    assert opened.is_part10
    assert opened.preamble is PreambleKind.ZERO
    assert opened.sop_instance_uid == result.sop_instance_uid
    assert opened.decrypted.inner.kind == "digested-data"
    assert opened.conformant


def test_tiff_preamble_is_zeroed_with_a_note_naming_tiff(tmp_path: Path) -> None:
    result = seal_file(
        copy_ct_small(tmp_path / "ct.dcm"), tmp_path / "ct.p7m", recipients=[_password_recipient()]
    )
    assert len(result.notes) == 1
    assert "TIFF" in result.notes[0]
    assert "zeroed" in result.notes[0]
    assert result.to_json()["preamble_zeroed"] is True


def test_executable_preamble_is_zeroed_and_reported(tmp_path: Path) -> None:
    src = write_part10(tmp_path / "mz.dcm", preamble=b"MZ\x90\x00" + bytes(124))
    original = src.read_bytes()
    result = seal_file(src, tmp_path / "mz.p7m", recipients=[_password_recipient()])

    assert result.preamble is PreambleKind.OTHER
    assert result.notes == ("non-zero preamble zeroed before sealing (PS3.10 §7.5, CVE-2019-11687)",)
    opened = unseal_file(tmp_path / "mz.p7m", tmp_path / "mz.out", credentials=_with_password())
    assert opened.destination.read_bytes() == bytes(128) + original[128:]


def test_zero_preamble_is_sealed_without_a_note(tmp_path: Path) -> None:
    src = write_part10(tmp_path / "zero.dcm")
    result = seal_file(src, tmp_path / "zero.p7m", recipients=[_password_recipient()])
    assert result.preamble is PreambleKind.ZERO
    assert not result.preamble_zeroed
    assert result.notes == ()
    opened = unseal_file(tmp_path / "zero.p7m", tmp_path / "zero.out", credentials=_with_password())
    assert opened.destination.read_bytes() == src.read_bytes()


def test_preamble_zeroing_is_logged_as_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # style.md §5: "WARNING: accepted non-conformance (raw payload, preamble zeroed)".
    caplog.set_level(logging.DEBUG, logger="dcmseal")
    seal_file(copy_ct_small(tmp_path / "ct.dcm"), tmp_path / "ct.p7m", recipients=[_password_recipient()])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("dcmseal")]
    assert any("preamble" in r.getMessage() for r in warnings), [
        (r.levelname, r.getMessage()) for r in caplog.records
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("notes.txt", b"Referral letter, not an image.\n" * 20, id="text"),
        pytest.param("empty.dcm", b"", id="empty"),
        pytest.param("cut-in-preamble.dcm", 100, id="truncated-before-DICM"),
        pytest.param("cut-in-meta-group.dcm", 200, id="truncated-before-transfer-syntax"),
        # CT_small's File Meta group ends at offset 336; cut at 300 the file is a truncated DICOM file.
        pytest.param("cut-in-meta.dcm", 300, id="truncated-inside-file-meta"),
    ],
)
def test_seal_refuses_what_is_not_part10(tmp_path: Path, name: str, content: bytes | int) -> None:
    src = tmp_path / "in" / name
    src.parent.mkdir()
    if isinstance(content, int):  # CT_small cut after `content` bytes
        src.write_bytes(copy_ct_small(tmp_path / "whole.dcm").read_bytes()[:content])
    else:
        src.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(NotPart10Error) as info:
        seal_file(src, out / name, recipients=[_password_recipient()])
    message = str(info.value)
    assert message.startswith(f"{src}: ")
    assert "\n" not in message
    assert leftovers(out) == []


def test_seal_refuses_a_secure_file_whatever_its_name(tmp_path: Path) -> None:
    sealed = _seal(write_part10(tmp_path / "a.dcm"), tmp_path / "a.p7m")
    renamed = tmp_path / "x.dcm"
    shutil.copyfile(sealed, renamed)
    for src in (sealed, renamed):
        with pytest.raises(NotPart10Error, match="already a Secure DICOM File"):
            seal_file(src, tmp_path / "twice" / src.name, recipients=[_password_recipient()])
    assert leftovers(tmp_path / "twice") == []


def test_seal_refuses_a_missing_input(tmp_path: Path) -> None:
    missing = tmp_path / "missing.dcm"
    with pytest.raises(InputError) as info:
        seal_file(missing, tmp_path / "out.p7m", recipients=[_password_recipient()])
    assert str(info.value).startswith(f"{missing}: ")


# -- recognised by content, never by name -------------------------------------------------------------
def test_secure_file_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    sealed = _seal(write_part10(tmp_path / "a.dcm"), tmp_path / "a.p7m")
    disguised = tmp_path / "x.dcm"
    shutil.copyfile(sealed, disguised)
    plain_named_p7m = tmp_path / "x.p7m"
    write_part10(plain_named_p7m)
    text = tmp_path / "envelope.p7m"
    text.write_text("-----BEGIN PKCS7-----\n")
    empty = tmp_path / "empty.p7m"
    empty.write_bytes(b"")

    assert is_secure_file(sealed)
    assert is_secure_file(disguised)
    assert not is_secure_file(plain_named_p7m)
    assert not is_secure_file(text)
    assert not is_secure_file(empty)


@pytest.mark.parametrize("name", ["ossl-pwri-aes256.p7m", "ossl-pwri-aes256-stream-ber.p7m"])
def test_openssl_envelopes_are_secure_files(name: str) -> None:
    assert is_secure_file(vector_path(name))


def test_unseal_tree_opens_a_sealed_file_named_dcm(tmp_path: Path) -> None:
    src = write_part10(tmp_path / "a.dcm")
    sealed_dir = tmp_path / "sealed"
    _seal(src, sealed_dir / "IM0001.dcm")
    report = unseal_tree([sealed_dir], tmp_path / "open", UnsealPlan(passwords=(PW,)), workers=1)
    assert [o.status for o in report.outcomes] == ["unsealed"]
    assert (tmp_path / "open" / "IM0001.dcm").read_bytes() == src.read_bytes()


# -- unseal: decrypt, verify, check the payload ---------------------------------------------------------
def test_non_dicom_payload_is_reported(tmp_path: Path) -> None:
    payload = b"%PDF-1.4 not a DICOM file at all\n" * 8
    src = tmp_path / "report.p7m"
    src.write_bytes(envelope_bytes(payload))
    result = unseal_file(src, tmp_path / "out" / "report", credentials=_with_password())

    assert not result.is_part10
    assert result.sop_instance_uid is None
    assert not result.conformant
    assert any("not a DICOM PS3.10 file" in note for note in result.notes)
    assert result.to_json()["is_part10"] is False
    assert result.destination.read_bytes() == payload


def test_non_dicom_payload_is_an_error_with_strict_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "report.p7m"
    src.write_bytes(envelope_bytes(b"just some text, no preamble, no DICM\n" * 8))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(NotPart10Error) as info:
        unseal_file(src, out / "report", credentials=_with_password(), strict=True)
    assert str(info.value) == f"{src}: the decrypted payload is not a DICOM PS3.10 file"
    assert leftovers(out) == []


def test_openssl_raw_payload_is_refused_by_default_and_reported_when_accepted(tmp_path: Path) -> None:
    src = vector_path("ossl-pwri-aes256.p7m")
    credentials = _with_password(VECTOR_PASSWORD)
    with pytest.raises(UnprotectedContentError, match="no digest or signature") as info:
        unseal_file(src, tmp_path / "refused" / "plain.txt", credentials=credentials)
    assert str(info.value).startswith(f"{src}: ")
    assert leftovers(tmp_path / "refused") == []
    result = unseal_file(src, tmp_path / "plain.txt", credentials=credentials, accept_unprotected=True)
    assert result.destination.read_bytes() == vector_path("plain.txt").read_bytes()
    assert result.decrypted.inner.kind == "raw"
    assert not result.verified
    assert result.to_json()["integrity"] == "not-verified"
    assert any("not a DICOM PS3.10 file" in n for n in result.notes)
    assert any("integrity NOT verified" in n for n in result.notes)
    with pytest.raises(NotPart10Error):
        unseal_file(
            src,
            tmp_path / "strict" / "plain.txt",
            credentials=credentials,
            strict=True,
            accept_unprotected=True,
        )
    assert leftovers(tmp_path / "strict") == []


def test_a_non_zero_preamble_inside_an_envelope_is_written_zeroed(tmp_path: Path) -> None:
    # Another writer may seal the file as it is; PS3.10 §7.5: the reader zeroes it and says so.
    original = copy_ct_small(tmp_path / "ct.dcm").read_bytes()
    assert any(original[:128])
    src = tmp_path / "ct.p7m"
    src.write_bytes(envelope_bytes(original))
    result = unseal_file(src, tmp_path / "ct.out", credentials=_with_password())
    assert result.is_part10
    assert result.preamble is PreambleKind.TIFF  # as sealed
    assert result.preamble_zeroed
    assert any("preamble was not zero (tiff): written zeroed" in n for n in result.notes)
    assert result.destination.read_bytes() == bytes(128) + original[128:]
    assert result.to_json()["preamble_zeroed"] is True


def test_keep_preamble_writes_the_payload_as_sealed(tmp_path: Path) -> None:
    original = copy_ct_small(tmp_path / "ct.dcm").read_bytes()
    src = tmp_path / "ct.p7m"
    src.write_bytes(envelope_bytes(original))
    result = unseal_file(src, tmp_path / "ct.out", credentials=_with_password(), keep_preamble=True)
    assert not result.preamble_zeroed
    assert any("preamble is not zero (tiff), kept as sealed" in n for n in result.notes)
    assert result.destination.read_bytes() == original


# -- errors: one type, one message, nothing left behind -------------------------------------------------
def test_wrong_password_leaves_no_output(tmp_path: Path) -> None:
    sealed = _seal(write_part10(tmp_path / "a.dcm"), tmp_path / "sealed" / "a.dcm")
    out = tmp_path / "out"
    with pytest.raises(DecryptionError) as info:
        unseal_file(sealed, out / "a.dcm", credentials=_with_password(b"Not-the-right-password-at-all"))
    assert str(info.value) == f"{sealed}: {WRONG_KEY_MESSAGE}"
    assert info.value.__cause__ is None
    assert leftovers(out) == []


def test_not_a_recipient_gives_the_same_message_as_a_wrong_password(
    tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert_path, _ = rsa_identity_factory(tmp_path, "part10 addressee")
    other_cert_path, other_key_path = rsa_identity_factory(tmp_path, "part10 bystander")
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    sealed = _seal(
        write_part10(tmp_path / "a.dcm"),
        tmp_path / "sealed" / "a.dcm",
        recipients=[cms.CertificateRecipient(certificate=certificate)],
    )
    other_cert, other_key = _load_identity(other_cert_path, other_key_path)
    out = tmp_path / "out"
    messages = set()
    for credential in (
        cms.PrivateKeyCredential(private_key=other_key, certificate=other_cert),
        cms.PrivateKeyCredential(private_key=other_key),
        cms.PasswordCredential(password=PW),
    ):
        with pytest.raises(DecryptionError) as info:
            unseal_file(sealed, out / "a.dcm", credentials=[credential])
        messages.add(str(info.value))
    assert messages == {f"{sealed}: {WRONG_KEY_MESSAGE}"}
    assert leftovers(out) == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:10], id="truncated-in-header"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated-in-content"),
        pytest.param(lambda b: b[:-1], id="last-byte-missing"),
        pytest.param(lambda b: b"\x31" + b[1:], id="not-a-sequence"),
        pytest.param(lambda b: b[:5] + bytes([b[5] ^ 0x01]) + b[6:], id="not-enveloped-data"),
        pytest.param(lambda b: b + b"trailing junk", id="trailing-junk"),
    ],
)
def test_corrupt_envelope_names_the_file_and_the_problem(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    sealed = _seal(write_part10(tmp_path / "a.dcm"), tmp_path / "a.p7m")
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(damage(sealed.read_bytes()))
    out = tmp_path / "out"
    with pytest.raises(MalformedEnvelopeError) as info:
        unseal_file(broken, out / "a.dcm", credentials=_with_password())
    message = str(info.value)
    assert message.startswith(f"{broken}: ")
    assert len(message) > len(f"{broken}: ") + 10
    assert "\n" not in message
    assert leftovers(out) == []


def test_plain_dicom_given_to_unseal_is_an_input_error(tmp_path: Path) -> None:
    src = copy_ct_small(tmp_path / "ct.dcm")
    with pytest.raises(InputError) as info:
        unseal_file(src, tmp_path / "out" / "ct.dcm", credentials=_with_password())
    assert str(info.value).startswith(f"{src}: ")
    assert leftovers(tmp_path / "out") == []


def test_digest_mismatch_is_an_integrity_error_and_leaves_nothing(tmp_path: Path) -> None:
    payload = write_part10(tmp_path / "a.dcm").read_bytes()
    good = tmp_path / "good.p7m"
    good.write_bytes(envelope_bytes(digested_data_der(payload), inner=cms.RawContent()))
    bad = tmp_path / "bad.p7m"
    bad.write_bytes(envelope_bytes(digested_data_der(payload, digest=bytes(32)), inner=cms.RawContent()))

    # The control: the same construction with the true digest opens and is read as DigestedData.
    opened = unseal_file(good, tmp_path / "good.dcm", credentials=_with_password())
    assert opened.decrypted.inner.kind == "digested-data"
    assert opened.destination.read_bytes() == payload

    out = tmp_path / "out"
    with pytest.raises(DecryptionError) as info:
        unseal_file(bad, out / "a.dcm", credentials=_with_password())
    assert str(info.value) == f"{bad}: {WRONG_KEY_MESSAGE}"
    assert leftovers(out) == []


def test_failed_unseal_with_overwrite_keeps_the_existing_output(tmp_path: Path) -> None:
    payload = write_part10(tmp_path / "a.dcm").read_bytes()
    bad = tmp_path / "bad.p7m"
    bad.write_bytes(envelope_bytes(digested_data_der(payload, digest=b"\xff" * 32), inner=cms.RawContent()))
    existing = tmp_path / "out" / "a.dcm"
    existing.parent.mkdir()
    existing.write_bytes(b"an earlier, good result")
    with pytest.raises(DecryptionError):
        unseal_file(bad, existing, credentials=_with_password(), overwrite=True)
    assert existing.read_bytes() == b"an earlier, good result"
    assert leftovers(existing.parent) == [existing]


def test_existing_output_is_not_overwritten_without_overwrite(tmp_path: Path) -> None:
    src = write_part10(tmp_path / "a.dcm")
    dst = tmp_path / "a.p7m"
    dst.write_bytes(b"keep me")
    with pytest.raises(InputError, match="already exists"):
        seal_file(src, dst, recipients=[_password_recipient()])
    assert dst.read_bytes() == b"keep me"
    seal_file(src, dst, recipients=[_password_recipient()], overwrite=True)
    assert is_secure_file(dst)


# -- inputs read-only, outputs atomic -------------------------------------------------------------------
def test_inputs_are_never_modified(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    copy_ct_small(inputs / "ct.dcm")
    write_part10(inputs / "mz.dcm", preamble=b"MZ" + bytes(126))
    (inputs / "notes.txt").write_text("not DICOM\n")
    before = snapshot(inputs)
    plan = SealPlan(password=PW, kdf=fast_kdf())
    seal_report = seal_tree([inputs], tmp_path / "sealed", plan, workers=1)
    assert snapshot(inputs) == before
    assert [o.status for o in seal_report.outcomes] == ["sealed", "sealed", "failed"]

    sealed_before = snapshot(tmp_path / "sealed")
    unseal_tree([tmp_path / "sealed"], tmp_path / "open", UnsealPlan(passwords=(PW,)), workers=1)
    unseal_tree(
        [tmp_path / "sealed"], tmp_path / "wrong", UnsealPlan(passwords=(b"Wrong-wrong-wrong-1",)), workers=1
    )
    assert snapshot(tmp_path / "sealed") == sealed_before
    assert snapshot(inputs) == before


def test_outputs_are_complete_private_files_without_temporaries(tmp_path: Path) -> None:
    src = copy_ct_small(tmp_path / "ct.dcm")
    sealed = _seal(src, tmp_path / "sealed" / "ct.dcm")
    opened = unseal_file(sealed, tmp_path / "open" / "ct.dcm", credentials=_with_password()).destination
    assert leftovers(tmp_path / "sealed") == [sealed]
    assert leftovers(tmp_path / "open") == [opened]
    assert sealed.stat().st_mode & 0o777 == 0o600
    assert opened.stat().st_mode & 0o777 == 0o600


# -- certificates and signatures ------------------------------------------------------------------------
def test_signed_and_addressed_to_a_certificate(
    tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert_path, key_path = rsa_identity_factory(tmp_path, "part10 recipient")
    sign_cert_path, sign_key_path = rsa_identity_factory(tmp_path, "part10 signer")
    certificate, key = _load_identity(cert_path, key_path)
    sign_cert, sign_key = _load_identity(sign_cert_path, sign_key_path)
    src = write_part10(tmp_path / "a.dcm")
    seal_file(
        src,
        tmp_path / "a.p7m",
        recipients=[cms.CertificateRecipient(certificate=certificate)],
        signer=cms.SignedContent(private_key=sign_key, certificate=sign_cert),
    )
    result = unseal_file(
        tmp_path / "a.p7m",
        tmp_path / "a.out",
        credentials=[cms.PrivateKeyCredential(private_key=key, certificate=certificate)],
    )
    assert result.decrypted.inner.kind == "signed-data"
    assert [s.subject for s in result.decrypted.inner.signers] == ["CN=part10 signer"]
    assert result.destination.read_bytes() == src.read_bytes()


# -- inspect ------------------------------------------------------------------------------------------
def test_inspect_describes_recipients_cipher_and_content(
    tmp_path: Path, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert_path, _ = rsa_identity_factory(tmp_path, "part10 inspect")
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    kdf = fast_kdf(prf=cms.Prf.SHA512)
    sealed = tmp_path / "a.dcm.sealed"
    seal_file(
        write_part10(tmp_path / "a.dcm"),
        sealed,
        recipients=[
            cms.PasswordRecipient(password=PW, kdf=kdf),
            cms.CertificateRecipient(certificate=certificate),
        ],
        cipher=cms.ContentCipher.AES128_CBC,
    )
    info = inspect_file(sealed)
    assert info.size == sealed.stat().st_size
    assert info.envelope.content_cipher is cms.ContentCipher.AES128_CBC
    assert info.envelope.content_type == "digested-data"
    # RecipientInfos is a SET OF: DER orders it, so look recipients up by kind.
    by_kind = {r.kind: r for r in info.envelope.recipients}
    assert sorted(by_kind) == ["certificate", "password"]
    password, cert = by_kind["password"], by_kind["certificate"]
    assert (password.kind, password.salt, password.iterations, password.prf) == (
        "password",
        kdf.salt.hex(),
        kdf.iterations,
        "sha512",
    )
    assert cert.kind == "certificate"
    assert cert.serial_number == certificate.serial_number


def test_inspect_refuses_a_plain_dicom_file(tmp_path: Path) -> None:
    src = copy_ct_small(tmp_path / "ct.p7m")
    with pytest.raises(InputError) as info:
        inspect_file(src)
    assert str(info.value) == f"{src}: not a Secure DICOM File: a plain DICOM PS3.10 file"


# -- logs ---------------------------------------------------------------------------------------------
def test_logs_never_hold_the_password_or_the_patient_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="dcmseal")
    inputs = tmp_path / "in"
    copy_ct_small(inputs / "ct.dcm")
    (inputs / "notes.txt").write_text("not DICOM\n")
    sealed = _seal(inputs / "ct.dcm", tmp_path / "one" / "ct.dcm")
    unseal_file(sealed, tmp_path / "one-open" / "ct.dcm", credentials=_with_password())
    with pytest.raises(DecryptionError):
        unseal_file(sealed, tmp_path / "wrong" / "ct.dcm", credentials=_with_password(b"Wrong-wrong-wrong-1"))
    plan = SealPlan(password=PW, kdf=fast_kdf())
    seal_tree([inputs], tmp_path / "sealed", plan, workers=1)
    unseal_tree([tmp_path / "sealed"], tmp_path / "open", UnsealPlan(passwords=(PW,)), workers=1)

    assert any(r.name.startswith("dcmseal") for r in caplog.records), "no log records to check"
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, *(str(r.args) for r in caplog.records)):
        assert PASSWORD not in text
        assert CT_SMALL_PATIENT_NAME not in text
        assert "CompressedSamples" not in text
