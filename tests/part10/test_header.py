"""read_header against pydicom on real files of every encoding, and on truncated and mutated ones."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dcmseal.errors import DcmsealError, NotPart10Error
from dcmseal.part10 import header
from dcmseal.part10.header import MAX_INFLATED_BYTES, read_header
from tests.pydicom_data import pydicom_file, pydicom_files

# Explicit VR little endian, implicit VR, explicit big endian, deflated, undefined-length sequences (SR, UN),
# a JPEG 2000 file whose header holds a sequence delimiter inside pixel data, RT plan (nested sequences).
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "image_dfl.dcm",
    "test-SR.dcm",
    "reportsi.dcm",
    "UN_sequence.dcm",
    "rtplan.dcm",
    "rtdose_expb.dcm",
    "waveform_ecg.dcm",
    "liver_1frame.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
]


def _sample(name: str) -> Path:
    return pydicom_file(name)


@pytest.mark.parametrize("name", FILES)
def test_values_are_pydicoms_raw_values(name: str) -> None:
    path = _sample(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path, stop_before_pixels=True)
    top = [int(tag) for tag in ds.keys() if int(tag) < 0x7FE00000]  # noqa: SIM118 - iterating yields elements
    header = read_header(path, frozenset(top))
    assert header.transfer_syntax_uid == str(ds.file_meta.TransferSyntaxUID)
    assert header.sop_instance_uid == str(ds.file_meta.MediaStorageSOPInstanceUID)
    assert header.little_endian == ds.original_encoding[1]
    assert header.implicit_vr == ds.original_encoding[0]
    assert sorted(header.values) == top
    for tag in top:
        raw = ds.get_item(tag)
        ours = header.values[tag]
        if raw.VR == "SQ" or ours.vr == "SQ" or raw.value is None:
            # pydicom parsed the sequence already; count the items it found in our raw bytes instead.
            items = ds[tag].value
            assert (len(ours.value) == 0) == (not items), hex(tag)
            continue
        if not isinstance(raw, RawDataElement):
            continue  # pydicom decoded it while reading (the character set): no raw bytes to compare
        assert ours.value == raw.value, hex(tag)


def test_the_walk_stops_at_stop_after_and_reads_nothing_unwanted() -> None:
    header = read_header(
        _sample("CT_small.dcm"),
        frozenset({0x00100020, 0x00280010}),
        stop_after=0x00200000,
        present={0x00080020, 0x00080021, 0x00200010},
    )
    assert set(header.values) == {0x00100020}  # Rows is past stop_after
    assert header.present == {0x00080020, 0x00080021}  # Study ID is past stop_after
    assert header.values[0x00100020].vr == "LO"


def test_implicit_vr_values_get_the_dictionary_vr() -> None:
    header = read_header(_sample("MR_small_implicit.dcm"), frozenset({0x00100010, 0x00280010}))
    assert header.implicit_vr
    assert (header.values[0x00100010].vr, header.values[0x00280010].vr) == ("PN", "US")


def test_not_part10(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"not dicom" * 40)
    with pytest.raises(NotPart10Error, match="no 'DICM'"):
        read_header(tmp_path / "junk", frozenset())


def test_a_length_past_the_end_of_the_file_is_refused(tmp_path: Path) -> None:
    data = bytearray(_sample("CT_small.dcm").read_bytes())
    at = data.index(b"\x10\x00\x10\x00PN")  # Patient's Name: make its length run past the file
    data[at + 6 : at + 8] = b"\xff\xff"
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(bytes(data[: at + 200]))
    with pytest.raises(NotPart10Error, match=r"\(0010,0010\) at offset \d+ needs 65535 bytes") as caught:
        read_header(cut, frozenset({0x00100010}))
    assert caught.value.path == cut


@pytest.mark.parametrize("name", ["CT_small.dcm", "test-SR.dcm", "MR_small_implicit.dcm", "image_dfl.dcm"])
def test_truncated_files_raise_only_not_part10(tmp_path: Path, name: str) -> None:
    data = _sample(name).read_bytes()
    wanted = frozenset(range(0x00080000, 0x7FE00000, 0x10000)) | {0x0040A730, 0x00100010}
    for size in range(0, min(len(data), 6000), 97):
        path = tmp_path / f"t{size}"
        path.write_bytes(data[:size])
        try:
            read_header(path, wanted)
        except NotPart10Error as exc:
            errors = [exc]
        else:
            errors = []
        assert all(exc.path == path for exc in errors)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_headers_raise_only_dcmseal_errors(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    name = data.draw(
        st.sampled_from(["CT_small.dcm", "test-SR.dcm", "MR_small_bigendian.dcm", "UN_sequence.dcm"])
    )
    raw = bytearray(_sample(name).read_bytes()[:4096])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(132, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("m") / "m.dcm"
    path.write_bytes(bytes(raw))
    with contextlib.suppress(DcmsealError):  # any other exception fails the test
        read_header(path, frozenset({0x00100010, 0x0040A730, 0x00080016, 0x00200013}))


def test_a_deflate_bomb_is_inflated_only_up_to_the_limit(tmp_path: Path) -> None:
    ds = dcmread(_sample("CT_small.dcm"))
    ds.add_new(0x00090010, "LO", "DCMSEAL TEST")
    ds.add_new(0x00091000, "OB", bytes(MAX_INFLATED_BYTES + 1024))  # private, between groups 0008 and 0010
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = tmp_path / "deflated.dcm"
    ds.save_as(deflated, enforce_file_format=True)
    assert deflated.stat().st_size < 1024 * 1024  # zeros: a thousand to one
    # What lies before the bomb is read; what lies after it would need more memory than allowed.
    sop_class = read_header(deflated, frozenset({0x00080016}), stop_after=0x00080016).values[0x00080016]
    assert sop_class.value.startswith(b"1.2.840")
    with pytest.raises(NotPart10Error, match="inflates past"):
        read_header(deflated, frozenset({0x00100010}))


# --- read_patient_context: the password policy's view of the patient -------------------------------------------


def test_patient_context_fast_reader_agrees_with_pydicom() -> None:
    # The byte walker must give exactly what pydicom's specific_tags read gives, on every file it takes on.
    taken = 0
    for path in pydicom_files():
        fast = header._patient_values(path)
        if not fast:
            continue  # not Part 10, or a layout left to pydicom
        taken += 1
        assert fast == header._pydicom_patient_values(path), path.name
    assert taken >= 20  # explicit and implicit VR little endian, sequences before group 0010


def test_patient_context_covers_sequences_of_undefined_length(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        ds = Dataset()
        nested = Dataset()
        nested.CodeValue = "X"
        inner = Dataset()
        inner.ReferencedSOPInstanceUID = "1.2.3"
        inner.PurposeOfReferenceCodeSequence = Sequence([nested])
        ds.ReferencedImageSequence = Sequence([inner, Dataset()])
        ds.PatientName = "Doe^Jane"
        ds.PatientID = "MRN0042"
        ds.PatientBirthDate = "19700101"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
        ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
        ds.file_meta.TransferSyntaxUID = syntax
        path = tmp_path / f"{syntax.name}.dcm"
        # Undefined lengths everywhere, as many modalities write them: the walker must find the ends itself.
        ds["ReferencedImageSequence"].is_undefined_length = True
        inner["PurposeOfReferenceCodeSequence"].is_undefined_length = True
        for item in (inner, nested, ds.ReferencedImageSequence[1]):
            item.is_undefined_length_sequence_item = True
        ds.save_as(path, enforce_file_format=True)
        assert path.read_bytes().count(b"\xfe\xff\xdd\xe0") == 2  # two sequence delimiters written
        assert header._patient_values(path) == ["Doe^Jane", "MRN0042", "19700101"]


def test_patient_context_does_not_import_pydicom_for_ordinary_files(tmp_path: Path) -> None:
    # pydicom costs a third of a second to import: `dcmseal seal` must not pay it to check a password.
    source = pydicom_files()
    ct = next(p for p in source if p.name == "CT_small.dcm")
    code = (
        "import sys; from pathlib import Path; from dcmseal.part10 import read_patient_context; "
        f"found = read_patient_context([Path({str(ct)!r})]); "
        "assert 'pydicom' not in sys.modules, 'pydicom imported'; print('|'.join(found))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    expected = sorted(value for value in header._pydicom_patient_values(ct) if value)
    assert expected
    assert out.strip().split("|") == expected
