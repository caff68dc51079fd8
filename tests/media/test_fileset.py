"""Tests of File-set planning, DICOMDIR reading and the DICOMDIR/file agreement check, on real files."""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

from dcmseal.errors import InputError, NotPart10Error
from dcmseal.media.fileset import (
    DicomDir,
    DirectoryEntry,
    DisagreementKind,
    FileFacts,
    FileSetPlan,
    NoteKind,
    build_fileset,
    check_agreement,
    file_id_to_path,
    fileset_id_from_label,
    is_conformant_file_id,
    path_to_file_id,
    read_dicomdir,
    read_file_facts,
)
from dcmseal.media.profiles import Profile
from dcmseal.media.transcode import conform
from tests.peers.tools import require_tool, run_tool

FILESET_UID = "1.2.826.0.1.3680043.8.498.1234567890"
PDF_STUDY = "1.2.826.0.1.3680043.8.498.77"
PDF_SERIES = "1.2.826.0.1.3680043.8.498.77.1"
DICOMDIRTESTS = Path(str(get_testdata_file("DICOMDIR", download=False))).parent


def _testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(path)


def _pdf(
    path: Path,
    *,
    patient_id: str = "P001",
    patient_name: str = "Doe^Jane",
    study_uid: str = PDF_STUDY,
    series_uid: str = PDF_SERIES,
) -> Path:
    """An Encapsulated PDF without Study ID, Series Number or Instance Number (all Type 1 DICOMDIR keys)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = (
        patient_name,
        patient_id,
        "19700101",
        "F",
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.StudyTime = "20260101", "101010"
    ds.Modality = "DOC"
    ds.ContentDate, ds.ContentTime = "20260101", "101500"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "Discharge letter"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    ds.preamble = bytes(128)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _with_new_uid(src: Path, dst: Path, **changes: str) -> Path:
    ds = dcmread(src)
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(
        missing_ok=True
    )  # a staged file may be a hard link to its source: replace it, never write through
    ds.save_as(dst, enforce_file_format=True)
    return dst


def _collect(root: Path) -> dict[tuple[str, ...], FileFacts]:
    """The facts of every file under a File-set root, the DICOMDIR excepted."""
    return {
        path_to_file_id(root, path): read_file_facts(path)
        for path in root.rglob("*")
        if path.is_file() and path.name != "DICOMDIR"
    }


@dataclass(frozen=True)
class Mixed:
    plan: FileSetPlan
    inputs: dict[str, Path]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Mixed:
    """A mixed DVD-JPEG File-set: CT, MR, RT Dose, US JPEG, decoded J2K, SR, PDFs, a duplicate, a conflict."""
    root = tmp_path_factory.mktemp("mixed")
    conformed = root / "conformed"
    inputs: dict[str, Path] = {}
    for key, name in (
        ("ct", "CT_small.dcm"),
        ("mr", "MR_small.dcm"),
        ("dose", "rtdose.dcm"),
        ("us", "examples_ybr_color.dcm"),
        ("nm", "JPEG2000.dcm"),
        ("sr", "test-SR.dcm"),
    ):
        inputs[key] = conform(_testdata(name), conformed / key.upper(), Profile.DVD_JPEG).destination
    inputs["pdf1"] = _pdf(root / "src" / "PDF1")
    inputs["pdf2"] = _pdf(root / "src" / "PDF2")
    inputs["other"] = _pdf(
        root / "src" / "OTHER",
        patient_name="Roe^Richard",
        study_uid=generate_uid(),
        series_uid=generate_uid(),
    )
    inputs["ct_dup"] = shutil.copyfile(inputs["ct"], root / "src" / "CTDUP")
    inputs["ct2"] = _with_new_uid(inputs["ct"], root / "src" / "CT2", InstanceNumber="2")
    order = ["ct", "mr", "dose", "us", "nm", "sr", "pdf1", "pdf2", "other", "ct_dup", "ct2"]
    plan = build_fileset(
        [inputs[k] for k in order],
        root / "stage",
        fileset_id="Mixed disc: 2026/11 ñ",
        profile=Profile.DVD_JPEG,
        fileset_uid=FILESET_UID,
    )
    return Mixed(plan=plan, inputs=inputs)


# -- the written File-set ---------------------------------------------------------------------------------------
def test_plan_identity(mixed: Mixed) -> None:
    plan = mixed.plan
    assert plan.fileset_uid == FILESET_UID
    assert plan.fileset_id == "MIXED_DISC_2026"
    assert plan.profile is Profile.DVD_JPEG
    assert plan.dicomdir == plan.dicomdir.parent / "DICOMDIR"
    assert plan.dicomdir.is_file()


def test_every_file_id_is_conformant_and_every_file_is_a_byte_copy(mixed: Mixed) -> None:
    stage = mixed.plan.dicomdir.parent
    assert len(mixed.plan.files) == 10  # 11 inputs, one duplicate
    for planned in mixed.plan.files:
        assert is_conformant_file_id(planned.file_id)
        assert planned.staged == file_id_to_path(stage, planned.file_id)
        assert planned.staged.read_bytes() == planned.source.read_bytes()
    on_disk = {path_to_file_id(stage, p) for p in stage.rglob("*") if p.is_file()}
    assert on_disk == {("DICOMDIR",)} | {p.file_id for p in mixed.plan.files}


def test_every_instance_is_referenced_exactly_once(mixed: Mixed) -> None:
    dicomdir = read_dicomdir(mixed.plan.dicomdir)
    referenced = [e.referenced_sop_instance_uid for e in dicomdir.entries]
    assert len(referenced) == len(set(referenced)) == len(mixed.plan.files)
    assert set(referenced) == {read_file_facts(p.staged).sop_instance_uid for p in mixed.plan.files}


def test_record_types_follow_the_sop_classes(mixed: Mixed) -> None:
    by_source = {p.source: p for p in mixed.plan.files}
    kinds = {key: by_source[mixed.inputs[key]].record_type for key in ("ct", "dose", "us", "sr", "pdf1")}
    assert kinds == {
        "ct": "IMAGE",
        "dose": "RT DOSE",
        "us": "IMAGE",
        "sr": "SR DOCUMENT",
        "pdf1": "ENCAP DOC",
    }
    assert by_source[mixed.inputs["us"]].transfer_syntax_uid == JPEGBaseline8Bit
    assert by_source[mixed.inputs["nm"]].transfer_syntax_uid == ExplicitVRLittleEndian


def test_dicomdir_passes_dciodvfy(mixed: Mixed, dciodvfy_bin: str) -> None:
    done = run_tool([dciodvfy_bin, str(mixed.plan.dicomdir)])
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert "BasicDirectory" in output
    assert [line for line in output.splitlines() if line.startswith("Error -")] == []
    assert done.returncode == 0, output


def test_dicomdir_is_read_by_dcmtk_and_dicom3tools(mixed: Mixed, dcmdump_bin: str) -> None:
    done = run_tool([dcmdump_bin, str(mixed.plan.dicomdir)])
    assert done.returncode == 0, done.stderr
    assert b"ENCAP DOC" in done.stdout
    assert b"(0004,1130) CS [MIXED_DISC_2026]" in done.stdout
    dcdirdmp = require_tool("dcdirdmp", "dicom3tools")
    tree = run_tool([dcdirdmp, str(mixed.plan.dicomdir)])
    listing = tree.stdout + tree.stderr  # dcdirdmp writes the tree to stderr
    assert tree.returncode == 0, listing
    assert listing.count(b"PATIENT") == 7  # CT (both files), MR, dose, US, NM, SR, and P001 for three PDFs
    assert listing.count(b"->") == 10


def test_missing_keys_are_invented_and_reported(mixed: Mixed) -> None:
    invented = [n for n in mixed.plan.notes if n.kind is NoteKind.INVENTED]
    pdf1 = [n.message for n in invented if n.path == mixed.inputs["pdf1"]]
    assert any(m.startswith("StudyID is empty or missing") for m in pdf1)
    assert any(m.startswith("SeriesNumber is empty or missing") and "'1'" in m for m in pdf1)
    assert any(m.startswith("InstanceNumber is empty or missing") and "'1'" in m for m in pdf1)
    pdf2 = [n.message for n in invented if n.path == mixed.inputs["pdf2"]]
    # the second PDF joins the study and series records: only its own Instance Number is new
    assert pdf2 == [pdf2[0]]
    assert pdf2[0].startswith("InstanceNumber is empty or missing")
    assert "'2'" in pdf2[0]
    sr = [n.message for n in invented if n.path == mixed.inputs["sr"]]
    assert {m.split(" ", 1)[0] for m in sr} == {"PatientID", "StudyDate", "StudyTime", "StudyID"}
    # the instances themselves are untouched: the inventions live in the DICOMDIR only
    assert "StudyID" not in dcmread(mixed.inputs["pdf1"])
    dicomdir = dcmread(mixed.plan.dicomdir)
    studies = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "STUDY"]
    assert all(r.StudyID for r in studies)
    docs = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "ENCAP DOC"]
    assert sorted(str(r.InstanceNumber) for r in docs) == ["1", "1", "2"]


def test_inventions_are_deterministic(mixed: Mixed, tmp_path: Path) -> None:
    again = build_fileset(
        [mixed.inputs["sr"], mixed.inputs["pdf1"]], tmp_path / "stage", profile=Profile.DVD_JPEG
    )
    first = {n.message for n in mixed.plan.notes if n.path in (mixed.inputs["sr"], mixed.inputs["pdf1"])}
    assert {n.message for n in again.notes} <= first
    assert again.files[0].patient_id == next(
        p.patient_id for p in mixed.plan.files if p.source == mixed.inputs["sr"]
    )
    assert again.fileset_uid != FILESET_UID


def test_duplicate_sop_instance_is_left_out_and_reported(mixed: Mixed) -> None:
    duplicates = [n for n in mixed.plan.notes if n.kind is NoteKind.DUPLICATE]
    assert [n.path for n in duplicates] == [mixed.inputs["ct_dup"]]
    assert str(mixed.inputs["ct"]) in duplicates[0].message
    assert mixed.inputs["ct_dup"] not in {p.source for p in mixed.plan.files}


def test_two_patients_sharing_one_id_are_reported(mixed: Mixed) -> None:
    conflicts = [n for n in mixed.plan.notes if n.kind is NoteKind.PATIENT_ID_CONFLICT]
    assert [n.path for n in conflicts] == [mixed.inputs["other"]]
    assert "names differ" in conflicts[0].message
    assert "Roe" not in str(conflicts[0])
    assert "Doe" not in str(conflicts[0])
    dicomdir = dcmread(mixed.plan.dicomdir)
    patients = [r.PatientID for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "PATIENT"]
    assert len(patients) == len(set(patients))  # one PATIENT record per Patient ID (PS3.11 D.3.3)


def test_same_patient_has_one_patient_record(mixed: Mixed) -> None:
    by_source = {p.source: p for p in mixed.plan.files}
    ct, ct2 = by_source[mixed.inputs["ct"]], by_source[mixed.inputs["ct2"]]
    assert ct.file_id[:3] == ct2.file_id[:3]  # same patient, study and series directories
    assert ct.file_id != ct2.file_id


def test_profile_keys_are_in_the_records(mixed: Mixed) -> None:
    dicomdir = dcmread(mixed.plan.dicomdir)
    images = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    assert images
    assert all("Rows" in r and "Columns" in r and "ImageType" in r for r in images)
    patients = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "PATIENT"]
    p001 = next(r for r in patients if r.PatientID == "P001")
    assert p001.PatientBirthDate == "19700101"
    assert p001.PatientSex == "F"
    # SR DOCUMENT records keep only the title's modifiers, not the report
    for record in dicomdir.DirectoryRecordSequence:
        if record.DirectoryRecordType == "SR DOCUMENT":
            items = record.get("ContentSequence", [])
            assert all(item.RelationshipType == "HAS CONCEPT MOD" for item in items)


def test_series_records_carry_the_description_and_other_type3_keys(tmp_path: Path) -> None:
    """Series Description, Date, Time and Body Part go to the SERIES record when the instance has them (a viewer
    lists the series without opening one); an empty one is left out, never a reason to refuse the instance."""
    described = _with_new_uid(
        _testdata("CT_small.dcm"),
        tmp_path / "in" / "a.dcm",
        SeriesDescription="Chest 1.25 mm",
        BodyPartExamined="",
    )
    plan = build_fileset([described], tmp_path / "stage", profile=Profile.CD)
    (series,) = [
        r for r in dcmread(plan.dicomdir).DirectoryRecordSequence if r.DirectoryRecordType == "SERIES"
    ]
    assert series.SeriesDescription == "Chest 1.25 mm"
    assert series.SeriesDate == "19970430"
    assert "BodyPartExamined" not in series


def test_cd_profile_adds_only_table_d32_keys(tmp_path: Path) -> None:
    plan = build_fileset([_testdata("CT_small.dcm")], tmp_path / "stage", profile=Profile.CD)
    (record,) = [
        r for r in dcmread(plan.dicomdir).DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"
    ]
    assert "ImageType" in record
    assert "Rows" not in record


def test_staging_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "README.TXT").write_text("x")
    with pytest.raises(ValueError, match="must be empty"):
        build_fileset([_testdata("CT_small.dcm")], tmp_path / "stage", profile=Profile.CD)


def test_instances_must_be_conformed_first(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="conform the file first"):
        build_fileset([_testdata("MR_small_RLE.dcm")], tmp_path / "stage", profile=Profile.CD)


def test_not_part10_input_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"not dicom" * 50)
    with pytest.raises(NotPart10Error):
        build_fileset([tmp_path / "junk"], tmp_path / "stage", profile=Profile.CD)


def test_file_meta_disagreeing_with_the_data_set_is_noted(tmp_path: Path) -> None:
    ds = dcmread(_testdata("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()  # the File Meta keeps the old one
    ds.save_as(tmp_path / "ODD", enforce_file_format=False)
    plan = build_fileset([tmp_path / "ODD"], tmp_path / "stage", profile=Profile.CD)
    (note,) = plan.notes
    assert note.kind is NoteKind.META_MISMATCH
    facts = read_file_facts(plan.files[0].staged)
    assert plan.files[0].sop_instance_uid == facts.sop_instance_uid
    assert check_agreement(read_dicomdir(plan.dicomdir), _collect(plan.dicomdir.parent)) == []


# -- reading a DICOMDIR back ------------------------------------------------------------------------------------
def test_read_dicomdir_round_trip(mixed: Mixed) -> None:
    dicomdir = read_dicomdir(mixed.plan.dicomdir)
    assert dicomdir.fileset_uid == FILESET_UID
    assert dicomdir.fileset_id == "MIXED_DISC_2026"
    assert dicomdir.transfer_syntax_uid == ExplicitVRLittleEndian
    entries = dicomdir.by_file_id()
    for planned in mixed.plan.files:
        entry = entries[planned.file_id]
        assert entry.record_type == planned.record_type
        assert entry.referenced_sop_instance_uid == planned.sop_instance_uid
        assert entry.referenced_sop_class_uid == planned.sop_class_uid
        assert entry.referenced_transfer_syntax_uid == planned.transfer_syntax_uid
        assert entry.patient_id == planned.patient_id
        assert entry.study_instance_uid == planned.study_instance_uid
        assert entry.series_instance_uid == planned.series_instance_uid
    assert check_agreement(dicomdir, _collect(mixed.plan.dicomdir.parent)) == []


@pytest.mark.parametrize(
    "variant", ["DICOMDIR-bigEnd", "DICOMDIR-implicit", "DICOMDIR-nooffset", "DICOMDIR-reordered"]
)
def test_pydicom_dicomdir_variants_read_like_the_original(variant: str) -> None:
    reference = read_dicomdir(DICOMDIRTESTS / "DICOMDIR")
    dicomdir = read_dicomdir(DICOMDIRTESTS / variant)
    assert dicomdir.fileset_id == "PYDICOM_TEST"
    key = [
        (e.file_id, e.referenced_sop_instance_uid, e.patient_id, e.study_instance_uid)
        for e in reference.entries
    ]
    assert sorted(key) == sorted(
        (e.file_id, e.referenced_sop_instance_uid, e.patient_id, e.study_instance_uid)
        for e in dicomdir.entries
    )


def test_dicomdir_with_broken_hierarchy_still_lists_every_file() -> None:
    reference = {e.file_id for e in read_dicomdir(DICOMDIRTESTS / "DICOMDIR").entries}
    dicomdir = read_dicomdir(
        DICOMDIRTESTS / "DICOMDIR-nopatient"
    )  # PATIENT records retyped, root offset wrong
    assert {e.file_id for e in dicomdir.entries} == reference
    assert {e.patient_id for e in dicomdir.entries} == {""}


def test_empty_dicomdir_has_no_entries() -> None:
    dicomdir = read_dicomdir(DICOMDIRTESTS / "DICOMDIR-empty.dcm")
    assert dicomdir.entries == ()
    assert dicomdir.fileset_uid


def test_pydicom_dicomdir_agrees_with_its_files() -> None:
    reference = read_dicomdir(DICOMDIRTESTS / "DICOMDIR")
    assert len(reference.entries) == 31
    files = {
        path_to_file_id(DICOMDIRTESTS, p): read_file_facts(p)
        for p in DICOMDIRTESTS.rglob("*")
        if p.is_file() and p.parent != DICOMDIRTESTS and "TINY_ALPHA" not in p.parts
    }
    assert check_agreement(reference, files) == []


def test_offset_cycle_does_not_hang(tmp_path: Path) -> None:
    plan = build_fileset(
        [_testdata("CT_small.dcm"), _testdata("MR_small.dcm")], tmp_path / "s", profile=Profile.CD
    )
    ds = dcmread(plan.dicomdir)
    first = int(ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity)
    leaf = next(r for r in ds.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE")
    raw = bytearray(plan.dicomdir.read_bytes())
    at = leaf.seq_item_tell + 8  # the item's first element: (0004,1400) UL, explicit VR little endian
    assert raw[at : at + 8] == b"\x04\x00\x00\x14UL\x04\x00"
    raw[at + 8 : at + 12] = struct.pack("<I", first)  # the image's "next" is the root: a loop
    plan.dicomdir.write_bytes(bytes(raw))
    dicomdir = read_dicomdir(plan.dicomdir)
    assert {e.file_id for e in dicomdir.entries} == {p.file_id for p in plan.files}


def test_read_dicomdir_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a DICOMDIR"):
        read_dicomdir(_testdata("CT_small.dcm"))
    (tmp_path / "DICOMDIR").write_bytes(b"garbage" * 40)
    with pytest.raises(NotPart10Error):
        read_dicomdir(tmp_path / "DICOMDIR")


# -- DICOMDIR against the files ---------------------------------------------------------------------------------
@pytest.fixture
def small(tmp_path: Path) -> FileSetPlan:
    return build_fileset(
        [_testdata("CT_small.dcm"), _testdata("MR_small.dcm"), _pdf(tmp_path / "src" / "PDF")],
        tmp_path / "stage",
        profile=Profile.USB_JPEG,
    )


def test_agreement_detects_missing_extra_wrong_uid_and_wrong_ts(small: FileSetPlan, tmp_path: Path) -> None:
    stage = small.dicomdir.parent
    ct, mr, pdf = small.files
    ct.staged.unlink()  # missing
    extra = stage / "EXTRA" / "FILE0001"
    extra.parent.mkdir()
    shutil.copyfile(_testdata("rtdose.dcm"), extra)  # a DICOM file nobody references
    _with_new_uid(_testdata("MR_small.dcm"), mr.staged)  # another instance under the MR's File ID
    ds = dcmread(pdf.staged)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    pdf.staged.unlink()  # a hard link to its source: replaced, not written through
    ds.save_as(pdf.staged, enforce_file_format=True)  # the same instance in another transfer syntax

    found = check_agreement(read_dicomdir(small.dicomdir), _collect(stage))
    assert [(d.kind, d.file_id) for d in found] == sorted(
        [
            (DisagreementKind.MISSING_FILE, ct.file_id),
            (DisagreementKind.UNREFERENCED_FILE, ("EXTRA", "FILE0001")),
            (DisagreementKind.UID_MISMATCH, mr.file_id),
            (DisagreementKind.TS_MISMATCH, pdf.file_id),
        ],
        key=lambda k: (k[1], k[0].value),
    )
    wrong_uid = next(d for d in found if d.kind is DisagreementKind.UID_MISMATCH)
    assert wrong_uid.expected == mr.sop_instance_uid
    assert wrong_uid.found == read_file_facts(mr.staged).sop_instance_uid
    assert wrong_uid.message.startswith("/".join(mr.file_id) + ": the DICOMDIR records SOP Instance UID")
    wrong_ts = next(d for d in found if d.kind is DisagreementKind.TS_MISMATCH)
    assert (wrong_ts.expected, wrong_ts.found) == (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    assert wrong_ts.to_json()["kind"] == "ts-mismatch"


def test_agreement_detects_a_wrong_sop_class(small: FileSetPlan) -> None:
    files = _collect(small.dicomdir.parent)
    ct = small.files[0]
    facts = files[ct.file_id]
    files[ct.file_id] = FileFacts(
        sop_class_uid=EncapsulatedPDFStorage,
        sop_instance_uid=facts.sop_instance_uid,
        transfer_syntax_uid=facts.transfer_syntax_uid,
    )
    found = check_agreement(read_dicomdir(small.dicomdir), files)
    assert [(d.kind, d.file_id) for d in found] == [(DisagreementKind.CLASS_MISMATCH, ct.file_id)]


def test_agreement_skips_keys_the_record_leaves_empty() -> None:
    entry = DirectoryEntry(
        record_type="IMAGE",
        file_id=("A",),
        referenced_sop_class_uid="",
        referenced_sop_instance_uid="1.2.3",
        referenced_transfer_syntax_uid="",
        patient_id="",
        study_instance_uid="",
        series_instance_uid="",
    )
    dicomdir = DicomDir(
        path=Path("DICOMDIR"), fileset_uid="", fileset_id="", transfer_syntax_uid="", entries=(entry,)
    )
    facts = FileFacts(
        sop_class_uid="1.2.9", sop_instance_uid="1.2.3", transfer_syntax_uid="1.2.840.10008.1.2"
    )
    assert check_agreement(dicomdir, {("A",): facts, ("DICOMDIR",): facts}) == []


# -- File IDs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file_id", "ok"),
    [
        (("DICOMDIR",), True),
        (("PT000000", "ST000000", "SE000000", "IM000000"), True),
        ("PT000000/ST000000\\IM_1", True),
        (tuple("ABCDEFGH"), True),
        (tuple("ABCDEFGHI"), False),  # 9 components
        (("IM0000001",), False),  # 9 characters
        (("im000001",), False),
        (("IM1.DCM",), False),
        (("..", "ETC"), False),
        (("",), False),
        ((), False),
        (("IMÄ",), False),
    ],
)
def test_is_conformant_file_id(file_id: tuple[str, ...] | str, ok: bool) -> None:
    assert is_conformant_file_id(file_id) is ok


def test_file_id_to_path_refuses_non_conformant_ids(tmp_path: Path) -> None:
    assert file_id_to_path(tmp_path, ("PT1", "IM1")) == tmp_path / "PT1" / "IM1"
    assert file_id_to_path(tmp_path, "PT1\\IM1") == tmp_path / "PT1" / "IM1"
    for bad in (("..", "..", "ETC"), ("PT1", "im1"), ("/ABS",), ("A" * 9,)):
        with pytest.raises(ValueError, match="non-conformant File ID"):
            file_id_to_path(tmp_path, bad)


def test_path_to_file_id(tmp_path: Path) -> None:
    assert path_to_file_id(tmp_path, tmp_path / "PT1" / "IM1") == ("PT1", "IM1")
    with pytest.raises(ValueError, match="not a conformant File ID"):
        path_to_file_id(tmp_path, tmp_path / "pt1" / "im1;1")
    assert path_to_file_id(tmp_path, tmp_path / "pt1" / "im1.;1", lenient=True) == ("PT1", "IM1")
    assert path_to_file_id(tmp_path, tmp_path / "DICOMDIR;1", lenient=True) == ("DICOMDIR",)
    with pytest.raises(ValueError, match="not a conformant File ID"):
        path_to_file_id(tmp_path, tmp_path / "IM1.dcm", lenient=True)
    with pytest.raises(ValueError, match="not inside the File-set root"):
        path_to_file_id(tmp_path / "root", tmp_path / "elsewhere" / "IM1")


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("", ""),
        ("Study 42", "STUDY_42"),
        ("  cardiology -- Dr. Who  ", "CARDIOLOGY_DR_WH"),
        ("A" * 20, "A" * 16),
        ("éèê", ""),
        ("Mixed disc: 2026/11 ñ", "MIXED_DISC_2026"),
        ("ABCDEFGHIJKLMNO_Z", "ABCDEFGHIJKLMNO"),  # no trailing underscore after the cut
    ],
)
def test_fileset_id_from_label(label: str, expected: str) -> None:
    result = fileset_id_from_label(label)
    assert result == expected
    assert len(result) <= 16
    assert result == "" or is_conformant_file_id(result[:8])
