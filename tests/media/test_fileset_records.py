"""dcmseal's DICOMDIR against known answers: the bytes, File IDs and notes stored in ``tests/media/vectors``.

The vectors were made by the planner as it was before dcmseal encoded the records itself (pydicom's ``FileSet``
building and encoding every record) for fixed inputs, see ``tests/media/vectors/make_dicomdir_vectors.py``; the
new planner reads each header with ``dcmseal.part10.header`` and encodes the records itself, asking pydicom where
its fast path cannot vouch for a value, and must give the same DICOMDIRs byte for byte once both name the same
implementation in the File Meta.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.data import get_testdata_file

from dcmseal.errors import DcmsealError
from dcmseal.media import dicomdir as dicomdir_module
from dcmseal.media.fileset import FileSetPlan, NoteKind, build_fileset, read_dicomdir
from dcmseal.media.fileset import read as fileset_module
from dcmseal.media.profiles import Profile
from tests.media.conftest import write_series
from tests.media.test_fileset import _pdf
from tests.media.vectors.dicomdir_scenarios import (
    FILESET_UID,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    PADDING_CASES,
    SAMPLES,
    SCENARIOS,
    VECTORS,
    Inputs,
    conformed,
    load_vector,
    summary,
)
from tests.peers.tools import run_tool


@pytest.fixture(autouse=True)
def _pydicom_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Ours names dcmseal in the File Meta; the vectors name pydicom, which made them. Same name, same bytes.
    monkeypatch.setattr(dicomdir_module, "_IMPLEMENTATION_CLASS_UID", IMPLEMENTATION_CLASS_UID)
    monkeypatch.setattr(dicomdir_module, "_IMPLEMENTATION_VERSION_NAME", IMPLEMENTATION_VERSION_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the samples' invalid values
        yield


def _plan_as_vector(name: str, tmp_path: Path) -> tuple[FileSetPlan, Inputs]:
    """Build scenario ``name``'s inputs, plan them, and check the plan against the scenario's vector."""
    scenario, vector = SCENARIOS[name], load_vector(name)
    assert vector.meta["implementation_version_name"] == IMPLEMENTATION_VERSION_NAME
    root = (tmp_path / "root").resolve()
    root.mkdir(parents=True)
    inputs = scenario.build(root)
    changed = vector.changed_inputs(inputs)
    if changed:
        # A pydicom release changed them, or a test wrote into one through a hard link (build_fileset links its
        # sources into the staging folder): the known answer does not apply to these inputs.
        pytest.skip(
            f"pydicom's test files {', '.join(changed)} differ from those vector {name} was made from"
        )
    plan = build_fileset(
        inputs.sources,
        tmp_path / "fs",
        fileset_id=scenario.fileset_id,
        profile=scenario.profile,
        fileset_uid=FILESET_UID,
    )
    assert summary(plan, root) == vector.summary
    mine = plan.dicomdir.read_bytes()
    if mine != vector.dicomdir:  # say which record differs before failing on the bytes
        (tmp_path / "expected").write_bytes(vector.dicomdir)
        for a, b in zip(
            dcmread(plan.dicomdir).DirectoryRecordSequence,
            dcmread(tmp_path / "expected").DirectoryRecordSequence,
            strict=True,
        ):
            assert a == b
    assert mine == vector.dicomdir
    return plan, inputs


def test_every_vector_has_its_scenario() -> None:
    stored = {path.stem for path in VECTORS.iterdir() if path.suffix in (".dcm", ".json")}
    assert stored == set(SCENARIOS)
    assert sum(path.stat().st_size for path in VECTORS.iterdir()) < 1_000_000


@pytest.mark.parametrize("profile", [Profile.DVD_JPEG, Profile.CD])
def test_every_sample_gives_the_known_dicomdir(tmp_path: Path, profile: Profile, dciodvfy_bin: str) -> None:
    plan, inputs = _plan_as_vector(f"every-sample-{profile.name.lower().replace('_', '-')}", tmp_path)
    # MR_small's variants share one SOP Instance UID: the later ones are left out as duplicates.
    duplicates = [n for n in plan.notes if n.kind is NoteKind.DUPLICATE]
    assert len(plan.files) + len(duplicates) == len(inputs.sources)
    assert {f.record_type for f in plan.files} >= {"IMAGE", "RT PLAN", "RT DOSE", "SR DOCUMENT", "WAVEFORM"}
    # And dicom3tools finds nothing wrong with it (Basic Directory IOD, every record type above).
    done = run_tool([dciodvfy_bin, "-new", str(plan.dicomdir)])
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert "BasicDirectory" in output
    assert [line for line in output.splitlines() if line.startswith("Error -")] == []


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_sample_alone_gives_the_known_dicomdir(tmp_path: Path, sample: str) -> None:
    plan, _ = _plan_as_vector(f"alone-{Path(sample).stem}", tmp_path)
    assert len(plan.files) == 1


def test_a_mixed_set_with_duplicates_conflicts_and_inventions(tmp_path: Path) -> None:
    plan, _ = _plan_as_vector("mixed", tmp_path)
    kinds = {n.kind for n in plan.notes}
    assert {NoteKind.DUPLICATE, NoteKind.PATIENT_ID_CONFLICT, NoteKind.INVENTED} <= kinds


def test_an_instance_without_study_instance_uid_is_left_out_and_the_rest_is_known(tmp_path: Path) -> None:
    """pydicom gave up on such a STUDY record too: the vector is its DICOMDIR of the other instances alone."""
    plan, inputs = _plan_as_vector("no-study-uid", tmp_path)
    assert inputs.indexed is not None
    assert [f.source for f in plan.files] == inputs.indexed
    left_out = [n for n in plan.notes if n.kind is NoteKind.LEFT_OUT]
    assert [n.path for n in left_out] == [p for p in inputs.sources if p not in inputs.indexed]
    assert all("(0020,000D) StudyInstanceUID, which is missing" in n.message for n in left_out)


@pytest.mark.parametrize("case", range(PADDING_CASES))
def test_unusual_spacing_and_padding_give_the_known_records(tmp_path: Path, case: int) -> None:
    """Raw PN, LO, SH, CS and IS values with the spacing and padding pydicom's own writer would tidy up."""
    plan, _ = _plan_as_vector(f"padding-{case:02d}", tmp_path)
    assert len(plan.files) == 1


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
    sources = write_series(tmp_path / "a", 30) + conformed(tmp_path / "in", ["CT_small.dcm"], Profile.CD)
    plan = build_fileset(sources, tmp_path / "fs", profile=Profile.DVD_JPEG)
    assert len(plan.files) == 31
    assert calls == []
    # The check can fail: a header read with pydicom is seen, through pydicom.dcmread and through a dcmread bound
    # before the trap was set (as `from pydicom import dcmread` in a module binds it), which reaches read_partial.
    pydicom.dcmread(sources[0], stop_before_pixels=True)
    assert calls[0] == "dcmread"
    assert "read_partial" in calls
    calls.clear()
    dcmread(sources[-1], stop_before_pixels=True)
    assert "read_partial" in calls


