"""dcmseal's own DICOMDIR against pydicom FileSet's, for the same inputs: the same bytes, notes and File IDs.

The reference is the planner as it was before (``tests/media/fileset_reference.py``: pydicom's ``FileSet``
building and encoding every record). The new planner reads each header with ``dcmseal.part10.header`` and
encodes the records itself; where its fast path cannot vouch for a value it asks pydicom, so the DICOMDIRs must
be identical byte for byte once both name the same implementation in the File Meta.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

from dcmseal.errors import DcmsealError
from dcmseal.media import dicomdir as dicomdir_module
from dcmseal.media import fileset as fileset_module
from dcmseal.media.fileset import FileSetPlan, NoteKind, build_fileset, read_dicomdir
from dcmseal.media.profiles import Profile
from dcmseal.media.transcode import conform
from tests.media import fileset_reference as reference
from tests.media.conftest import write_instance, write_series
from tests.media.test_fileset import _pdf, _with_new_uid
from tests.peers.tools import run_tool

FILESET_UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"
# pydicom's samples, every kind the planner meets: images (CT, MR, US palette, enhanced CT with functional
# groups, overlays, odd sizes), RT plan and dose, SR (one with empty number tags), waveform, other character sets
# (the charset files), sources that were implicit VR, big endian or deflated before conform.
SAMPLES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_padded.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "test-SR.dcm",
    "reportsi.dcm",
    "reportsi_with_empty_number_tags.dcm",
    "waveform_ecg.dcm",
    "examples_palette.dcm",
    "liver_1frame.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",
    "SC_rgb_small_odd.dcm",
    "examples_overlay.dcm",
]
# Samples without a Study Instance UID (Type 1; PS3.3 F.5.2 keys the STUDY record by it).
NO_STUDY_UID = ("UN_sequence.dcm", "priv_SQ.dcm")


@pytest.fixture(autouse=True)
def _pydicom_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Ours names dcmseal in the File Meta; pydicom names itself. Same name, so the bytes can be compared.
    monkeypatch.setattr(dicomdir_module, "_IMPLEMENTATION_CLASS_UID", PYDICOM_IMPLEMENTATION_UID)
    monkeypatch.setattr(dicomdir_module, "_IMPLEMENTATION_VERSION_NAME", f"PYDICOM {pydicom.__version__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the samples' invalid values
        yield


def _conformed(root: Path, names: list[str], profile: Profile) -> list[Path]:
    files = [Path(str(get_testdata_file(name))) for name in names]
    return [conform(f, root / f"F{i:04d}", profile).destination for i, f in enumerate(files)]


def _both(sources: list[Path], tmp_path: Path, profile: Profile) -> tuple[FileSetPlan, reference.FileSetPlan]:
    ours = build_fileset(
        sources, tmp_path / "ours", fileset_id="Same disc", profile=profile, fileset_uid=FILESET_UID
    )
    theirs = reference.build_fileset(
        sources, tmp_path / "theirs", fileset_id="Same disc", profile=profile, fileset_uid=FILESET_UID
    )
    return ours, theirs


def _assert_same(ours: FileSetPlan, theirs: reference.FileSetPlan) -> None:
    assert [(n.kind.value, n.path, n.message) for n in ours.notes] == [
        (n.kind.value, n.path, n.message) for n in theirs.notes
    ]
    assert [(f.source, f.file_id, f.record_type, f.patient_id, f.modality) for f in ours.files] == [
        (f.source, f.file_id, f.record_type, f.patient_id, f.modality) for f in theirs.files
    ]
    mine, pydicoms = ours.dicomdir.read_bytes(), theirs.dicomdir.read_bytes()
    if mine != pydicoms:  # say which record differs before failing on the bytes
        for a, b in zip(
            dcmread(ours.dicomdir).DirectoryRecordSequence,
            dcmread(theirs.dicomdir).DirectoryRecordSequence,
            strict=True,
        ):
            assert a == b
    assert mine == pydicoms


@pytest.mark.parametrize("profile", [Profile.DVD_JPEG, Profile.CD])
def test_every_sample_gives_pydicoms_dicomdir(tmp_path: Path, profile: Profile, dciodvfy_bin: str) -> None:
    sources = _conformed(tmp_path / "in", SAMPLES, profile)
    sources += [Path(p) for p in sorted(get_charset_files("chr*.dcm")) if "SQEncoding" not in p]
    ours, theirs = _both(sources, tmp_path, profile)
    # MR_small's variants share one SOP Instance UID: the later ones are left out as duplicates.
    duplicates = [n for n in ours.notes if n.kind is NoteKind.DUPLICATE]
    assert len(ours.files) + len(duplicates) == len(sources)
    assert {f.record_type for f in ours.files} >= {"IMAGE", "RT PLAN", "RT DOSE", "SR DOCUMENT", "WAVEFORM"}
    _assert_same(ours, theirs)
    # And dicom3tools finds nothing wrong with it (Basic Directory IOD, every record type above).
    done = run_tool([dciodvfy_bin, "-new", str(ours.dicomdir)])
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert "BasicDirectory" in output
    assert [line for line in output.splitlines() if line.startswith("Error -")] == []


def test_each_sample_alone_gives_pydicoms_dicomdir(tmp_path: Path) -> None:
    for n, source in enumerate(_conformed(tmp_path / "in", SAMPLES, Profile.DVD_JPEG)):
        _assert_same(*_both([source], tmp_path / str(n), Profile.DVD_JPEG))


def test_a_mixed_set_with_duplicates_conflicts_and_inventions(tmp_path: Path) -> None:
    ct = _conformed(tmp_path / "in", ["CT_small.dcm"], Profile.CD)[0]
    sources = [
        ct,
        _pdf(tmp_path / "src" / "PDF1"),
        _pdf(tmp_path / "src" / "PDF2"),
        _pdf(tmp_path / "src" / "OTHER", patient_name="Roe^Richard", study_uid=generate_uid()),
        shutil.copyfile(ct, tmp_path / "src" / "CTDUP"),
        _with_new_uid(ct, tmp_path / "src" / "CT2", InstanceNumber="2"),
        *write_series(tmp_path / "a", 12),
        *write_series(tmp_path / "b", 3),
    ]
    ours, theirs = _both(sources, tmp_path, Profile.CD)
    kinds = {n.kind for n in ours.notes}
    assert {NoteKind.DUPLICATE, NoteKind.PATIENT_ID_CONFLICT, NoteKind.INVENTED} <= kinds
    _assert_same(ours, theirs)


def test_an_instance_without_study_instance_uid_is_left_out_and_the_rest_is_pydicoms(tmp_path: Path) -> None:
    """pydicom gives up on such a STUDY record too (after inventing the SERIES keys); ours stops at once."""
    good = _conformed(tmp_path / "good", ["CT_small.dcm", "MR_small.dcm"], Profile.CD)
    bad = _conformed(tmp_path / "bad", list(NO_STUDY_UID), Profile.CD)
    ours = build_fileset(good + bad, tmp_path / "ours", profile=Profile.CD, fileset_uid=FILESET_UID)
    left_out = [n for n in ours.notes if n.kind is NoteKind.LEFT_OUT]
    assert [n.path for n in left_out] == bad
    assert all("(0020,000D) StudyInstanceUID, which is missing" in n.message for n in left_out)
    theirs = reference.build_fileset(good, tmp_path / "theirs", profile=Profile.CD, fileset_uid=FILESET_UID)
    assert ours.dicomdir.read_bytes() == theirs.dicomdir.read_bytes()


# Text the fast path must either copy exactly as pydicom would write it back, or hand to pydicom.
_TEXT = st.text(alphabet=st.sampled_from(list("AZaz09^ .\\-_=")), max_size=12)
_PADDING = st.sampled_from(["", " ", "  ", "\x00", " \x00"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=_TEXT,
    description=_TEXT,
    accession=_TEXT,
    image_type=_TEXT,
    number=st.sampled_from(["1", " 2", "03 ", "+4", "5\\6", "", "  "]),
    padding=_PADDING,
)
def test_unusual_spacing_and_padding_give_pydicoms_records(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    description: str,
    accession: str,
    image_type: str,
    number: str,
    padding: str,
) -> None:
    root = tmp_path_factory.mktemp("raw")
    path = write_instance(root / "I1", study_uid=generate_uid(), series_uid=generate_uid(), number=1)
    ds = dcmread(path)
    # Raw elements are written as they are: the padding and spacing pydicom's own writer would tidy up.
    for tag, vr, text in (
        (0x00100010, "PN", name + padding),
        (0x00081030, "LO", description + padding),
        (0x00080050, "SH", accession + padding),
        (0x00080008, "CS", image_type + padding),
        (0x00200013, "IS", number + padding),
    ):
        value = text.encode("ascii")
        ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    ds.save_as(path, enforce_file_format=True)
    ours, theirs = _both([path], root, Profile.DVD_JPEG)
    _assert_same(ours, theirs)


def test_planning_reads_no_data_set_with_pydicom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The headers are read by dcmseal.part10.header: no dcmread (nor pydicom's data set reader) per file."""
    calls: list[str] = []
    for module in (pydicom, pydicom.filereader):
        for name in ("dcmread", "read_partial", "read_dataset"):
            if hasattr(module, name):
                original = getattr(module, name)

                def counted(
                    *args: object, __original: object = original, __name: str = name, **kw: object
                ) -> object:
                    calls.append(__name)
                    return __original(*args, **kw)  # type: ignore[operator]

                monkeypatch.setattr(module, name, counted)
    sources = write_series(tmp_path / "a", 30) + _conformed(tmp_path / "in", ["CT_small.dcm"], Profile.CD)
    plan = build_fileset(sources, tmp_path / "fs", profile=Profile.DVD_JPEG)
    assert len(plan.files) == 31
    assert calls == []
    # The check can fail: the reference planner does read every header with dcmread.
    reference.build_fileset(sources[:3], tmp_path / "ref", profile=Profile.DVD_JPEG)
    assert calls.count("read_partial") >= 3 or calls.count("dcmread") >= 3


