"""Hostile envelopes on a medium, through ``open``, ``scan`` and ``import`` (issue 12 §6).

A medium burned by dcmseal, then tampered with as an attacker with no password could: one instance
downgraded (relabelled id-data, IV bit flipped, ciphertext changed), one with a flipped ciphertext bit,
and hostile files added beside them (a recipient flood, the costliest envelope the limits allow, a
truncated copy, an envelope with no digest inside). Each command must report each bad file on one line,
exit non-zero, and still deliver every good instance; the PBKDF2 work stays one derivation for the medium
(plus one for the unprotected file's own salt).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal import cms
from dcmseal.cms.algorithms import OID_DATA
from dcmseal.config import DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import WRONG_KEY_MESSAGE
from tests.cli.conftest import Invoke
from tests.cli.runner import run_dcmseal
from tests.hostile.envelopes import (
    layout,
    readdressed,
    recipient_parts,
    seal,
    set_content_type,
    with_iterations,
)
from tests.importer.conftest import StoreScp, import_argv
from tests.media.conftest import encrypted_medium, write_series

GOOD = 3  # instances left untouched


def _recipient_flood(like: bytes, count: int, *, iterations: int | None = None) -> bytes:
    """``like`` with its one password recipient repeated ``count`` times (each with its own salt and
    ``iterations`` when given)."""
    (one,), *_ = recipient_parts(like)
    if iterations is None:
        return readdressed([one] * count, like)
    return readdressed([with_iterations(one, iterations, os.urandom(16)) for _ in range(count)], like)


@pytest.fixture
def hostile_medium(tmp_path: Path) -> tuple[Path, set[str], set[str]]:
    """(the medium folder, the relative paths of its good instances, those of its hostile files)."""
    sources = write_series(tmp_path / "study", GOOD + 2, pixel_bytes=512)
    medium = encrypted_medium(tmp_path, [tmp_path / "study"], output_format="dir")
    instances = sorted(p for p in medium.rglob("IM*") if p.is_file())
    assert len(instances) == len(sources)
    downgraded, flipped = instances[GOOD:]
    data = downgraded.read_bytes()
    where = layout(data)
    forged = bytearray(set_content_type(data, OID_DATA))
    forged[where.iv_at] ^= 0x01
    forged[where.content_at + where.content_length // 2] ^= 0x20
    downgraded.write_bytes(bytes(forged))
    changed = bytearray(flipped.read_bytes())
    changed[where.content_at + where.content_length // 3] ^= 0x01
    flipped.write_bytes(bytes(changed))
    folder = instances[0].parent
    good_bytes = instances[0].read_bytes()
    (folder / "FLOOD").write_bytes(_recipient_flood(good_bytes, 1000))
    (folder / "WORST").write_bytes(_recipient_flood(good_bytes, 64, iterations=DEFAULT_MAX_PBKDF2_ITERATIONS))
    (folder / "TRUNC").write_bytes(good_bytes[: len(good_bytes) - 40])
    (extra,) = write_series(
        tmp_path / "extra", 1, pixel_bytes=512
    )  # an instance of its own, sealed openssl-style
    (folder / "RAW").write_bytes(seal(extra.read_bytes(), cms.RawContent()))
    hostile = [downgraded, flipped, *(folder / n for n in ("FLOOD", "WORST", "TRUNC", "RAW"))]

    def relative(path: Path) -> str:
        return path.relative_to(medium).as_posix()

    return medium, {relative(p) for p in instances[:GOOD]}, {relative(p) for p in hostile}


def test_open_reports_each_hostile_file_and_opens_the_rest(
    invoke: Invoke, password_file: Path, tmp_path: Path, hostile_medium: tuple[Path, set[str], set[str]]
) -> None:
    medium, good, hostile = hostile_medium
    result = invoke("open", medium, "--out", tmp_path / "opened", "--password-file", password_file, "--json")
    assert result.code == 1
    document = result.json()
    files = {f["path"]: f for f in document["files"]}
    assert {p for p, f in files.items() if f["status"] == "failed"} == hostile
    for path in good:
        assert files[path]["status"] == "opened"
        assert files[path]["integrity"] == "verified"
    reasons = {p: files[p]["reason"] for p in hostile}
    assert all("\n" not in r for r in reasons.values())
    tampered = [p for p in hostile if "/IM" in f"/{p.rsplit('/', 1)[-1]}"]
    assert len(tampered) == 2
    assert any(reasons[p].endswith(WRONG_KEY_MESSAGE) for p in tampered)  # the flipped bit
    assert any("no digest or signature" in reasons[p] for p in tampered)  # the downgrade
    assert "more than 64 recipients" in next(r for p, r in reasons.items() if p.endswith("FLOOD"))
    assert "per file" in next(r for p, r in reasons.items() if p.endswith("WORST"))
    assert "no digest or signature" in next(r for p, r in reasons.items() if p.endswith("RAW"))
    assert document["kdf_derivations"] <= 2  # the medium's key, and RAW's own salt; the rest cost none
    opened = sorted(p for p in (tmp_path / "opened").rglob("*") if p.is_file() and p.name.startswith("IM"))
    assert len(opened) == GOOD
    assert all(dcmread(p).SOPInstanceUID for p in opened)


def test_scan_reports_each_hostile_file_and_scans_the_rest(
    invoke: Invoke, password_file: Path, hostile_medium: tuple[Path, set[str], set[str]]
) -> None:
    medium, good, hostile = hostile_medium
    result = invoke("scan", medium, "--password-file", password_file, "--json", "--all")
    assert result.code == 4
    files = {f["path"]: f for f in result.json()["files"]}
    for path in good:
        assert files[path]["findings"][0]["code"] == "secure.opened"
    for path in hostile:
        codes = [f["code"] for f in files[path]["findings"]]
        assert "secure.opened" not in codes, path
        assert codes[0] in ("secure.not-opened", "secure.unprotected", "secure.malformed", "secure.limit"), (
            path,
            codes,
        )
        if path.endswith(("FLOOD", "WORST")):
            assert codes == ["secure.limit"]
        assert files[path]["verdict"] == "suspicious", (path, codes)  # never clean, never verified
        assert all("\n" not in f["message"] for f in files[path]["findings"])
    hostile_messages = " ".join(f["message"] for p in hostile for f in files[p]["findings"])
    assert "opened and verified;" not in hostile_messages  # the success finding's words
    flipped = [p for p in hostile if files[p]["findings"][0]["code"] == "secure.not-opened"]
    assert len(flipped) == 1  # it alone fails with the key that opens the medium: marked, not clean
    assert [f["code"] for f in files[flipped[0]]["findings"]] == ["secure.not-opened", "secure.key-mismatch"]


@pytest.mark.interop
def test_import_stores_the_good_instances_and_fails_each_hostile_file(
    tmp_path: Path,
    password_file: Path,
    hostile_medium: tuple[Path, set[str], set[str]],
    storescp: StoreScp,
) -> None:
    medium, good, hostile = hostile_medium
    argv = import_argv(medium, str(storescp.target), tmp_path, "--password-file", str(password_file))
    result = run_dcmseal(*argv[1:], home=tmp_path / "config-home")
    assert result.code == 1, result.stderr
    files = {f["path"]: f for f in result.json()["files"]}
    for path in hostile:
        assert files[path]["status"] == "failed", (path, files[path])
        assert "\n" not in files[path]["reason"]
    for path in good:
        assert files[path]["status"] == "stored", (path, files[path])
        assert files[path]["integrity"] == "verified"
    assert len(storescp.received()) == GOOD


def test_open_with_accept_unprotected_says_not_verified(
    invoke: Invoke, password_file: Path, tmp_path: Path, hostile_medium: tuple[Path, set[str], set[str]]
) -> None:
    medium, good, _hostile = hostile_medium
    result = invoke(
        "open",
        medium,
        "--out",
        tmp_path / "opened",
        "--password-file",
        password_file,
        "--accept-unprotected",
        "--json",
    )
    files = {f["path"]: f for f in result.json()["files"]}
    (raw,) = [p for p in files if p.endswith("RAW")]
    assert files[raw]["status"] == "opened", files[raw]
    assert files[raw]["integrity"] == "not-verified"
    assert all(files[p]["integrity"] == "verified" for p in good)
    assert any("integrity NOT verified" in note for note in result.json()["notes"])


def test_rekey_verifies_before_it_readdresses(
    tmp_path: Path, hostile_medium: tuple[Path, set[str], set[str]]
) -> None:
    """rekey copies ciphertext under new keys: an altered or unprotected file must not pass through it."""
    from dcmseal.audit import FileSink
    from dcmseal.errors import DcmsealError, UnprotectedContentError
    from dcmseal.keys.registry import Registry
    from dcmseal.media.rekey import RekeyRequest, rekey
    from tests.part10.dicomfiles import PASSWORD

    medium, _good, hostile = hostile_medium
    registry = Registry.open(f"sqlite:///{tmp_path / 'rekey-registry.sqlite3'}")

    def run(source: Path, out: Path, *, accept_unprotected: bool = False) -> list[str]:
        request = RekeyRequest(
            medium=source,
            out=out,
            operator="hostile-tester",
            passwords=(PASSWORD.encode(),),
            new_password=b"Rekeyed-granite-Otter-lamp-95",
            iterations=4,
            accept_unprotected=accept_unprotected,
        )
        return list(rekey(request, registry=registry, audit=FileSink(tmp_path / "rekey.log")).notes)

    try:
        with pytest.raises(DcmsealError) as info:
            run(medium, tmp_path / "rekeyed")
        assert any(str(info.value).startswith(f"{medium / p}: ") for p in hostile)
        assert "\n" not in str(info.value)
        assert not (tmp_path / "rekeyed").exists()
        # Only the unprotected file left: refused by default, re-addressed and named when accepted.
        for path in hostile:
            if not path.endswith("RAW"):
                (medium / path).unlink()
        with pytest.raises(UnprotectedContentError):
            run(medium, tmp_path / "rekeyed")
        notes = run(medium, tmp_path / "rekeyed", accept_unprotected=True)
        assert any(
            n.endswith("RAW: integrity NOT verified (no digest or signature inside); re-addressed as it is")
            for n in notes
        )
    finally:
        registry.close()