def test_cd_set_of_several_patients_validates(tmp_path: Path, dciodvfy_bin: str, dcmdump_bin: str) -> None:
    sources = conformed(tmp_path / "in", ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm"], Profile.CD)
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
def test_the_fast_dicomdir_reader_reads_what_pydicom_reads(name: str) -> None:
    path = DICOMDIRTESTS / name
    fast = fileset_module.read_dicomdir_fast(path)
    assert fast is not None  # the fast path took it: no fallback
    assert fast == read_dicomdir(path, fast=False)


def test_a_dicomdir_the_fast_reader_refuses_is_read_by_pydicom() -> None:
    # Its last record runs 24 bytes past the length its Directory Record Sequence declares: pydicom forgives.
    path = DICOMDIRTESTS / "DICOMDIR-nooffset"
    assert fileset_module.read_dicomdir_fast(path) is None
    assert len(read_dicomdir(path).entries) == 31


def test_the_fast_dicomdir_reader_reads_our_dicomdir_as_pydicom(tmp_path: Path) -> None:
    sources = [*conformed(tmp_path / "in", SAMPLES, Profile.DVD_JPEG), _pdf(tmp_path / "src" / "PDF")]
    plan = build_fileset(sources, tmp_path / "fs", profile=Profile.DVD_JPEG)
    fast = fileset_module.read_dicomdir_fast(plan.dicomdir)
    assert fast is not None
    assert len(fast.entries) == len(plan.files)
    assert fast == read_dicomdir(plan.dicomdir, fast=False)


def test_an_unusual_dicomdir_goes_to_pydicom(tmp_path: Path) -> None:
    plan = build_fileset([Path(str(get_testdata_file("CT_small.dcm")))], tmp_path / "fs", profile=Profile.CD)
    raw = bytearray(plan.dicomdir.read_bytes())
    at = raw.index(b"\x10\x00\x20\x00LO")  # the PATIENT record's Patient ID: make it Latin-1, not ASCII
    raw[at + 8] = 0xE9
    plan.dicomdir.write_bytes(bytes(raw))
    assert fileset_module.read_dicomdir_fast(plan.dicomdir) is None
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
    good, source = conformed(root / "in", ["CT_small.dcm", name], Profile.DVD_JPEG)
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
