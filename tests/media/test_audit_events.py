"""What burn and open tell the audit trail: the medium as the disc names itself, patients as the data names them
(never a Patient ID dcmseal invented for the DICOMDIR), and the failures (PS3.15 A.5.3.4, A.5.3.5, A.5.3.11)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.audit import FileSink, validate_message
from dcmseal.errors import DecryptionError, HostileMediumError, InputError
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, BurnResult, burn
from dcmseal.media.open import OpenRequest, OpenResult, open_medium
from dcmseal.media.profiles import Profile
from dcmseal.reader.iso import iso_volume
from tests.audit.schema import schema_errors
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield reg
    reg.close()


def _burn(
    sources: list[Path],
    out: Path,
    registry: Registry,
    log: Path,
    *,
    output_format: str = "iso",
    **extra: object,
) -> BurnResult:
    request = BurnRequest(
        sources=tuple(map(str, sources)),
        out=out,
        operator="audit-tester",
        output_format=output_format,
        password=PASSWORD.encode(),
        iterations=FAST_ITERATIONS,
        viewer=False,
        **extra,  # type: ignore[arg-type]
    )
    return burn(request, registry=registry, audit=FileSink(log))


def _open(medium: Path, out: Path, log: Path, password: str = PASSWORD) -> OpenResult:
    request = OpenRequest(medium=medium, out=out, operator="audit-tester", passwords=(password.encode(),))
    return open_medium(request, audit=FileSink(log))


def _messages(log: Path) -> list[bytes]:
    lines = log.read_bytes().splitlines()
    for line in lines:
        assert schema_errors(line) == []
        assert validate_message(line) == []
    return lines


def _patient_ids(message: bytes) -> list[bytes]:
    return re.findall(rb'ParticipantObjectID="([^"]*)" ParticipantObjectTypeCode="1"', message)


def _without_patient_id(tmp_path: Path) -> Path:
    ds = dcmread(CT_SMALL)
    del ds.PatientID
    out = tmp_path / "nopid.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


def test_an_invented_patient_id_is_shown_but_never_audited_as_a_patient(
    tmp_path: Path, registry: Registry
) -> None:
    log = tmp_path / "audit.log"
    result = _burn([_without_patient_id(tmp_path)], tmp_path / "m", registry, log, output_format="dir")

    invented = [n for n in result.notes if "PatientID is empty or missing" in n]
    assert len(invented) == 1
    assert "DCMSEAL_" in invented[0]
    (export,) = _messages(log)
    assert b"DCMSEAL_" not in export
    assert _patient_ids(export) == [b""]

    opened_log = tmp_path / "open.log"
    _open(tmp_path / "m", tmp_path / "o", opened_log)
    (imported,) = _messages(opened_log)
    assert b"DCMSEAL_" not in imported  # the DICOMDIR's PATIENT record holds it; the audit does not
    assert _patient_ids(imported) == [b""]


@pytest.mark.parametrize(
    ("profile", "code", "udf"), [(Profile.CD, b"110032", False), (Profile.DVD_JPEG, b"110033", True)]
)
def test_an_image_is_audited_by_its_volume_identifier_and_its_medium(
    tmp_path: Path, registry: Registry, profile: Profile, code: bytes, udf: bool
) -> None:
    image = tmp_path / "disc.iso"
    result = _burn([CT_SMALL], image, registry, tmp_path / "burn.log", profile=profile)

    # PS3.12 F.1.1: without a label the Volume Identifier is the File-set ID, both from the medium ID.
    assert result.fileset_id == result.medium_id.replace("-", "")
    assert iso_volume(image) == (result.fileset_id, udf)
    (export,) = _messages(tmp_path / "burn.log")
    assert code in export

    log = tmp_path / "open.log"
    _open(image, tmp_path / "o", log)
    (imported,) = _messages(log)
    assert code in imported
    assert f'UserID="{result.fileset_id}"'.encode() in imported
    assert b"disc.iso" not in imported
    assert _patient_ids(imported) == [dcmread(CT_SMALL).PatientID.encode()]


def test_a_label_is_both_the_file_set_id_and_the_volume_identifier(
    tmp_path: Path, registry: Registry
) -> None:
    image = tmp_path / "disc.iso"
    result = _burn([CT_SMALL], image, registry, tmp_path / "burn.log", label="Transfer 42")
    assert result.fileset_id == "TRANSFER_42"
    assert iso_volume(image) == ("TRANSFER_42", False)


def test_a_failed_burn_is_audited(tmp_path: Path, registry: Registry) -> None:
    log = tmp_path / "audit.log"
    with pytest.raises(InputError):
        _burn([tmp_path / "missing.dcm"], tmp_path / "disc.iso", registry, log)
    (export,) = _messages(log)
    assert b'csd-code="110106"' in export  # Export
    assert b'EventOutcomeIndicator="8"' in export
    assert not (tmp_path / "disc.iso").exists()


def test_a_medium_no_key_opens_is_a_failed_import(tmp_path: Path, registry: Registry) -> None:
    _burn([CT_SMALL], tmp_path / "disc.iso", registry, tmp_path / "burn.log")
    log = tmp_path / "open.log"
    with pytest.raises(DecryptionError):
        _open(tmp_path / "disc.iso", tmp_path / "o", log, password="Quartz-meadow-Falcon-ribbon-tundra")
    (imported,) = _messages(log)  # a wrong key is not a rejected medium: no Security Alert
    assert b'csd-code="110107"' in imported
    assert b'EventOutcomeIndicator="8"' in imported
    assert PASSWORD.encode() not in imported


def test_a_rejected_medium_raises_a_security_alert(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.writestr("../../ESCAPE", dcmread(CT_SMALL).PatientID)  # a name that leaves the medium's root
    log = tmp_path / "open.log"
    with pytest.raises(HostileMediumError):
        _open(hostile, tmp_path / "o", log)
    imported, alert = _messages(log)
    assert b'EventOutcomeIndicator="8"' in imported
    assert b'csd-code="110113"' in alert  # Security Alert
    assert b'csd-code="MEDIUM-REJECTED"' in alert