def test_cd_set_of_several_patients_validates(tmp_path: Path, dciodvfy_bin: str, dcmdump_bin: str) -> None:
    sources = _conformed(tmp_path / "in", ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm"], Profile.CD)
    sources += [*write_series(tmp_path / "a", 4), _pdf(tmp_path / "src" / "PDF")]
    plan = build_fileset(sources, tmp_path / "fs", fileset_id="CD", profile=Profile.CD)
    done = run_tool([dciodvfy_bin, "-new", str(plan.dicomdir)])
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert "BasicDirectory" in output
    assert [line for line in output.splitlines() if line.startswith("Error -")] == []
    dump = run_tool([dcmdump_bin, "+dc", str(plan.dicomdir)])
    assert dump.returncode == 0, dump.stderr
    assert dump.stdout.count(b"(0004,1430) CS [PATIENT]") == 5  # CT, MR, dose, the synthetic series, P001
    entries = read_dicomdir(plan.dicomdir).by_file_id()
    assert set(entries) == {f.file_id for f in plan.files}


DICOMDIRTESTS = Path(str(get_testdata_file("DICOMDIR", download=False))).parent


@pytest.mark.parametrize(
    "name",
    [
        "DICOMDIR",
        "DICOMDIR-bigEnd",
        "DICOMDIR-implicit",
        "DICOMDIR-reordered",
        "DICOMDIR-nopatient",
        "DICOMDIR-empty.dcm",
    ],
)
def test_the_fast_dicomdir_reader_reads_what_pydicom_reads(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = DICOMDIRTESTS / name
    fast = fileset_module._read_dicomdir_fast(path)
    assert fast is not None  # the fast path took it: no fallback
    monkeypatch.setattr(fileset_module, "_read_dicomdir_fast", lambda _path: None)
    assert fast == read_dicomdir(path)


def test_a_dicomdir_the_fast_reader_refuses_is_read_by_pydicom() -> None:
    # Its last record runs 24 bytes past the length its Directory Record Sequence declares: pydicom forgives.
    path = DICOMDIRTESTS / "DICOMDIR-nooffset"
    assert fileset_module._read_dicomdir_fast(path) is None
    assert len(read_dicomdir(path).entries) == 31


def test_the_fast_dicomdir_reader_reads_our_dicomdir_as_pydicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = [*_conformed(tmp_path / "in", SAMPLES, Profile.DVD_JPEG), _pdf(tmp_path / "src" / "PDF")]
    plan = build_fileset(sources, tmp_path / "fs", profile=Profile.DVD_JPEG)
    fast = fileset_module._read_dicomdir_fast(plan.dicomdir)
    assert fast is not None
    assert len(fast.entries) == len(plan.files)
    monkeypatch.setattr(fileset_module, "_read_dicomdir_fast", lambda _path: None)
    assert fast == read_dicomdir(plan.dicomdir)


def test_an_unusual_dicomdir_goes_to_pydicom(tmp_path: Path) -> None:
    plan = build_fileset([Path(str(get_testdata_file("CT_small.dcm")))], tmp_path / "fs", profile=Profile.CD)
    raw = bytearray(plan.dicomdir.read_bytes())
    at = raw.index(b"\x10\x00\x20\x00LO")  # the PATIENT record's Patient ID: make it Latin-1, not ASCII
    raw[at + 8] = 0xE9
    plan.dicomdir.write_bytes(bytes(raw))
    assert fileset_module._read_dicomdir_fast(plan.dicomdir) is None
    assert len(read_dicomdir(plan.dicomdir).entries) == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_instances_are_refused_or_left_out_never_crash(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Hostile headers: the planner raises only DcmsealError (or plans without the file); never anything else."""
    name = data.draw(
        st.sampled_from(["CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "rtplan.dcm", "waveform_ecg.dcm"])
    )
    root = tmp_path_factory.mktemp("mut")
    # A sound instance first, so that the mutated one may join its PATIENT/STUDY/SERIES records.
    good, source = _conformed(root / "in", ["CT_small.dcm", name], Profile.DVD_JPEG)
    raw = bytearray(source.read_bytes())
    end = min(len(raw), 6000)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(300, end - 1))
        raw[at] = data.draw(st.integers(0, 255))
    source.write_bytes(bytes(raw))
    try:
        plan = build_fileset([good, source], root / "fs", profile=Profile.DVD_JPEG)
    except DcmsealError:
        return
    others = [n for n in plan.notes if n.kind in (NoteKind.LEFT_OUT, NoteKind.DUPLICATE)]
    assert len(plan.files) + len(others) == 2
    assert read_dicomdir(plan.dicomdir).by_file_id().keys() == {f.file_id for f in plan.files}
