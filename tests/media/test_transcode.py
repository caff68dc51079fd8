"""Tests of lossless conformance to a profile's transfer syntaxes: copies, re-encodings, decodings, refusals."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000,
    MPEG2MPML,
    ExplicitVRLittleEndian,
    JPEGLossless,
    JPEGLosslessSV1,
)

from dcmseal.errors import NotPart10Error, UnsupportedAlgorithmError
from dcmseal.media.profiles import Profile
from dcmseal.media.transcode import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, conform
from tests.peers.tools import require_tool, run_tool


def _testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_rewritten(dst: Path, src: Path) -> None:
    """The output is Explicit VR LE Part 10 with a zero preamble, our implementation UID, the same instance."""
    raw = dst.read_bytes()
    assert raw[:128] == bytes(128)
    assert raw[128:132] == b"DICM"
    out, original = dcmread(dst), dcmread(src)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert out.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert out.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    # the data set's SOP Instance UID is kept; the File Meta copy of it agrees (pydicom mends rtdose.dcm's)
    assert out.SOPInstanceUID == original.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
    assert out.SOPClassUID == original.SOPClassUID


def test_implementation_class_uid_is_under_dcmseal_own_root() -> None:
    from dcmseal.uids import UID_ROOT

    assert f"{UID_ROOT}.1" == IMPLEMENTATION_CLASS_UID
    assert len(IMPLEMENTATION_CLASS_UID) <= 64
    assert len(IMPLEMENTATION_VERSION_NAME) <= 16


# -- allowed: copied byte for byte ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("CT_small.dcm", Profile.CD),
        ("examples_ybr_color.dcm", Profile.DVD_JPEG),
        ("JPGExtended.dcm", Profile.USB_JPEG),
        ("JPEG2000.dcm", Profile.DVD_J2K),
        ("MR_small_jp2klossless.dcm", Profile.USB_J2K),
    ],
)
def test_allowed_file_is_copied_unchanged(tmp_path: Path, name: str, profile: Profile) -> None:
    src = _testdata(name)
    before = _sha256(src)
    result = conform(src, tmp_path / "OUT", profile)
    assert not result.converted
    assert (
        result.from_ts
        == result.to_ts
        == str(dcmread(src, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    )
    assert "is allowed by" in result.reason
    assert (tmp_path / "OUT").read_bytes() == src.read_bytes()
    assert _sha256(src) == before


def test_kept_file_is_hard_linked_when_asked(tmp_path: Path) -> None:
    src = shutil.copyfile(_testdata("CT_small.dcm"), tmp_path / "IN")
    result = conform(src, tmp_path / "OUT", Profile.CD, link=True)
    assert not result.converted
    assert (tmp_path / "OUT").stat().st_ino == src.stat().st_ino
    assert src.stat().st_nlink == 2


def test_converted_file_is_never_linked(tmp_path: Path) -> None:
    src = shutil.copyfile(_testdata("MR_small_implicit.dcm"), tmp_path / "IN")
    before = _sha256(src)
    assert conform(src, tmp_path / "OUT", Profile.CD, link=True).converted
    assert (tmp_path / "OUT").stat().st_ino != src.stat().st_ino
    assert src.stat().st_nlink == 1
    assert _sha256(src) == before


def test_link_refuses_an_existing_output_and_replaces_it_by_copy(tmp_path: Path) -> None:
    src = shutil.copyfile(_testdata("CT_small.dcm"), tmp_path / "IN")
    (tmp_path / "OUT").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        conform(src, tmp_path / "OUT", Profile.CD, link=True)
    conform(src, tmp_path / "OUT", Profile.CD, link=True, overwrite=True)
    assert (tmp_path / "OUT").read_bytes() == src.read_bytes()
    assert src.stat().st_nlink == 1  # replaced through a temporary file: never a link to overwrite


# -- uncompressed but outside the tables: re-encoded ----------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("MR_small_implicit.dcm", "MR_small.dcm"),
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("rtdose.dcm", "rtdose.dcm"),
        ("image_dfl.dcm", "image_dfl.dcm"),
    ],
)
def test_uncompressed_syntaxes_are_re_encoded_as_explicit_little_endian(
    tmp_path: Path, name: str, reference: str
) -> None:
    src = _testdata(name)
    before = _sha256(src)
    result = conform(src, tmp_path / "OUT", Profile.CD)
    assert result.converted
    assert result.to_ts == str(ExplicitVRLittleEndian)
    assert "re-encoded as Explicit VR Little Endian" in result.reason
    assert not result.decoded_lossy
    _assert_rewritten(tmp_path / "OUT", src)
    out = dcmread(tmp_path / "OUT")
    assert np.array_equal(out.pixel_array, dcmread(_testdata(reference)).pixel_array)
    # every data element other than Pixel Data is unchanged
    original = dcmread(src)
    assert [e.tag for e in out] == [e.tag for e in original]
    for element in original:
        if element.keyword != "PixelData":
            assert out[element.tag].value == element.value, element.keyword
    assert _sha256(src) == before


# -- compressed, lossless: decoded to identical pixels --------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_rle.dcm"],
)
def test_lossless_sources_decode_to_identical_pixels(tmp_path: Path, name: str) -> None:
    src = _testdata(name)
    result = conform(src, tmp_path / "OUT", Profile.CD)
    assert result.converted
    assert "decoded to Explicit VR Little Endian" in result.reason
    assert not result.decoded_lossy
    _assert_rewritten(tmp_path / "OUT", src)
    out, original = dcmread(tmp_path / "OUT"), dcmread(src)
    assert np.array_equal(out.pixel_array, original.pixel_array)
    assert out.get("LossyImageCompression") == original.get("LossyImageCompression")
    assert out.PhotometricInterpretation == original.PhotometricInterpretation


@pytest.fixture(scope="module")
def jpeg_lossless_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """MR_small compressed by DCMTK as JPEG Lossless SV1 (.70) and Process 14 with another predictor (.57)."""
    dcmcjpeg = require_tool("dcmcjpeg", "dcmtk")
    root = tmp_path_factory.mktemp("jpegll")
    files = {}
    for flag, key in (("+e1", "sv1"), ("+el", "p14")):
        out = root / f"{key}.dcm"
        args = (
            [dcmcjpeg, flag]
            + (["+sv", "6"] if key == "p14" else [])
            + [str(_testdata("MR_small.dcm")), str(out)]
        )
        done = run_tool(args)
        assert done.returncode == 0, done.stderr
        files[key] = out
    return files


@pytest.mark.interop
def test_jpeg_lossless_decodes_to_identical_pixels(
    tmp_path: Path, jpeg_lossless_files: dict[str, Path]
) -> None:
    reference = dcmread(_testdata("MR_small.dcm")).pixel_array
    sv1, p14 = jpeg_lossless_files["sv1"], jpeg_lossless_files["p14"]
    assert dcmread(sv1).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    assert dcmread(p14).file_meta.TransferSyntaxUID == JPEGLossless
    for src, name in ((sv1, "A"), (p14, "B")):
        result = conform(src, tmp_path / name, Profile.CD)
        assert result.converted
        assert not result.decoded_lossy
        assert np.array_equal(dcmread(tmp_path / name).pixel_array, reference)
    # Tables H.3-1/J.3-1 list SV1 but not the other Process 14 predictors
    assert not conform(sv1, tmp_path / "C", Profile.DVD_JPEG).converted
    kept = conform(p14, tmp_path / "D", Profile.DVD_JPEG)
    assert kept.converted
    assert np.array_equal(dcmread(tmp_path / "D").pixel_array, reference)


# -- compressed, lossy: decoded, and the output says it was lossy ---------------------------------------------
def test_lossy_jpeg_baseline_is_decoded_and_flagged(tmp_path: Path) -> None:
    src = _testdata("examples_ybr_color.dcm")  # US multi-frame, JPEG Baseline, YBR_FULL_422
    result = conform(src, tmp_path / "OUT", Profile.CD)
    assert result.converted
    assert result.decoded_lossy
    assert "source was lossy" in result.reason
    _assert_rewritten(tmp_path / "OUT", src)
    out, original = dcmread(tmp_path / "OUT"), dcmread(src)
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionRatio == original.LossyImageCompressionRatio  # kept: "19"
    assert "LossyImageCompressionMethod" not in out  # the source recorded none; we add none to its history
    # decoded samples are one Y, Cb, Cr per pixel: YBR_FULL, not the subsampled 422 name
    assert out.PhotometricInterpretation == "YBR_FULL"
    assert out.NumberOfFrames == original.NumberOfFrames
    assert np.array_equal(out.pixel_array, original.pixel_array)


def test_lossy_ratio_and_method_are_added_when_no_history_is_recorded(tmp_path: Path) -> None:
    ds = dcmread(_testdata("examples_ybr_color.dcm"))
    del ds.LossyImageCompressionRatio
    del ds.LossyImageCompression
    ds.save_as(tmp_path / "IN", enforce_file_format=True)
    assert conform(tmp_path / "IN", tmp_path / "OUT", Profile.USB_J2K).decoded_lossy
    out = dcmread(tmp_path / "OUT")
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(out.LossyImageCompressionRatio) > 1


def test_lossy_history_is_kept(tmp_path: Path) -> None:
    ds = dcmread(_testdata("examples_ybr_color.dcm"))
    ds.LossyImageCompressionRatio = ["12.5", "2"]
    ds.LossyImageCompressionMethod = ["ISO_10918_1", "ISO_10918_1"]
    ds.save_as(tmp_path / "IN", enforce_file_format=True)
    conform(tmp_path / "IN", tmp_path / "OUT", Profile.CD)
    out = dcmread(tmp_path / "OUT")
    assert out.LossyImageCompression == "01"
    assert list(out.LossyImageCompressionRatio) == [12.5, 2]
    assert list(out.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_10918_1"]


@pytest.mark.parametrize(
    ("declared", "expected", "lossy"),
    [(None, "01", True), ("01", "01", True), ("00", "00", False)],
)
def test_jpeg2000_lossy_flag(tmp_path: Path, declared: str | None, expected: str, lossy: bool) -> None:
    """.91 may be reversible: an explicit "00" from the creator is kept, no statement means lossy."""
    ds = dcmread(_testdata("JPEG2000.dcm"))
    assert ds.file_meta.TransferSyntaxUID == JPEG2000
    del ds.LossyImageCompression
    del ds.LossyImageCompressionRatio
    if declared is not None:
        ds.LossyImageCompression = declared
    ds.save_as(tmp_path / "IN", enforce_file_format=True)
    result = conform(tmp_path / "IN", tmp_path / "OUT", Profile.DVD_JPEG)
    assert result.converted
    assert result.decoded_lossy is lossy
    out = dcmread(tmp_path / "OUT")
    assert out.LossyImageCompression == expected
    assert np.array_equal(out.pixel_array, ds.pixel_array)
    if lossy and declared is None:
        assert out.LossyImageCompressionMethod == "ISO_15444_1"


# -- refusals --------------------------------------------------------------------------------------------------
def _mpeg2_file(path: Path) -> Path:
    ds = dcmread(_testdata("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_undecodable_transfer_syntax_raises_and_writes_nothing(tmp_path: Path) -> None:
    src = _mpeg2_file(tmp_path / "VIDEO")
    with pytest.raises(UnsupportedAlgorithmError) as caught:
        conform(src, tmp_path / "OUT", Profile.DVD_J2K)
    message = str(caught.value)
    assert message.startswith(f"{src}: ")
    assert "MPEG2 Main Profile / Main Level" in message
    assert str(MPEG2MPML) in message
    assert not (tmp_path / "OUT").exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary file left behind


def test_corrupt_codestream_raises_unsupported(tmp_path: Path) -> None:
    ds = dcmread(_testdata("SC_rgb_rle.dcm"))
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + bytes(60)])  # an RLE header with one segment at 0
    ds.save_as(tmp_path / "IN", enforce_file_format=True)
    with pytest.raises(UnsupportedAlgorithmError, match="RLE Lossless"):
        conform(tmp_path / "IN", tmp_path / "OUT", Profile.CD)
    assert not (tmp_path / "OUT").exists()


def test_not_part10_is_refused(tmp_path: Path) -> None:
    (tmp_path / "NOTDICOM").write_bytes(b"hello" * 100)
    with pytest.raises(NotPart10Error):
        conform(tmp_path / "NOTDICOM", tmp_path / "OUT", Profile.CD)


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    src = _testdata("MR_small_RLE.dcm")
    (tmp_path / "OUT").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        conform(src, tmp_path / "OUT", Profile.CD)
    assert (tmp_path / "OUT").read_bytes() == b"old"
    assert conform(src, tmp_path / "OUT", Profile.CD, overwrite=True).converted
    with pytest.raises(FileExistsError):
        conform(_testdata("CT_small.dcm"), tmp_path / "OUT", Profile.CD)


def test_same_source_and_destination_is_refused(tmp_path: Path) -> None:
    src = shutil.copyfile(_testdata("MR_small_RLE.dcm"), tmp_path / "IN")
    with pytest.raises(ValueError, match="same file"):
        conform(src, src, Profile.CD, overwrite=True)


def test_result_to_json(tmp_path: Path) -> None:
    result = conform(_testdata("MR_small_RLE.dcm"), tmp_path / "OUT", Profile.CD)
    data = result.to_json()
    assert data["converted"] is True
    assert data["from_ts"] == "1.2.840.10008.1.2.5"
    assert data["to_ts"] == str(ExplicitVRLittleEndian)
    assert data["destination"] == str(tmp_path / "OUT")
