"""Documents in a burn's sources join their study as Encapsulated Documents listed in the DICOMDIR."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.audit import FileSink
from dcmseal.documents import extract
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, BurnResult, burn
from dcmseal.media.fileset import read_dicomdir
from dcmseal.media.open import OpenRequest, open_medium
from tests.documents.samples import AUDIT, OPERATOR, minimal_pdf
from tests.pydicom_data import pydicom_file

PASSWORD = b"documents-travel-with-their-study"


def _burn(
    tmp_path: Path, sources: list[Path], *, strict: bool = False, document_study: str | None = None
) -> BurnResult:
    with Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}") as registry:
        return burn(
            BurnRequest(
                sources=tuple(str(s) for s in sources),
                out=tmp_path / "disc",
                operator="tester",
                output_format="dir",
                password=PASSWORD,
                iterations=1000,
                strict=strict,
                document_study=document_study,
            ),
            registry=registry,
            audit=FileSink(tmp_path / "audit.log"),
        )


def test_a_pdf_joins_the_only_study_and_comes_back_byte_for_byte(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    shutil.copyfile(pydicom_file("CT_small.dcm"), study / "ct.dcm")
    report = tmp_path / "report.pdf"
    report.write_bytes(minimal_pdf(odd=True))

    result = _burn(tmp_path, [study, report])

    assert not result.rejected
    assert len(result.files) == 2
    opened = open_medium(
        OpenRequest(
            medium=tmp_path / "disc", out=tmp_path / "opened", operator="tester", passwords=(PASSWORD,)
        ),
        audit=FileSink(tmp_path / "audit.log"),
    )
    assert not opened.failed
    dicomdir = read_dicomdir(tmp_path / "opened" / "DICOMDIR")
    records = {entry.record_type for entry in dicomdir.entries}
    assert "ENCAP DOC" in records
    document = next(e for e in dicomdir.entries if e.record_type == "ENCAP DOC")
    ct = dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    assert document.study_instance_uid == ct.StudyInstanceUID
    extracted = extract(
        tmp_path / "opened" / Path(*document.file_id), tmp_path / "extracted", audit=AUDIT, operator=OPERATOR
    )
    assert extracted.path.read_bytes() == report.read_bytes()


@pytest.mark.parametrize("strict", [False, True])
def test_a_document_with_two_studies_to_choose_from_asks_for_the_study(tmp_path: Path, strict: bool) -> None:
    study = tmp_path / "study"
    study.mkdir()
    shutil.copyfile(pydicom_file("CT_small.dcm"), study / "ct.dcm")
    shutil.copyfile(pydicom_file("MR_small.dcm"), study / "mr.dcm")
    report = tmp_path / "report.pdf"
    report.write_bytes(minimal_pdf())
    if strict:
        from dcmseal.errors import InputError

        with pytest.raises(InputError, match="--document-study"):
            _burn(tmp_path, [study, report], strict=True)
        return
    result = _burn(tmp_path, [study, report])
    reasons = [r.reason for r in result.rejected]
    assert any("--document-study" in reason for reason in reasons)
    mr = dcmread(pydicom_file("MR_small.dcm"), stop_before_pixels=True)
    (tmp_path / "again").mkdir()
    chosen = _burn(tmp_path / "again", [study, report], document_study=str(mr.StudyInstanceUID))
    assert not chosen.rejected
    assert len(chosen.files) == 3


def test_content_larger_than_a_cd_moves_an_automatic_choice_to_dvd_and_refuses_an_explicit_cd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PS3.12 media have a capacity: 700 MB does not go on a CD (capacity shrunk here to keep the test small)."""
    from dcmseal.errors import InputError
    from dcmseal.media import burn as burn_module
    from dcmseal.media.profiles import Medium, Profile

    monkeypatch.setitem(burn_module.CAPACITY_BYTES, Medium.CD, 1000)
    study = tmp_path / "study"
    study.mkdir()
    shutil.copyfile(pydicom_file("CT_small.dcm"), study / "ct.dcm")
    with Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}") as registry:
        result = burn(
            BurnRequest(
                sources=(str(study),),
                out=tmp_path / "auto.iso",
                operator="t",
                password=PASSWORD,
                iterations=1000,
            ),
            registry=registry,
            audit=FileSink(tmp_path / "audit.log"),
        )
        assert result.profile is Profile.DVD_JPEG
        assert any("do not fit a CD" in note for note in result.notes)
        with pytest.raises(InputError, match="do not fit STD-GEN-SEC-CD"):
            burn(
                BurnRequest(
                    sources=(str(study),),
                    out=tmp_path / "cd.iso",
                    operator="t",
                    password=PASSWORD,
                    iterations=1000,
                    profile=Profile.CD,
                ),
                registry=registry,
                audit=FileSink(tmp_path / "audit.log"),
            )
        assert not (tmp_path / "cd.iso").exists()
