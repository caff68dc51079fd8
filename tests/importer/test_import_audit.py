"""An import that cannot read its medium is audited: a failed Import, and a Security Alert when the medium is
refused for its structure (PS3.15 A.5.3.5, A.5.3.11). Nothing reaches the archive, which is never contacted."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest

from dcmseal.audit import FileSink, validate_message
from dcmseal.errors import DecryptionError, HostileMediumError
from dcmseal.importer import parse_target
from dcmseal.importer.pipeline import import_medium
from tests.audit.schema import schema_errors
from tests.importer.conftest import import_request
from tests.media.conftest import encrypted_medium
from tests.pydicom_data import pydicom_file

# Nothing listens there: the import must fail before it would send anything.
NOWHERE = parse_target("dicom://PACS@127.0.0.1:9")


def _messages(log: Path) -> list[bytes]:
    lines = log.read_bytes().splitlines()
    for line in lines:
        assert schema_errors(line) == []
        assert validate_message(line) == []
    return lines


def test_a_medium_no_key_opens_is_a_failed_import(tmp_path: Path) -> None:
    medium = encrypted_medium(tmp_path, [pydicom_file("CT_small.dcm")])
    request = dataclasses.replace(
        import_request(tmp_path, medium, NOWHERE), passwords=(b"Quartz-meadow-Falcon-ribbon-tundra",)
    )
    log = tmp_path / "import-audit.log"
    with pytest.raises(DecryptionError):
        import_medium(request, audit=FileSink(log))
    (imported,) = _messages(log)
    assert b'csd-code="110107"' in imported
    assert b'EventOutcomeIndicator="8"' in imported
    assert b'csd-code="110033"' not in imported  # an image without UDF (CD profile) is a CD
    assert b'csd-code="110032"' in imported


def test_a_hostile_medium_is_a_failed_import_and_a_security_alert(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.writestr("../../ESCAPE", b"not for this machine")
    log = tmp_path / "import-audit.log"
    with pytest.raises(HostileMediumError):
        import_medium(import_request(tmp_path, hostile, NOWHERE), audit=FileSink(log))
    imported, alert = _messages(log)
    assert b'EventOutcomeIndicator="8"' in imported
    assert b'csd-code="MEDIUM-REJECTED"' in alert
