"""docs/conformance.md says what the code does: its tables are the code's own, and its claims name real things."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dcmseal.audit import MediaType
from dcmseal.media.profiles import Profile, general_purpose_name
from dcmseal.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, UID_ROOT

REPO = Path(__file__).resolve().parents[1]
STATEMENT = REPO / "docs" / "conformance.md"


def test_the_generated_tables_agree_with_the_code() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "conformance_tables.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_fails_when_the_statement_says_something_else() -> None:
    import importlib

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        conformance_tables = importlib.import_module("conformance_tables")
    finally:
        sys.path.remove(str(REPO / "scripts"))
    text = STATEMENT.read_text(encoding="utf-8")
    assert conformance_tables.stale(text) == []
    altered = text.replace("| sha224 | sha256 |", "| none | sha256 |", 1)
    assert altered != text
    assert conformance_tables.stale(altered) == ["security"]
    assert "profiles" in conformance_tables.stale(
        text.replace("STD-GEN-SEC-USB-J2K (STD-GEN-USB-J2K)", "X", 1)
    )


def test_every_profile_and_the_implementation_identity_are_named() -> None:
    text = STATEMENT.read_text(encoding="utf-8")
    for profile in Profile:
        assert profile.value in text
        assert general_purpose_name(profile) in text
    for value in (UID_ROOT, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME):
        assert value in text
    for media_type in (MediaType.CD, MediaType.DVD, MediaType.USB_DISK_EMULATION, MediaType.EMAIL):
        assert media_type.value in text
