"""PS3.11 secure General Purpose profiles: transfer syntaxes, medium, and the automatic choice.

Sources (PS3.11 2020 text, repository ``chsasank/dicom_standard`` ``source/part11/chapter_{D,H,J}.rst``; check
against the current edition before a conformance claim):

- Table D.3-1 *STD-GEN SOP Classes and Transfer Syntaxes* (STD-GEN-SEC-CD): Basic Directory and every
  Composite IOD in Explicit VR Little Endian ``1.2.840.10008.1.2.1`` only.
- Table H.3-1 *STD-GEN-DVD and STD-GEN-SEC-DVD SOP Classes and Transfer Syntaxes* and Table J.3-1 (the same rows
  for STD-GEN-SEC-USB): Explicit VR Little Endian for every profile; JPEG Lossless Process 14 Selection Value 1
  ``.4.70``, JPEG Baseline Process 1 ``.4.50`` and JPEG Extended Process 2 & 4 ``.4.51`` for the -JPEG profiles;
  JPEG 2000 Lossless Only ``.4.90`` and JPEG 2000 ``.4.91`` for the -J2K profiles. JPEG Lossless Process 14
  with other predictors (``.4.57``), RLE, JPEG-LS, HTJ2K and the deflated, implicit and big endian syntaxes are
  in no table: such files are decompressed or re-encoded losslessly to Explicit VR Little Endian.
- Tables D.3-2 and H.3-2 (J.3.3.1 applies H.3-2 to USB): additional DICOMDIR keys, see
  :attr:`Profile.additional_keys`.
- §D.3.5, §H.3.5, §J.3.5: every file of a SEC profile, DICOMDIR included, is a Secure DICOM File.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal

from dcmseal.part10.encoding import EXPLICIT_VR_LITTLE_ENDIAN

__all__ = [
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "J2K_TRANSFER_SYNTAXES",
    "JPEG_TRANSFER_SYNTAXES",
    "MAX_COMPONENT_CHARS",
    "MAX_FILE_ID_COMPONENTS",
    "Compression",
    "Medium",
    "Profile",
    "choose_profile",
    "general_purpose_name",
    "is_allowed",
    "secure_profile_of",
]

#: Table H.3-1 / J.3-1 rows "Mandatory for -JPEG profiles".
JPEG_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 SV1)
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1), lossy
        "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4), lossy
    }
)

#: Table H.3-1 / J.3-1 rows "Mandatory for -J2K profiles".
J2K_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Image Compression (Lossless Only)
        "1.2.840.10008.1.2.4.91",  # JPEG 2000 Image Compression (reversible or irreversible)
    }
)

#: PS3.10 §8.2 and PS3.3 F.3.2.2: a File ID has at most 8 components of at most 8 characters [A-Z0-9_].
MAX_FILE_ID_COMPONENTS = 8
MAX_COMPONENT_CHARS = 8


class Medium(enum.StrEnum):
    """The physical medium a profile names (PS3.11 §D.3.2, §H.3.2, §J.3.2)."""

    CD = "cd"  # 120 mm CD-R, ISO 9660 (PS3.12 Annex F)
    DVD = "dvd"  # 120 mm DVD other than DVD-RAM, UDF and/or ISO 9660 (PS3.12 Annex P)
    USB = "usb"  # USB mass storage, FAT16/FAT32 (PS3.12 Annex R)


class Compression(enum.StrEnum):
    """Which compressed transfer syntaxes a profile adds to Explicit VR Little Endian."""

    NONE = "none"
    JPEG = "jpeg"
    J2K = "j2k"


# Table D.3-2 (CD) and Table H.3-2 (DVD; J.3.3.1 makes it apply to USB): keys that are Type 1C "required if
# present in the image object" (Rows and Columns are Type 1), by directory record type. A keyword under
# "IMAGE" applies to IMAGE records; H.3-2 puts the plane and frame keys on "IMAGE or SPECTROSCOPY" records.
_CD_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"IMAGE": ("ImageType", "ReferencedImageSequence")}
)
_IMAGE_OR_SPECTROSCOPY_KEYS = (
    "Rows",
    "Columns",
    "FrameOfReferenceUID",
    "SynchronizationFrameOfReferenceUID",
    "NumberOfFrames",
    "AcquisitionTimeSynchronized",
    "AcquisitionDateTime",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
)
_DVD_USB_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "PATIENT": ("PatientBirthDate", "PatientSex"),
        "SERIES": ("InstitutionName", "InstitutionAddress", "PerformingPhysicianName"),
        "IMAGE": (
            "ImageType",
            "CalibrationImage",
            "ReferencedImageSequence",
            "LossyImageCompressionRatio",
            *_IMAGE_OR_SPECTROSCOPY_KEYS,
        ),
        "SPECTROSCOPY": ("ReferencedImageSequence", *_IMAGE_OR_SPECTROSCOPY_KEYS),
    }
)


class Profile(enum.StrEnum):
    """A PS3.11 secure General Purpose Application Profile that dcmseal can write."""

    CD = "STD-GEN-SEC-CD"  # Annex D
    DVD_JPEG = "STD-GEN-SEC-DVD-JPEG"  # Annex H
    DVD_J2K = "STD-GEN-SEC-DVD-J2K"  # Annex H
    USB_JPEG = "STD-GEN-SEC-USB-JPEG"  # Annex J
    USB_J2K = "STD-GEN-SEC-USB-J2K"  # Annex J

    @property
    def medium(self) -> Medium:
        """The medium the profile requires."""
        if self is Profile.CD:
            return Medium.CD
        if self in (Profile.DVD_JPEG, Profile.DVD_J2K):
            return Medium.DVD
        return Medium.USB

    @property
    def annex(self) -> str:
        """The PS3.11 annex that defines the profile."""
        return {Medium.CD: "D", Medium.DVD: "H", Medium.USB: "J"}[self.medium]

    @property
    def compression(self) -> Compression:
        """Which family of compressed transfer syntaxes the profile allows."""
        if self is Profile.CD:
            return Compression.NONE
        return Compression.J2K if self.value.endswith("-J2K") else Compression.JPEG

    @property
    def transfer_syntaxes(self) -> frozenset[str]:
        """Every transfer syntax a file of this profile may use (Tables D.3-1, H.3-1, J.3-1).

        Explicit VR Little Endian is the only one for the DICOMDIR and for non-image SOP classes (Encapsulated
        PDF, SR, ...): the compressed syntaxes only apply to Pixel Data.
        """
        extra = {
            Compression.NONE: frozenset[str](),
            Compression.JPEG: JPEG_TRANSFER_SYNTAXES,
            Compression.J2K: J2K_TRANSFER_SYNTAXES,
        }[self.compression]
        return frozenset({EXPLICIT_VR_LITTLE_ENDIAN}) | extra

    @property
    def needs_udf(self) -> bool:
        """Whether the image gets a UDF file system (DVD profiles).

        PS3.12 Annex P has DVD readers read both UDF and ISO 9660 and creators write at least one; we write the
        UDF bridge (UDF + ISO 9660) so that either kind of reader finds the files. CD is ISO 9660 Level 1 only
        (Annex F); USB is a FAT folder (Annex R).
        """
        return self.medium is Medium.DVD

    @property
    def max_file_id_components(self) -> int:
        """At most this many components in a File ID (PS3.10 §8.2; also ISO 9660's 8 directory levels)."""
        return MAX_FILE_ID_COMPONENTS

    @property
    def max_component_chars(self) -> int:
        """At most this many characters per File ID component (PS3.10 §8.2)."""
        return MAX_COMPONENT_CHARS

    @property
    def additional_keys(self) -> Mapping[str, tuple[str, ...]]:
        """Keywords the profile adds to directory records when the instance has them, by record type.

        Table D.3-2 for CD; Table H.3-2 for DVD, which §J.3.3.1 also applies to USB.
        """
        return _CD_KEYS if self is Profile.CD else _DVD_USB_KEYS


def is_allowed(profile: Profile, transfer_syntax_uid: str) -> bool:
    """Whether ``profile`` lets a file use ``transfer_syntax_uid`` (PS3.11 Tables D.3-1, H.3-1, J.3-1)."""
    return str(transfer_syntax_uid) in profile.transfer_syntaxes


def choose_profile(transfer_syntaxes: Iterable[str], *, output: Literal["iso", "dir"]) -> Profile:
    """Pick the profile for ``--profile auto`` from the transfer syntaxes of the files to write.

    Pass one transfer syntax per file. Files in a syntax that no candidate allows (implicit VR, big endian,
    deflated, RLE, JPEG-LS, ...) are converted losslessly to Explicit VR Little Endian whatever the choice, so
    only JPEG (Table H.3-1 -JPEG rows) and JPEG 2000 (-J2K rows) content steers it:

    - ``output="iso"``: STD-GEN-SEC-CD when there is none (the profile every reader supports), else the DVD
      profile of the family that keeps more files as they are;
    - ``output="dir"``: the USB profile of that family, JPEG when there is no compressed content or a tie.

    Raises
    ------
    ValueError
        ``output`` is neither ``"iso"`` nor ``"dir"``.
    """
    if output not in ("iso", "dir"):
        raise ValueError(f"output must be 'iso' or 'dir', not {output!r}")
    jpeg = j2k = 0
    for uid in transfer_syntaxes:
        if uid in JPEG_TRANSFER_SYNTAXES:
            jpeg += 1
        elif uid in J2K_TRANSFER_SYNTAXES:
            j2k += 1
    family = Compression.J2K if j2k > jpeg else Compression.JPEG
    if output == "iso":
        if jpeg == j2k == 0:
            return Profile.CD
        return Profile.DVD_J2K if family is Compression.J2K else Profile.DVD_JPEG
    return Profile.USB_J2K if family is Compression.J2K else Profile.USB_JPEG


def general_purpose_name(profile: Profile) -> str:
    """The non-secure twin of a SEC profile (PS3.11 §6.3 table): STD-GEN-SEC-CD -> STD-GEN-CD.

    A plain medium (``burn --no-encrypt``) conforms to it: same media, same transfer syntaxes, no CMS.
    """
    return profile.value.replace("STD-GEN-SEC-", "STD-GEN-", 1)


def secure_profile_of(name: str) -> Profile:
    """The :class:`Profile` named ``name``, given as the SEC profile or as its General Purpose twin.

    Raises
    ------
    ValueError
        ``name`` names neither.
    """
    upper = name.upper()
    if upper.startswith("STD-GEN-") and not upper.startswith("STD-GEN-SEC-"):
        upper = "STD-GEN-SEC-" + upper[len("STD-GEN-") :]
    return Profile(upper)
