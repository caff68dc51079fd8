"""The quarantine folder: untouched bytes of files that could not be made safe, named by SHA-256, with a record of why.

Each file becomes ``<sha256>.bin`` (mode 0600, no original extension, so nothing opens or runs it by
name) and ``<sha256>.json`` (source, reason, findings, time). The folder carries a marker file
(:data:`MARKER`) so scans and imports of a tree skip it. Quarantining the same bytes twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dcmseal.errors import InputError
from dcmseal.fsutil import (
    CHUNK_SIZE_BYTES,
    atomic_write,
    make_state_directory,
    private_file_mode,
    sha256_file,
)
from dcmseal.reader.containers import QUARANTINE_MARKERS, is_quarantine_dir
from dcmseal.scan.report import Finding, Verdict

__all__ = ["MARKER", "QuarantineRecord", "is_quarantine_dir", "quarantine_file"]

#: The marker file of a quarantine folder.
MARKER = QUARANTINE_MARKERS[0]
_MARKER_TEXT = (
    json.dumps(
        {
            "schema": "dcmseal.quarantine/1",
            "note": "dcmseal quarantine: untouched copies of files that could not be made safe. "
            "Never open or run them; scans and imports skip this folder.",
        },
        indent=2,
    )
    + "\n"
)


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """One quarantined file: where its bytes are kept, their SHA-256, and why."""

    quarantined_path: Path
    sha256: str
    source: str
    reason: str
    findings: tuple[Finding, ...]
    when: str  # ISO 8601 UTC

    def to_json(self) -> dict[str, object]:
        return {
            "schema": "dcmseal.quarantine-record/1",
            "quarantined_path": str(self.quarantined_path),
            "sha256": self.sha256,
            "source": self.source,
            "reason": self.reason,
            "findings": [f.to_json() for f in self.findings],
            "when": self.when,
        }

    @classmethod
    def from_json(cls, document: dict[str, object]) -> QuarantineRecord:
        raw_findings = document.get("findings") or []
        assert isinstance(raw_findings, list)
        findings = tuple(
            Finding(str(f["code"]), str(f["message"]), Verdict(str(f["severity"])), f.get("offset"))
            for f in raw_findings
        )
        return cls(
            Path(str(document["quarantined_path"])),
            str(document["sha256"]),
            str(document["source"]),
            str(document["reason"]),
            findings,
            str(document["when"]),
        )


def _prepare(quarantine_dir: Path) -> None:
    make_state_directory(quarantine_dir)
    if not is_quarantine_dir(quarantine_dir):
        with atomic_write(quarantine_dir / MARKER, mode=private_file_mode(quarantine_dir)) as out:
            out.write(_MARKER_TEXT.encode())


def quarantine_file(
    src: Path,
    quarantine_dir: Path,
    *,
    reason: str,
    findings: Sequence[Finding] = (),
    source: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> QuarantineRecord:
    """Copy the untouched bytes of ``src`` into ``quarantine_dir`` with a JSON record of why.

    Idempotent: when these bytes are already quarantined, the existing record is returned unchanged.

    Raises
    ------
    InputError
        ``src`` cannot be read, or the quarantine folder cannot be written.
    """
    src, quarantine_dir = Path(src), Path(quarantine_dir)
    try:
        digest = sha256_file(src)
        _prepare(quarantine_dir)
        blob = quarantine_dir / f"{digest}.bin"
        record_path = quarantine_dir / f"{digest}.json"
        if record_path.is_file() and blob.is_file():
            existing = json.loads(record_path.read_text(encoding="utf-8"))
            return QuarantineRecord.from_json(existing)
        if not blob.is_file() or sha256_file(blob) != digest:
            copied = hashlib.sha256()
            with (
                open(src, "rb") as fp,
                atomic_write(blob, mode=private_file_mode(quarantine_dir), overwrite=True) as out,
            ):
                while block := fp.read(CHUNK_SIZE_BYTES):
                    copied.update(block)
                    out.write(block)
                if copied.hexdigest() != digest:
                    raise InputError("changed while being quarantined", path=src)
        record = QuarantineRecord(
            quarantined_path=blob,
            sha256=digest,
            source=source if source is not None else str(src),
            reason=reason,
            findings=tuple(findings),
            when=now().astimezone(UTC).isoformat().replace("+00:00", "Z"),
        )
        with atomic_write(record_path, mode=private_file_mode(quarantine_dir), overwrite=True) as out:
            out.write((json.dumps(record.to_json(), indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot quarantine: {exc.strerror or exc}", path=src) from exc
    if blob.stat().st_uid == os.getuid():  # another operator's blob in a shared folder stays as it is
        os.chmod(blob, private_file_mode(quarantine_dir))
    return record
