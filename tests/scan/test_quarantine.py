"""Quarantine: untouched bytes named by SHA-256, mode 0600, a JSON record, a marker that scans skip; idempotent."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

from dcmseal.scan import Finding, Verdict, is_quarantine_dir, quarantine_file, scan_paths
from tests.scan.corpus import PE_HEADER, part10


def test_quarantine_record(tmp_path: Path) -> None:
    src = tmp_path / "evil.dcm"
    src.write_bytes(part10(preamble=PE_HEADER))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    finding = Finding("preamble.pe", "PE", Verdict.MALICIOUS, 0)
    record = quarantine_file(
        src, tmp_path / "q", reason="refused", findings=[finding], source="medium/evil.dcm"
    )
    assert record.sha256 == digest
    assert record.quarantined_path == tmp_path / "q" / f"{digest}.bin"
    assert record.quarantined_path.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(record.quarantined_path.stat().st_mode) == 0o600
    document = json.loads((tmp_path / "q" / f"{digest}.json").read_text())
    assert document["reason"] == "refused"
    assert document["source"] == "medium/evil.dcm"
    assert document["findings"][0]["code"] == "preamble.pe"
    assert record.when.endswith("Z")
    assert is_quarantine_dir(tmp_path / "q")
    again = quarantine_file(src, tmp_path / "q", reason="another reason")
    assert again == record
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == sorted(
        [".dcmseal-quarantine", f"{digest}.bin", f"{digest}.json"]
    )


def test_scans_skip_quarantine_folders(tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    medium.mkdir()
    (medium / "IM1").write_bytes(part10())
    evil = tmp_path / "evil.dcm"
    evil.write_bytes(part10(preamble=PE_HEADER))
    quarantine_file(evil, medium / "quarantine", reason="test")
    report = scan_paths([medium])
    assert [f.path for f in report.files] == ["IM1"]
    assert report.verdict is Verdict.CLEAN
    alone = scan_paths([medium / "quarantine"])
    assert alone.files == ()
    assert alone.medium_findings[0].code == "medium.quarantine-skipped"
