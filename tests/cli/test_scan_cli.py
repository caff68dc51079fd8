"""``dcmseal scan`` and ``dcmseal sanitize``: exit codes, JSON, tables, quarantine, the Security Alert audit event."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from dcmseal.audit import FileSink, validate_message
from dcmseal.errors import ExitCode
from dcmseal.scan import SanitizeRequest, sanitize
from tests.audit.schema import schema_errors
from tests.cli.conftest import Invoke, Subprocess
from tests.scan.corpus import PDF_JAVASCRIPT, PE_HEADER, encapsulated_pdf, part10, zip_bytes


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$XDG_DATA_HOME/dcmseal`` in tmp_path: where the audit log goes."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "dcmseal"


@pytest.fixture
def medium(tmp_path: Path) -> Path:
    root = tmp_path / "medium"
    (root / "SERIES").mkdir(parents=True)
    (root / "SERIES" / "IM1").write_bytes(part10())
    (root / "SERIES" / "IM2").write_bytes(part10(preamble=PE_HEADER))
    (root / "SERIES" / "IM3").write_bytes(part10() + zip_bytes())
    (root / "DOC1").write_bytes(encapsulated_pdf(PDF_JAVASCRIPT))
    (root / "AUTORUN.INF").write_bytes(b"[autorun]\r\nopen=setup.exe\r\n")
    return root


def test_scan_clean_file_exits_0(invoke: Invoke, tmp_path: Path, data_home: Path) -> None:
    clean = tmp_path / "clean.dcm"
    clean.write_bytes(part10())
    result = invoke("scan", clean)
    assert result.code == 0
    assert "1 files: 1 clean" in result.stderr_flat
    assert not (data_home / "audit.log").exists()


def test_scan_json_and_exit_4(invoke: Invoke, medium: Path, data_home: Path) -> None:
    result = invoke("scan", medium, "--json")
    assert result.code == int(ExitCode.FINDINGS)
    document = result.json()
    assert document["schema"] == "dcmseal.scan/1"
    assert document["verdict"] == "malicious"
    verdicts = {f["path"]: f["verdict"] for f in document["files"]}
    assert verdicts == {"AUTORUN.INF": "clean", "DOC1": "malicious", "SERIES/IM1": "clean",
                        "SERIES/IM2": "malicious", "SERIES/IM3": "malicious"}  # fmt: skip
    assert [f["code"] for f in document["medium_findings"]] == ["medium.autorun"]
    im2 = next(f for f in document["files"] if f["path"] == "SERIES/IM2")
    assert im2["findings"][0] == {
        "code": "preamble.pe",
        "message": im2["findings"][0]["message"],
        "severity": "malicious",
        "offset": 0,
    }
    # Something malicious: a Security Alert (PS3.15 A.5.3.11) in the audit log.
    log = (data_home / "audit.log").read_text()
    assert 'csd-code="110113"' in log  # EventID Security Alert
    details = re.findall(r'value="([A-Za-z0-9+/=]+)"', log)
    assert any(b"DOC1" in base64.b64decode(d) for d in details)


def test_scan_table_lists_only_findings(invoke: Invoke, medium: Path, data_home: Path) -> None:
    result = invoke("scan", medium)
    assert result.code == 4
    assert "SERIES/IM2" in result.stdout
    assert "preamble.pe" in result.stdout
    assert "SERIES/IM1" not in result.stdout
    assert "medium: medium.autorun" in result.stdout
    assert "5 files: 2 clean, 0 suspicious, 3 malicious -> malicious" in result.stderr_flat


def test_no_allow_tiff(invoke: Invoke, data_home: Path) -> None:
    ct = get_testdata_file("CT_small.dcm")
    assert invoke("scan", ct).code == 0
    strict = invoke("scan", ct, "--no-allow-tiff", "--json")
    assert strict.code == 4
    assert strict.json()["files"][0]["findings"][0]["code"] == "preamble.tiff"


def test_password_on_argv_refused(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("scan", tmp_path, "--password", "secret")
    assert result.code == int(ExitCode.USAGE)


def test_missing_input(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("scan", tmp_path / "absent")
    assert result.code == 1
    assert "no such file or folder" in result.stderr_flat


def test_sanitize_mirrors_and_quarantines(invoke: Invoke, tmp_path: Path, medium: Path) -> None:
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in medium.rglob("*") if p.is_file()}
    out, quarantine = tmp_path / "safe", tmp_path / "quarantine"
    result = invoke("sanitize", medium, "--out", out, "--quarantine", quarantine, "--json")
    assert result.code == 4  # some files could not be made safe
    document = result.json()
    assert document["schema"] == "dcmseal.sanitize/1"
    status = {Path(f["source"]).relative_to(medium).as_posix(): f["status"] for f in document["files"]}
    assert status == {"AUTORUN.INF": "refused", "DOC1": "refused", "SERIES/IM1": "copied",
                      "SERIES/IM2": "sanitized", "SERIES/IM3": "sanitized"}  # fmt: skip
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "SERIES/IM1", "SERIES/IM2", "SERIES/IM3"
    ]  # fmt: skip
    assert document["summary"]["quarantined"] == 2
    records = sorted(quarantine.glob("*.json"))
    assert len(records) == 2
    assert {json.loads(r.read_text())["source"] for r in records} == {"AUTORUN.INF", "DOC1"}
    # Originals untouched; the safe copies rescan clean.
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in medium.rglob("*") if p.is_file()}
    rescan = invoke("scan", out, "--json")
    assert rescan.code == 0, rescan.stdout
    # The quarantine is never scanned as part of a tree.
    (out / "q").mkdir()
    (out / "q" / ".dcmseal-quarantine").write_text("{}")
    (out / "q" / "x.bin").write_bytes(part10(preamble=PE_HEADER))
    assert invoke("scan", out).code == 0


def test_sanitize_audits_as_the_library_does(
    invoke: Invoke, tmp_path: Path, medium: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DCMSEAL_OPERATOR", "cli-user")
    result = invoke("sanitize", medium, "--out", tmp_path / "safe", "--json")
    assert result.code == 4
    lines = (data_home / "audit.log").read_bytes().splitlines()
    for line in lines:
        assert schema_errors(line) == []
        assert validate_message(line) == []
        assert b'UserID="cli-user"' in line
    # DICOM Instances Accessed (PS3.15 A.5.3.2): IM2 and IM3 updated, IM1 read; a Security Alert for the rest.
    events = [re.search(rb'EventActionCode="(.)".*?EventID csd-code="(\d+)"', line) for line in lines]
    assert [(m[2], m[1]) for m in events if m] == [(b"110103", b"U"), (b"110103", b"R"), (b"110113", b"E")]
    library = tmp_path / "library.log"
    sanitize(
        SanitizeRequest(paths=(medium,), out=tmp_path / "again", operator="cli-user"), audit=FileSink(library)
    )
    assert len(library.read_bytes().splitlines()) == len(lines)


def test_sanitize_table_reports_every_change(invoke: Invoke, tmp_path: Path) -> None:
    src = tmp_path / "in.dcm"
    src.write_bytes(part10(preamble=PE_HEADER) + zip_bytes())
    result = invoke("sanitize", src, "--out", tmp_path / "out")
    assert result.code == 0
    assert "preamble zeroed (PE executable header)" in result.stdout
    assert "bytes after the end of the data set" in result.stdout
    assert "1 safe file(s)" in result.stderr_flat


def test_console_script_scan(dcmseal: Subprocess, tmp_path: Path) -> None:
    evil = tmp_path / "evil.dcm"
    evil.write_bytes(part10(preamble=PE_HEADER))
    run = dcmseal("scan", evil, "--json", env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert run.code == 4
    assert run.json()["verdict"] == "malicious"


@pytest.mark.parametrize("content", ["empty", "not-dicom", "zip-of-text"])
def test_scan_and_open_agree_on_a_medium_without_dicom(
    invoke: Invoke, tmp_path: Path, data_home: Path, content: str
) -> None:
    """What open refuses (no DICOM file to open), scan reports as a finding with a non-zero exit."""
    medium = tmp_path / "medium"
    medium.mkdir()
    if content == "not-dicom":
        (medium / "README.TXT").write_text("a report, no images\n")
    elif content == "zip-of-text":
        (medium / "portal.zip").write_bytes(zip_bytes({"report.txt": b"no images"}))
    target = medium / "portal.zip" if content == "zip-of-text" else medium
    scanned = invoke("scan", target, "--json")
    assert scanned.code == int(ExitCode.FINDINGS)
    assert [f["code"] for f in scanned.json()["medium_findings"]] == ["medium.no-dicom"]
    opened = invoke("open", target, "--out", tmp_path / "out")
    assert opened.code == int(ExitCode.INPUT)
    assert "no DICOM file on this medium" in opened.stderr_flat or "not a medium" in opened.stderr_flat
    assert not (tmp_path / "out").exists()
