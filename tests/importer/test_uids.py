"""UID regeneration: one consistent map, every reference followed, Frame of Reference kept."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from dcmseal.importer import UidTriple, plan_uids, regenerate_uids


def _instance(study: str, series: str, sop: str, *, refs: list[str]) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop)
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.FrameOfReferenceUID = "1.9.9.9"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ref.ReferencedSOPInstanceUID = refs[0]
    evidence = Dataset()
    evidence.StudyInstanceUID = study
    series_item = Dataset()
    series_item.SeriesInstanceUID = series
    series_item.ReferencedSOPSequence = Sequence([ref])
    evidence.ReferencedSeriesSequence = Sequence([series_item])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    ds.SourceImageSequence = Sequence([ref])
    return ds


def test_every_reference_is_rewritten_consistently_and_the_frame_of_reference_kept() -> None:
    a = _instance("1.1", "1.1.1", "1.1.1.1", refs=["1.1.1.2"])
    b = _instance("1.1", "1.1.1", "1.1.1.2", refs=["1.1.1.1"])
    counter = iter(range(100))
    mapping, added = plan_uids(
        [UidTriple("1.1", "1.1.1", "1.1.1.1"), UidTriple("1.1", "1.1.1", "1.1.1.2")],
        {},
        new_uid=lambda: f"2.25.{next(counter)}",
    )
    assert mapping == {"1.1": "2.25.0", "1.1.1": "2.25.1", "1.1.1.1": "2.25.2", "1.1.1.2": "2.25.3"}
    assert [kind for _o, _n, kind in added] == ["study", "series", "instance", "instance"]
    originals, replaced = regenerate_uids(a, mapping)
    regenerate_uids(b, mapping)
    assert [str(e.value) for e in originals] == ["1.1", "1.1.1", "1.1.1.1"]
    assert replaced == 7  # 3 top level + study, series, SOP in the evidence + source image (meta counted too)
    assert (a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID) == ("2.25.0", "2.25.1", "2.25.2")
    assert a.file_meta.MediaStorageSOPInstanceUID == "2.25.2"
    assert a.SourceImageSequence[0].ReferencedSOPInstanceUID == b.SOPInstanceUID == "2.25.3"
    evidence = a.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == "2.25.0"
    assert evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == "2.25.3"
    assert a.FrameOfReferenceUID == "1.9.9.9"
    assert a.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"


def test_a_rerun_reuses_the_recorded_uids_and_adds_only_new_ones() -> None:
    mapping, added = plan_uids([UidTriple("1.1", "1.1.1", "1.1.1.1")], {"1.1": "2.25.7", "1.1.1": "2.25.8"})
    assert mapping["1.1"] == "2.25.7"
    assert mapping["1.1.1"] == "2.25.8"
    assert [o for o, _n, _k in added] == ["1.1.1.1"]
    assert mapping["1.1.1.1"].startswith("2.25.")
