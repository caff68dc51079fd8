"""The inputs of the DICOMDIR known-answer vectors, and how a plan is compared with a vector.

Each scenario builds its input instances under a root folder, with nothing left to chance: every UID is fixed
(``_uid``), the File-set UID and File-set ID are given, and the DICOMDIR holds no date or time of "now" (the
planner's only inventions are derived from the instance, see ``dcmseal.media.fileset.inventions.supply_key``). pydicom's test
files are used as they are; each vector records their SHA-256 and the test skips when a pydicom release changed one.

Paths in the vectors are relative to the scenario's root, written ``<root>/...``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import UID

from dcmseal.media.fileset import FileSetPlan
from dcmseal.media.profiles import Profile
from dcmseal.media.transcode import conform
from tests.media.conftest import write_instance
from tests.media.test_fileset import _pdf, _with_new_uid

VECTORS = Path(__file__).parent / "dicomdir"
FILESET_UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"
FILESET_ID = "Same disc"
#: The identity pydicom 3.0.2's FileSet.write put in the File Meta of the vectors (they were made by it); the
#: test gives dcmseal's writer the same identity so that the bytes can be compared.
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.1"
IMPLEMENTATION_VERSION_NAME = "PYDICOM 3.0.2"

# pydicom's samples, every kind the planner meets: images (CT, MR, US palette, enhanced CT with functional
# groups, overlays, odd sizes), RT plan and dose, SR (one with empty number tags), waveform, other character sets
# (the charset files), sources that were implicit VR, big endian or deflated before conform.
SAMPLES = (
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
)
# Samples without a Study Instance UID (Type 1; PS3.3 F.5.2 keys the STUDY record by it).
NO_STUDY_UID = ("UN_sequence.dcm", "priv_SQ.dcm")

# Unusual spacing and padding: text the planner's fast path must either copy exactly as pydicom would write it
# back, or hand to pydicom. A fixed grid of the values the property test drew from (every number with every
# padding; the texts cycle through edge cases of the alphabet "AZaz09^ .\-_=").
PADDINGS = ("", " ", "  ", "\x00", " \x00")
NUMBERS = ("1", " 2", "03 ", "+4", "5\\6", "", "  ")
TEXTS = (
    "",
    "A",
    " A",
    "A ",
    "  ",
    "a^b",
    "Doe^Jane^^",
    "^",
    "A\\B",
    "\\",
    " \\ ",
    "1.5-2_=",
    "az09 AZ.",
    "Zz^ .\\-_=09a",
)


@dataclass(frozen=True)
class Inputs:
    """What a scenario built: the instances to plan, and the pydicom test files they came from."""

    sources: list[Path]
    pydicom_files: dict[str, Path] = field(default_factory=dict)
    #: The instances the vector's DICOMDIR indexes, when the planner must leave the others out.
    indexed: list[Path] | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    profile: Profile
    build: Callable[[Path], Inputs]
    fileset_id: str = FILESET_ID


def _uid(*parts: str) -> str:
    """A fixed UID for ``parts`` (PS3.5 B.2: 2.25 and a decimal integer below 2**128)."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:15], 'big')}"


def _pin(path: Path, sop_instance_uid: str) -> Path:
    """Give the instance at ``path`` this SOP Instance UID (data set and File Meta) instead of a random one."""
    ds = dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    ds.save_as(path, enforce_file_format=True)
    return path


def testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom's test file {name} is not installed"
    return Path(str(path))


def conformed(root: Path, names: list[str] | tuple[str, ...], profile: Profile) -> list[Path]:
    """pydicom's test files ``names`` conformed to ``profile``, as ``root/F0000``, ``root/F0001``, ..."""
    return [conform(testdata(name), root / f"F{i:04d}", profile).destination for i, name in enumerate(names)]


