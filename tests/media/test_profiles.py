"""Tests of the PS3.11 secure profiles: what each allows (Tables D.3-1, H.3-1, J.3-1) and the automatic choice."""

from __future__ import annotations

from typing import Literal

import pytest
from pydicom import uid as pydicom_uid

from dcmseal.media.profiles import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    Compression,
    Medium,
    Profile,
    choose_profile,
    is_allowed,
)

ELE = EXPLICIT_VR_LITTLE_ENDIAN
IMPLICIT = str(pydicom_uid.ImplicitVRLittleEndian)
BIG_ENDIAN = str(pydicom_uid.ExplicitVRBigEndian)
DEFLATED = str(pydicom_uid.DeflatedExplicitVRLittleEndian)
RLE = str(pydicom_uid.RLELossless)
JPEG_BASELINE = str(pydicom_uid.JPEGBaseline8Bit)
JPEG_EXTENDED = str(pydicom_uid.JPEGExtended12Bit)
JPEG_P14 = str(pydicom_uid.JPEGLossless)
JPEG_SV1 = str(pydicom_uid.JPEGLosslessSV1)
JPEG_LS = str(pydicom_uid.JPEGLSLossless)
J2K_LOSSLESS = str(pydicom_uid.JPEG2000Lossless)
J2K = str(pydicom_uid.JPEG2000)
HTJ2K = str(pydicom_uid.HTJ2KLossless)


@pytest.mark.parametrize(
    ("profile", "medium", "annex", "compression", "udf", "syntaxes"),
    [
        (Profile.CD, Medium.CD, "D", Compression.NONE, False, {ELE}),
        (
            Profile.DVD_JPEG,
            Medium.DVD,
            "H",
            Compression.JPEG,
            True,
            {ELE, JPEG_SV1, JPEG_BASELINE, JPEG_EXTENDED},
        ),
        (Profile.DVD_J2K, Medium.DVD, "H", Compression.J2K, True, {ELE, J2K_LOSSLESS, J2K}),
        (
            Profile.USB_JPEG,
            Medium.USB,
            "J",
            Compression.JPEG,
            False,
            {ELE, JPEG_SV1, JPEG_BASELINE, JPEG_EXTENDED},
        ),
        (Profile.USB_J2K, Medium.USB, "J", Compression.J2K, False, {ELE, J2K_LOSSLESS, J2K}),
    ],
)
def test_profile_facts(
    profile: Profile, medium: Medium, annex: str, compression: Compression, udf: bool, syntaxes: set[str]
) -> None:
    assert profile.medium is medium
    assert profile.annex == annex
    assert profile.compression is compression
    assert profile.needs_udf is udf
    assert profile.transfer_syntaxes == frozenset(syntaxes)
    assert profile.max_file_id_components == 8
    assert profile.max_component_chars == 8


def test_profile_values_are_the_standard_identifiers() -> None:
    assert [p.value for p in Profile] == [
        "STD-GEN-SEC-CD",
        "STD-GEN-SEC-DVD-JPEG",
        "STD-GEN-SEC-DVD-J2K",
        "STD-GEN-SEC-USB-JPEG",
        "STD-GEN-SEC-USB-J2K",
    ]
    assert Profile("STD-GEN-SEC-DVD-J2K") is Profile.DVD_J2K


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("ts", [IMPLICIT, BIG_ENDIAN, DEFLATED, RLE, JPEG_P14, JPEG_LS, HTJ2K])
def test_no_profile_allows_syntaxes_outside_the_tables(profile: Profile, ts: str) -> None:
    assert not is_allowed(profile, ts)


@pytest.mark.parametrize("profile", list(Profile))
def test_explicit_vr_little_endian_is_allowed_everywhere(profile: Profile) -> None:
    # Non-image SOP classes (Encapsulated PDF, SR) and the DICOMDIR use it in every profile.
    assert is_allowed(profile, ELE)
    assert is_allowed(profile, pydicom_uid.ExplicitVRLittleEndian)  # a pydicom UID is a str


def test_jpeg_and_j2k_profiles_do_not_mix() -> None:
    assert not is_allowed(Profile.DVD_JPEG, J2K)
    assert not is_allowed(Profile.USB_J2K, JPEG_BASELINE)
    assert not is_allowed(Profile.CD, JPEG_SV1)


@pytest.mark.parametrize(
    ("syntaxes", "output", "expected"),
    [
        ([ELE, ELE], "iso", Profile.CD),
        ([ELE, IMPLICIT, BIG_ENDIAN, DEFLATED, RLE, JPEG_LS, JPEG_P14], "iso", Profile.CD),
        ([], "iso", Profile.CD),
        ([ELE, JPEG_BASELINE], "iso", Profile.DVD_JPEG),
        ([ELE, JPEG_SV1, JPEG_EXTENDED], "iso", Profile.DVD_JPEG),
        ([ELE, J2K_LOSSLESS], "iso", Profile.DVD_J2K),
        ([J2K, J2K, JPEG_BASELINE], "iso", Profile.DVD_J2K),
        ([J2K, JPEG_BASELINE], "iso", Profile.DVD_JPEG),  # tie: JPEG, the more widely decoded
        ([ELE], "dir", Profile.USB_JPEG),
        ([], "dir", Profile.USB_JPEG),
        ([ELE, JPEG_BASELINE, RLE], "dir", Profile.USB_JPEG),
        ([J2K_LOSSLESS, J2K, JPEG_SV1], "dir", Profile.USB_J2K),
    ],
)
def test_choose_profile(syntaxes: list[str], output: Literal["iso", "dir"], expected: Profile) -> None:
    assert choose_profile(iter(syntaxes), output=output) is expected


def test_choose_profile_refuses_an_unknown_output() -> None:
    with pytest.raises(ValueError, match="'iso' or 'dir'"):
        choose_profile([ELE], output="zip")  # type: ignore[arg-type]  # a wrong value on purpose: the refusal


def test_chosen_profile_allows_the_compressed_content_it_was_chosen_for() -> None:
    for syntaxes in ([JPEG_BASELINE], [J2K], [JPEG_SV1, JPEG_EXTENDED], [J2K_LOSSLESS]):
        for output in ("iso", "dir"):
            profile = choose_profile(syntaxes, output=output)
            assert all(is_allowed(profile, ts) for ts in syntaxes)


def test_additional_keys_follow_tables_d32_and_h32() -> None:
    cd = Profile.CD.additional_keys
    assert set(cd) == {"IMAGE"}
    assert set(cd["IMAGE"]) == {"ImageType", "ReferencedImageSequence"}
    for profile in (Profile.DVD_JPEG, Profile.DVD_J2K, Profile.USB_JPEG, Profile.USB_J2K):
        keys = profile.additional_keys
        assert {"Rows", "Columns", "ImageType", "LossyImageCompressionRatio"} <= set(keys["IMAGE"])
        assert set(keys["PATIENT"]) == {"PatientBirthDate", "PatientSex"}
        assert "InstitutionName" in keys["SERIES"]
        assert "Rows" in keys["SPECTROSCOPY"]
