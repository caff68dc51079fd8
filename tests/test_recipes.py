"""The safe recipes dcmseal.seal and dcmseal.unseal: Datasets, bytes and paths; policy and defaults inside."""

from __future__ import annotations

from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydicom import dcmread
from pydicom.dataset import Dataset

from dcmseal import cms
from dcmseal.config import DEFAULT_PBKDF2_ITERATIONS, DEFAULT_SALT_BYTES, Settings
from dcmseal.errors import (
    DecryptionError,
    InputError,
    NotPart10Error,
    OutputExistsError,
    UsageError,
    WeakPasswordError,
)
from dcmseal.part10 import seal_file
from dcmseal.recipes import SealedFile, UnsealedFile, seal, unseal
from tests.conftest import RsaIdentityFactory
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD, leftovers
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
#: The count tests can afford; the defaults themselves are checked once (test_the_named_defaults_...).
FAST = Settings(pbkdf2_iterations=FAST_ITERATIONS)


@pytest.fixture
def ct() -> Dataset:
    return dcmread(CT_SMALL)


def _pwri(sealed: bytes) -> asn1_cms.PasswordRecipientInfo:
    info = asn1_cms.ContentInfo.load(sealed)["content"]["recipient_infos"][0]
    assert info.name == "pwri"
    return info.chosen


def test_a_dataset_sealed_with_a_str_password_comes_back_equal(ct: Dataset) -> None:
    sealed = seal(ct, password=PASSWORD, settings=FAST)
    assert cms.is_enveloped_data(sealed[:32])
    assert b"CompressedSamples" not in sealed  # the patient's name is inside the envelope only
    opened = unseal(sealed, password=PASSWORD)
    assert isinstance(opened, Dataset)
    assert opened.SOPInstanceUID == ct.SOPInstanceUID
    assert opened.PatientName == ct.PatientName
    assert opened.PixelData == ct.PixelData


def test_the_named_defaults_reach_the_envelope_and_it_is_in_profile(tmp_path: Path) -> None:
    result = seal(CT_SMALL, tmp_path / "CT1", password=PASSWORD)
    assert isinstance(result, SealedFile)
    assert result.in_profile
    assert result.outside_profile == ()
    (recipient,) = result.envelope.recipients
    assert (recipient.iterations, recipient.prf, len(bytes.fromhex(recipient.salt or ""))) == (
        DEFAULT_PBKDF2_ITERATIONS,
        "sha256",
        DEFAULT_SALT_BYTES,
    )
    assert result.envelope.content_cipher is cms.ContentCipher.AES256_CBC
    # CT_small carries a TIFF preamble: sealed as zeros, and said so.
    assert any("preamble" in note for note in result.notes)


def test_every_seal_draws_a_fresh_salt(ct: Dataset) -> None:
    salts = {
        bytes(
            _pwri(seal(ct, password=PASSWORD, settings=FAST))["key_derivation_algorithm"]["parameters"][
                "salt"
            ].chosen.native
        )
        for _ in range(3)
    }
    assert len(salts) == 3


def test_the_issue_example_is_refused_by_the_recipe(ct: Dataset) -> None:
    # Issue 17: b"a" sealed CT_small and reported in_profile=True through the hazmat path.
    with pytest.raises(WeakPasswordError, match="password refused: shorter than 12 characters"):
        seal(ct, password=b"a")
    with pytest.raises(UsageError, match="salt_bytes must be at least 8"):
        Settings(salt_bytes=1)


def test_weak_parameters_let_through_are_never_in_profile(tmp_path: Path) -> None:
    weak = Settings(pbkdf2_iterations=1, pbkdf2_prf="sha1")
    result = seal(CT_SMALL, tmp_path / "CT1", password=b"a", allow_weak_password=True, settings=weak)
    assert result.in_profile is False
    assert result.password_problems
    assert any("RFC 8018" in deviation for deviation in result.outside_profile)


def test_the_password_must_not_hold_the_patient_name(ct: Dataset) -> None:
    with pytest.raises(WeakPasswordError, match="patient's name or ID"):
        seal(ct, password="CompressedSamples-Lantern-orbit-velvet", settings=FAST)
    with pytest.raises(WeakPasswordError, match="patient's name or ID"):
        seal(CT_SMALL.read_bytes(), password="CompressedSamples-Lantern-orbit-velvet", settings=FAST)


def test_a_password_outside_iso_ir_6_is_refused_for_sealing(ct: Dataset) -> None:
    with pytest.raises(InputError, match="ISO-IR 6"):
        seal(ct, password="Kestrel-ämber-Lantern-orbit-velvet", settings=FAST)


def test_a_str_password_opens_as_nfc_utf_8(tmp_path: Path) -> None:
    # Another writer sealed for a non-ASCII password; it opens whichever Unicode form is typed.
    kdf = cms.Pbkdf2Params(salt=bytes(16), iterations=FAST_ITERATIONS, prf=cms.Prf.SHA256)
    recipient = cms.PasswordRecipient(password="caf\u00e9-Lantern-orbit".encode(), kdf=kdf)
    seal_file(CT_SMALL, tmp_path / "foreign", recipients=[recipient])
    opened = unseal(tmp_path / "foreign", password="cafe\u0301-Lantern-orbit", as_bytes=True)
    assert opened[128:132] == b"DICM"