def _series(root: Path, count: int, key: str) -> list[Path]:
    """``count`` instances of one synthetic study and series (conftest's write_series, with fixed UIDs)."""
    study, series = _uid(key, "study"), _uid(key, "series")
    return [
        _pin(
            write_instance(root / f"I{n:04d}", study_uid=study, series_uid=series, number=n + 1),
            _uid(key, str(n)),
        )
        for n in range(count)
    ]


def _every_sample(profile: Profile) -> Callable[[Path], Inputs]:
    def build(root: Path) -> Inputs:
        sources = conformed(root / "in", SAMPLES, profile)
        pydicom_files = {name: testdata(name) for name in SAMPLES}
        charset = root / "charset"
        charset.mkdir(parents=True)
        for name in sorted(get_charset_files("chr*.dcm")):
            if "SQEncoding" not in name:
                pydicom_files[f"charset/{Path(name).name}"] = Path(name)
                sources.append(Path(shutil.copyfile(name, charset / Path(name).name)))
        return Inputs(sources, pydicom_files)

    return build


def _alone(name: str) -> Callable[[Path], Inputs]:
    def build(root: Path) -> Inputs:
        return Inputs(conformed(root / "in", [name], Profile.DVD_JPEG), {name: testdata(name)})

    return build


def _mixed(root: Path) -> Inputs:
    """Duplicates (a copy of CT), a Patient ID conflict (P001 for two names), inventions (the PDFs' keys)."""
    ct = conformed(root / "in", ["CT_small.dcm"], Profile.CD)[0]
    src = root / "src"
    sources = [
        ct,
        _pin(_pdf(src / "PDF1"), _uid("mixed", "pdf1")),
        _pin(_pdf(src / "PDF2"), _uid("mixed", "pdf2")),
        _pin(
            _pdf(src / "OTHER", patient_name="Roe^Richard", study_uid=_uid("mixed", "other-study")),
            _uid("mixed", "other"),
        ),
        Path(shutil.copyfile(ct, src / "CTDUP")),
        _pin(_with_new_uid(ct, src / "CT2", InstanceNumber="2"), _uid("mixed", "ct2")),
        *_series(root / "a", 12, "mixed-a"),
        *_series(root / "b", 3, "mixed-b"),
    ]
    return Inputs(sources, {"CT_small.dcm": testdata("CT_small.dcm")})


def _no_study_uid(root: Path) -> Inputs:
    """Two instances without Study Instance UID among two good ones: the DICOMDIR indexes the good ones."""
    good = conformed(root / "good", ["CT_small.dcm", "MR_small.dcm"], Profile.CD)
    bad = conformed(root / "bad", NO_STUDY_UID, Profile.CD)
    names = ("CT_small.dcm", "MR_small.dcm", *NO_STUDY_UID)
    return Inputs(good + bad, {name: testdata(name) for name in names}, indexed=good)


def padding_case(index: int) -> dict[str, str]:
    """The values of padding case ``index``: every (number, padding) pair once, the texts cycled through."""
    n = len(TEXTS)
    return {
        "name": TEXTS[index % n],
        "description": TEXTS[(index + 3) % n],
        "accession": TEXTS[(index + 6) % n],
        "image_type": TEXTS[(index + 9) % n],
        "number": NUMBERS[index // len(PADDINGS)],
        "padding": PADDINGS[index % len(PADDINGS)],
    }


def _padding(index: int) -> Callable[[Path], Inputs]:
    def build(root: Path) -> Inputs:
        case = padding_case(index)
        key = f"padding-{index}"
        path = write_instance(
            root / "I1", study_uid=_uid(key, "study"), series_uid=_uid(key, "series"), number=1
        )
        ds = dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(_uid(key))
        # Raw elements are written as they are: the padding and spacing pydicom's own writer would tidy up.
        pad = case["padding"]
        for tag, vr, text in (
            (0x00100010, "PN", case["name"] + pad),
            (0x00081030, "LO", case["description"] + pad),
            (0x00080050, "SH", case["accession"] + pad),
            (0x00080008, "CS", case["image_type"] + pad),
            (0x00200013, "IS", case["number"] + pad),
        ):
            value = text.encode("ascii")
            ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
        ds.save_as(path, enforce_file_format=True)
        return Inputs([path])

    return build


PADDING_CASES = len(NUMBERS) * len(PADDINGS)
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("every-sample-dvd-jpeg", Profile.DVD_JPEG, _every_sample(Profile.DVD_JPEG)),
        Scenario("every-sample-cd", Profile.CD, _every_sample(Profile.CD)),
        *(Scenario(f"alone-{Path(name).stem}", Profile.DVD_JPEG, _alone(name)) for name in SAMPLES),
        Scenario("mixed", Profile.CD, _mixed),
        Scenario("no-study-uid", Profile.CD, _no_study_uid, fileset_id=""),
        *(Scenario(f"padding-{i:02d}", Profile.DVD_JPEG, _padding(i)) for i in range(PADDING_CASES)),
    )
}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _relative(root: Path, text: str) -> str:
    return text.replace(str(root), "<root>")


