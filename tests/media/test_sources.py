"""Collecting burn sources: files, folders, zips, DICOMDIR sets, ISO images, and studies on a real Orthanc."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal import cms
from dcmseal.errors import InputError, PeerError
from dcmseal.media.iso import write_iso
from dcmseal.media.sources import ALREADY_SEALED, SourceCollection, collect
from dcmseal.part10 import read_file_meta, seal_file
from tests.part10.dicomfiles import PASSWORD, fast_kdf, write_part10
from tests.peers.orthanc import OrthancPeer, free_port
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")
MR_SMALL = pydicom_file("MR_small.dcm")
JPEG2000 = pydicom_file("JPEG2000.dcm")  # J2K, same study as JPEG-lossy.dcm
JPEG_LOSSY = pydicom_file("JPEG-lossy.dcm")
DICOMDIR_SET = pydicom_file("DICOMDIR").parent
NOT_PART10 = "not a DICOM PS3.10 file"


def _referenced_files(dicomdir: Path) -> list[Path]:
    ds = dcmread(dicomdir)
    return [
        dicomdir.parent.joinpath(*record.ReferencedFileID)
        for record in ds.DirectoryRecordSequence
        if "ReferencedFileID" in record
    ]


def _uids(collection: SourceCollection) -> list[str]:
    return [i.sop_instance_uid for i in collection.instances]


def _sealed_copy(src: Path, dst: Path) -> Path:
    kdf = fast_kdf()
    seal_file(src, dst, recipients=[cms.PasswordRecipient(password=PASSWORD.encode(), kdf=kdf)])
    return dst


# --- files, folders, zips, DICOMDIR sets --------------------------------------------------------------------


def test_collect_files_folder_zip_and_dicomdir_set(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    loose = [write_part10(folder / "a.dcm"), write_part10(folder / "sub" / "b")]
    (folder / "notes.txt").write_text("not DICOM")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    archive = tmp_path / "study.zip"
    zipped = write_part10(tmp_path / "zipped.dcm")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(zipped, "IMAGES/ZIPPED")
        zf.writestr("IMAGES/readme.pdf", b"%PDF-1.4 not dicom")
    work = tmp_path / "work"

    sources = [str(CT_SMALL), str(folder), str(archive), str(DICOMDIR_SET)]
    result = collect(sources, work)

    referenced = _referenced_files(DICOMDIR_SET / "DICOMDIR")
    assert len(referenced) == 31
    assert len(result.instances) == 1 + 2 + 1 + 31
    by_origin: dict[str, list[Path]] = {}
    for instance in result.instances:
        by_origin.setdefault(instance.origin, []).append(instance.path)
        meta = read_file_meta(instance.path)
        assert (instance.sop_class_uid, instance.sop_instance_uid, instance.transfer_syntax_uid) == (
            meta.sop_class_uid,
            meta.sop_instance_uid,
            meta.transfer_syntax_uid,
        )
    assert by_origin[str(CT_SMALL)] == [CT_SMALL]
    assert sorted(by_origin[str(folder)]) == sorted(loose)
    [from_zip] = by_origin[str(archive)]
    assert work in from_zip.parents
    assert from_zip.read_bytes() == zipped.read_bytes()
    assert sorted(by_origin[str(DICOMDIR_SET)]) == sorted(referenced)
    # The DICOMDIR is never an instance.
    assert not [i for i in result.instances if i.sop_class_uid == "1.2.840.10008.1.3.10"]

    rejected = {r.path.name if r.path else None: r for r in result.rejected}
    assert set(rejected) == {"notes.txt", "readme.pdf"}
    assert NOT_PART10 in rejected["notes.txt"].reason
    assert rejected["notes.txt"].origin == str(folder)
    assert rejected["readme.pdf"].origin == str(archive)

    # Files beside the DICOMDIR that it does not reference are noted, not taken (nor rejected).
    unreferenced = [n for n in result.notes if "not referenced by" in n]
    assert any(n.startswith(str(DICOMDIR_SET / "README.txt")) for n in unreferenced)
    assert any(n.startswith(str(DICOMDIR_SET / "DICOMDIR-implicit")) for n in unreferenced)
    assert any("TINY_ALPHA" in n for n in unreferenced)
    assert not any(n.startswith(f"{DICOMDIR_SET / 'DICOMDIR'}:") for n in result.notes)
    assert [n for n in result.notes if ".DS_Store" in n] == [f"{folder / '.DS_Store'}: hidden file; left out"]


def test_a_dicomdir_given_as_a_file_stands_for_its_file_set(tmp_path: Path) -> None:
    result = collect([str(DICOMDIR_SET / "DICOMDIR")], tmp_path / "work")
    assert sorted(i.path for i in result.instances) == sorted(_referenced_files(DICOMDIR_SET / "DICOMDIR"))
    assert result.rejected == ()


def test_dicomdir_disagreements_are_reported(tmp_path: Path) -> None:
    fileset = tmp_path / "disc"
    shutil.copytree(DICOMDIR_SET, fileset, ignore=shutil.ignore_patterns("TINY_ALPHA", "DICOMDIR-*", "*.txt"))
    referenced = _referenced_files(fileset / "DICOMDIR")
    referenced[0].unlink()
    extra = write_part10(fileset / "EXTRA" / "IM000001")

    result = collect([str(fileset)], tmp_path / "work")

    assert len(result.instances) == 30
    assert extra not in [i.path for i in result.instances]
    [missing] = result.rejected
    assert missing.path == referenced[0]
    assert missing.reason == "referenced by the DICOMDIR but missing"
    assert result.notes == (f"{extra}: not referenced by {fileset / 'DICOMDIR'}; left out",)


def test_a_broken_dicomdir_falls_back_to_every_file(tmp_path: Path) -> None:
    fileset = tmp_path / "disc"
    images = [write_part10(fileset / "DICOM" / f"IM00000{i}") for i in range(3)]
    (fileset / "DICOMDIR").write_bytes(b"garbage")

    result = collect([str(fileset)], tmp_path / "work")

    assert sorted(i.path for i in result.instances) == sorted(images)
    assert any(n.startswith(f"{fileset / 'DICOMDIR'}: not a usable DICOMDIR") for n in result.notes)
    assert result.rejected == ()


def test_non_dicom_is_rejected_with_its_reason(tmp_path: Path) -> None:
    text = tmp_path / "report.txt"
    text.write_text("hello")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(CT_SMALL.read_bytes()[:140])

    result = collect([str(text), str(cut)], tmp_path / "work")

    assert result.instances == ()
    assert [(r.origin, r.path) for r in result.rejected] == [(str(text), text), (str(cut), cut)]
    assert NOT_PART10 in result.rejected[0].reason
    assert "File Meta Information" in result.rejected[1].reason


def test_sealed_files_are_rejected(tmp_path: Path) -> None:
    plain = write_part10(tmp_path / "plain.dcm")
    sealed = _sealed_copy(plain, tmp_path / "in" / "SEALED")

    result = collect([str(sealed), str(sealed.parent)], tmp_path / "work")

    assert result.instances == ()
    assert [(r.path, r.reason) for r in result.rejected] == [
        (sealed, ALREADY_SEALED),
        (sealed, ALREADY_SEALED),
    ]


def test_duplicated_sop_instance_uids_keep_the_first(tmp_path: Path) -> None:
    copy = tmp_path / "again" / "ct.dcm"
    copy.parent.mkdir()
    shutil.copyfile(CT_SMALL, copy)

    result = collect([str(CT_SMALL), str(copy.parent)], tmp_path / "work")

    assert [i.path for i in result.instances] == [CT_SMALL]
    uid = result.instances[0].sop_instance_uid
    assert result.notes == (
        f"{copy}: duplicate SOP Instance UID {uid} (already taken from {CT_SMALL}); left out",
    )


def test_an_iso_image_source_is_opened(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    images = [write_part10(stage / "DICOM" / f"IM00000{i}") for i in range(2)]
    image = tmp_path / "disc.iso"
    write_iso(stage, image, volume_id="SRC", udf=False)

    result = collect([str(image)], tmp_path / "work")

    assert sorted(_uids(result)) == sorted(read_file_meta(p).sop_instance_uid for p in images)
    assert {i.origin for i in result.instances} == {str(image)}


def test_zip_source_with_an_escaping_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(CT_SMALL, "CT")
        zf.writestr("../evil", b"owned")
    work = tmp_path / "work"

    result = collect([str(archive), str(MR_SMALL)], work)

    assert [i.path for i in result.instances] == [MR_SMALL]
    [refused] = result.rejected
    assert (refused.origin, refused.path) == (str(archive), archive)
    assert "'../evil'" in refused.reason
    assert not (tmp_path / "evil").exists()
    assert not (work / "evil").exists()
    assert list(work.iterdir()) == []


def test_zip_bomb_source_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ZEROS", bytes(16 * 1024 * 1024))

    result = collect([str(archive)], tmp_path / "work")

    assert result.instances == ()
    [refused] = result.rejected
    assert "expands" in refused.reason
    assert "zip bomb" in refused.reason


def test_archives_inside_a_folder_are_not_opened(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    with zipfile.ZipFile(folder / "inner.zip", "w") as zf:
        zf.write(CT_SMALL, "CT")

    result = collect([str(folder)], tmp_path / "work")

    assert result.instances == ()
    assert "give it as a source of its own" in result.rejected[0].reason


def test_a_missing_source_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder") as info:
        collect([str(tmp_path / "nowhere")], tmp_path / "work")
    assert info.value.path == tmp_path / "nowhere"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8042/dicom-web/studies/",
        "http://127.0.0.1:8042/dicom-web/series/1.2.3",
        "https://pacs/dicom-web/studies/not-a-uid",
        "http://127.0.0.1:8042/dicom-web/studies/1.2.3?includefield=all",
        "http://127.0.0.1:8042/dicom-web/studies/1..2",
        "http://127.0.0.1:8042/dicom-web/studies/1.2.",
        f"http://127.0.0.1:8042/dicom-web/studies/1.{'2' * 63}",
    ],
)
def test_urls_that_are_not_a_study_are_input_errors(tmp_path: Path, url: str) -> None:
    with pytest.raises(InputError, match="not a WADO-RS study URL"):
        collect([url], tmp_path / "work")


def test_an_unreachable_pacs_is_a_peer_error(tmp_path: Path) -> None:
    url = f"http://admin:s3cret-Pass@127.0.0.1:{free_port()}/dicom-web/studies/1.2.3"
    with pytest.raises(PeerError) as info:
        collect([url], tmp_path / "work", timeout_s=5)
    message = str(info.value)
    assert message.startswith(
        f"http://127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/dicom-web/studies/1.2.3:"
    )
    assert "cannot connect" in message
    assert "s3cret" not in message
    assert "admin" not in message


# --- WADO-RS from a real Orthanc ----------------------------------------------------------------------------


@pytest.mark.interop
def test_wado_rs_retrieves_the_studies_from_orthanc(orthanc: OrthancPeer, tmp_path: Path) -> None:
    orthanc.clear()
    originals = [CT_SMALL, MR_SMALL, JPEG2000, JPEG_LOSSY]
    for path in originals:
        orthanc.upload(path)
    ct, mr, j2k, jpeg = (dcmread(p, stop_before_pixels=True) for p in originals)
    assert len({ct.StudyInstanceUID, mr.StudyInstanceUID, j2k.StudyInstanceUID}) == 3
    assert j2k.StudyInstanceUID == jpeg.StudyInstanceUID  # one study, two instances in one multipart answer
    work = tmp_path / "work"
    # Credentials in the URL go out as HTTP Basic (Orthanc ignores them here) and are never echoed.
    with_credentials = orthanc.study_url(mr.StudyInstanceUID).replace("http://", "http://viewer:pw-Secret@")

    result = collect(
        [orthanc.study_url(ct.StudyInstanceUID), with_credentials, orthanc.study_url(j2k.StudyInstanceUID)],
        work,
    )

    assert result.rejected == ()
    assert _uids(result)[:2] == [ct.SOPInstanceUID, mr.SOPInstanceUID]
    assert sorted(_uids(result)[2:]) == sorted([j2k.SOPInstanceUID, jpeg.SOPInstanceUID])
    assert [i.origin for i in result.instances] == [
        orthanc.study_url(ct.StudyInstanceUID),
        orthanc.study_url(mr.StudyInstanceUID),
        orthanc.study_url(j2k.StudyInstanceUID),
        orthanc.study_url(j2k.StudyInstanceUID),
    ]
    by_uid = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in originals}
    for instance in result.instances:
        original = by_uid[instance.sop_instance_uid]
        assert work in instance.path.parents
        # Retrieved as stored (transfer-syntax=*): same transfer syntax, same pixel bytes, no transcoding.
        assert instance.transfer_syntax_uid == read_file_meta(original).transfer_syntax_uid
        assert instance.sop_class_uid == read_file_meta(original).sop_class_uid
        retrieved, source = dcmread(instance.path), dcmread(original)
        assert retrieved.PixelData == source.PixelData
        assert retrieved.PatientName == source.PatientName
    assert {i.transfer_syntax_uid for i in result.instances} >= {
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.51",
    }
    assert "pw-Secret" not in repr(result)


@pytest.mark.interop
def test_wado_rs_unknown_study_is_a_peer_error(orthanc: OrthancPeer, tmp_path: Path) -> None:
    url = orthanc.study_url("1.2.826.0.1.3680043.8.498.999999")
    secret_url = url.replace("http://", "http://viewer:pw-Secret@")
    with pytest.raises(PeerError) as info:
        collect([secret_url], tmp_path / "work")
    assert str(info.value) == f"{url}: WADO-RS retrieve failed: HTTP 404 Not Found"
    assert info.value.exit_code == 3