def test_bytes_and_paths_in_bytes_and_files_out(tmp_path: Path) -> None:
    sealed = seal(CT_SMALL.read_bytes(), password=PASSWORD, settings=FAST)
    (tmp_path / "CT1").write_bytes(sealed)
    plain = unseal(str(tmp_path / "CT1"), password=PASSWORD, as_bytes=True)
    # The TIFF preamble of CT_small was zeroed before sealing; everything after it is the file as it was.
    assert plain == bytes(128) + CT_SMALL.read_bytes()[128:]
    written = unseal(sealed, tmp_path / "CT1.dcm", password=PASSWORD)
    assert isinstance(written, UnsealedFile)
    assert written.verified
    assert written.conformant
    assert (tmp_path / "CT1.dcm").read_bytes() == plain
    from_path = unseal(tmp_path / "CT1", tmp_path / "again.dcm", password=PASSWORD.encode())
    assert (tmp_path / "again.dcm").read_bytes() == plain
    assert from_path.sop_instance_uid == written.sop_instance_uid == dcmread(CT_SMALL).SOPInstanceUID


def test_a_certificate_recipient_opens_with_its_private_key(
    tmp_path: Path, ct: Dataset, rsa_identity_factory: RsaIdentityFactory
) -> None:
    cert_path, key_path = rsa_identity_factory(tmp_path, "recipes recipient")
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    result = seal(ct, tmp_path / "CT1", certificates=[certificate])
    assert result.in_profile
    assert [r.kind for r in result.envelope.recipients] == ["certificate"]
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    opened = unseal(tmp_path / "CT1", private_key=key_path.read_bytes(), certificate=cert_path.read_bytes())
    assert opened.SOPInstanceUID == ct.SOPInstanceUID
    assert unseal(tmp_path / "CT1", private_key=key).SOPInstanceUID == ct.SOPInstanceUID  # type: ignore[arg-type]


def test_a_wrong_password_writes_nothing(tmp_path: Path, ct: Dataset) -> None:
    sealed = seal(ct, password=PASSWORD, settings=FAST)
    with pytest.raises(DecryptionError) as wrong:
        unseal(sealed, tmp_path / "out" / "CT1.dcm", password="Not-the-Kestrel-password-at-all")
    assert str(wrong.value).startswith("<bytes>: wrong password or key")
    assert leftovers(tmp_path / "out") == []


def test_outputs_are_not_overwritten_without_asking(tmp_path: Path, ct: Dataset) -> None:
    seal(ct, tmp_path / "CT1", password=PASSWORD, settings=FAST)
    with pytest.raises(OutputExistsError):
        seal(ct, tmp_path / "CT1", password=PASSWORD, settings=FAST)
    seal(ct, tmp_path / "CT1", password=PASSWORD, settings=FAST, overwrite=True)


def test_what_cannot_be_sealed_or_unsealed_is_named(tmp_path: Path, ct: Dataset) -> None:
    sealed = seal(ct, password=PASSWORD, settings=FAST)
    with pytest.raises(NotPart10Error, match="already a Secure DICOM File"):
        seal(sealed, password=PASSWORD, settings=FAST)
    with pytest.raises(NotPart10Error, match="no 'DICM' at offset 128"):
        seal(b"not dicom at all" * 20, password=PASSWORD, settings=FAST)
    with pytest.raises(InputError, match=r"a plain DICOM PS3\.10 file"):
        unseal(CT_SMALL, password=PASSWORD)
    with pytest.raises(UsageError, match="give a password, a recipient certificate, or both"):
        seal(ct)
    with pytest.raises(UsageError, match="nothing to open with"):
        unseal(sealed)
    with pytest.raises(InputError, match="no such file or folder"):
        seal(tmp_path / "missing.dcm", password=PASSWORD)
    with pytest.raises(TypeError, match="source is a path, bytes or a pydicom Dataset"):
        seal(12, password=PASSWORD)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"cannot be written as a PS3\.10 file"):
        seal(Dataset(), password=PASSWORD, settings=FAST)


def test_calls_sharing_a_context_derive_a_shared_salt_s_key_once(tmp_path: Path) -> None:
    """Files sealed with one salt: unsealed through one cms.Context, in memory and to files, one derivation."""
    kdf = cms.Pbkdf2Params(salt=bytes(range(16)), iterations=FAST_ITERATIONS, prf=cms.Prf.SHA256)
    recipient = cms.PasswordRecipient(password=PASSWORD.encode(), kdf=kdf)
    sealed = []
    for n in range(3):
        sealed.append(tmp_path / f"IM{n}.sealed")
        seal_file(CT_SMALL, sealed[-1], recipients=[recipient])
    context = cms.Context()
    datasets = [unseal(path, password=PASSWORD, context=context) for path in sealed[:2]]
    written = unseal(sealed[2], tmp_path / "IM2.dcm", password=PASSWORD, context=context)
    assert {ds.SOPInstanceUID for ds in datasets} == {dcmread(written.path).SOPInstanceUID}
    assert context.kdf_cache.derivations == 1
    alone = cms.Context()
    unseal(sealed[0], password=PASSWORD, context=alone)  # another run's context derives it again
    assert alone.kdf_cache.derivations == 1
    # Sealing through a context keeps what it derived: opening with it derives nothing more.
    shared = cms.Context()
    data = seal(CT_SMALL.read_bytes(), password=PASSWORD, settings=FAST, context=shared)
    unseal(data, password=PASSWORD, context=shared)
    assert shared.kdf_cache.derivations == 1