def summary(plan: FileSetPlan, root: Path) -> dict[str, list[list[object]]]:
    """The plan's files and notes as the vectors hold them (paths under ``root`` as ``<root>/...``)."""
    return {
        "files": [
            [_relative(root, str(f.source)), list(f.file_id), f.record_type, f.patient_id, f.modality]
            for f in plan.files
        ],
        "notes": [
            [n.kind.value, _relative(root, str(n.path)), _relative(root, n.message)] for n in plan.notes
        ],
    }


@dataclass(frozen=True)
class Vector:
    """One stored known answer: the DICOMDIR's bytes and the plan's files and notes."""

    name: str
    dicomdir: bytes
    meta: dict[str, object]

    @property
    def summary(self) -> dict[str, object]:
        return {"files": self.meta["files"], "notes": self.meta["notes"]}

    def changed_inputs(self, inputs: Inputs) -> list[str]:
        """The pydicom test files whose bytes differ from those the vector was made from."""
        recorded = self.meta["pydicom_inputs"]
        assert isinstance(recorded, dict)
        assert sorted(recorded) == sorted(inputs.pydicom_files), self.name
        return [name for name, path in inputs.pydicom_files.items() if sha256(path) != recorded[name]]


def load_vector(name: str) -> Vector:
    meta = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return Vector(name=name, dicomdir=(VECTORS / f"{name}.dcm").read_bytes(), meta=meta)


def save_vector(scenario: Scenario, inputs: Inputs, root: Path, plan: FileSetPlan) -> None:
    """Write ``<name>.dcm`` (the DICOMDIR) and ``<name>.json`` (how it was made, files and notes)."""
    VECTORS.mkdir(parents=True, exist_ok=True)
    dicomdir = plan.dicomdir.read_bytes()
    meta: dict[str, object] = {
        "scenario": scenario.name,
        "profile": scenario.profile.value,
        "fileset_id": scenario.fileset_id,
        "fileset_uid": FILESET_UID,
        "implementation_class_uid": IMPLEMENTATION_CLASS_UID,
        "implementation_version_name": IMPLEMENTATION_VERSION_NAME,
        "dicomdir_sha256": hashlib.sha256(dicomdir).hexdigest(),
        "pydicom_inputs": {name: sha256(path) for name, path in sorted(inputs.pydicom_files.items())},
        **summary(plan, root),
    }
    (VECTORS / f"{scenario.name}.dcm").write_bytes(dicomdir)
    (VECTORS / f"{scenario.name}.json").write_text(_json(meta), encoding="utf-8")


def _json(meta: dict[str, object]) -> str:
    """``meta`` as JSON with one planned file or note a line, to keep the diffs of a regeneration readable."""
    fields = []
    for key, value in meta.items():
        if isinstance(value, list) and value:
            text = "[\n" + ",\n".join(f"  {json.dumps(row)}" for row in value) + "\n ]"
        else:
            text = json.dumps(value, indent=1).replace("\n", "\n ")
        fields.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"
