"""Every workflow that takes a password takes a ``str`` as well as bytes (issue 17 §1): a ``str`` is its NFC form's
UTF-8 octets (RFC 8018 §3), converted once where the request is made."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.audit import NullSink
from dcmseal.errors import DecryptionError, InputError
from dcmseal.intake import Keys
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, burn
from dcmseal.media.open import OpenRequest, OpenResult, OpenStatus, open_medium
from dcmseal.media.rekey import RekeyRequest, rekey
from dcmseal.part10 import seal_file
from dcmseal.scan import ScanRequest, scan
from tests.media.conftest import medium_files, write_series
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD, fast_kdf

NEW_PASSWORD = "Orchid-Glacier-tempest-Harbor-9"
#: Another writer's password, outside ISO-IR 6 (which dcmseal seals with, PS3.15 D.1): NFC ...
NFC_PASSWORD = "Ångström-Café-Ñandú-2024"
#: ... and the same text decomposed (NFD), as some keyboards and file systems give it.
NFD_PASSWORD = unicodedata.normalize("NFD", NFC_PASSWORD)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield reg
    reg.close()


def _open(medium: Path, out: Path, password: str | bytes) -> OpenResult:
    request = OpenRequest(medium=medium, out=out, operator="tester", passwords=(password,))
    return open_medium(request, audit=NullSink())


def _opened(result: OpenResult) -> list[str]:
    return sorted(f.path for f in result.files if f.status is OpenStatus.OPENED)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in medium_files(folder)}


def test_the_requests_keep_the_octets_of_a_str_password() -> None:
    assert NFC_PASSWORD != NFD_PASSWORD
    nfc = NFC_PASSWORD.encode("utf-8")
    assert Keys(passwords=(NFD_PASSWORD, b"raw")).passwords == (nfc, b"raw")
    assert ScanRequest(paths=(Path("x"),), operator="o", passwords=(NFD_PASSWORD,)).passwords == (nfc,)
    request = BurnRequest(sources=("x",), out=Path("m"), operator="o", password=PASSWORD)
    assert request.password == PASSWORD.encode()
    assert PASSWORD not in repr(request)
    rekeyed = RekeyRequest(
        medium=Path("m"), out=Path("n"), operator="o", passwords=(NFD_PASSWORD,), new_password=NEW_PASSWORD
    )
    assert (rekeyed.passwords, rekeyed.new_password) == ((nfc,), NEW_PASSWORD.encode())
    with pytest.raises(InputError, match="empty"):
        Keys(passwords=("",))
    with pytest.raises(TypeError, match="single password"):
        ScanRequest(paths=(Path("x"),), operator="o", passwords=PASSWORD)  # type: ignore[arg-type]


def test_a_str_password_and_its_utf8_bytes_burn_open_and_rekey_the_same_medium(
    tmp_path: Path, registry: Registry
) -> None:
    study = write_series(tmp_path / "study", 2)
    medium = tmp_path / "medium"
    burn(
        BurnRequest(
            sources=(str(study[0].parent),), out=medium, operator="tester", output_format="dir",
            password=PASSWORD, iterations=FAST_ITERATIONS, viewer=False,
        ),
        registry=registry,
        audit=NullSink(),
    )  # fmt: skip
    as_text = _open(medium, tmp_path / "text", PASSWORD)
    as_bytes = _open(medium, tmp_path / "bytes", PASSWORD.encode("utf-8"))
    assert len(_opened(as_text)) == 3  # the DICOMDIR and the two instances
    assert _opened(as_text) == _opened(as_bytes)
    assert _contents(tmp_path / "text") == _contents(tmp_path / "bytes")
    # rekey: the old password and the new one as str; the new medium opens with the new one's bytes only.
    rekeyed = tmp_path / "rekeyed"
    rekey(
        RekeyRequest(
            medium=medium, out=rekeyed, operator="tester", passwords=(PASSWORD,), new_password=NEW_PASSWORD,
            output_format="dir", iterations=FAST_ITERATIONS,
        ),
        registry=registry,
        audit=NullSink(),
    )  # fmt: skip
    assert _opened(_open(rekeyed, tmp_path / "new", NEW_PASSWORD.encode("utf-8"))) == _opened(as_text)
    with pytest.raises(DecryptionError):
        _open(rekeyed, tmp_path / "old", PASSWORD)


def test_a_non_nfc_str_opens_what_its_nfc_form_sealed(tmp_path: Path) -> None:
    plain = write_series(tmp_path / "plain", 1)[0]
    medium = tmp_path / "medium"
    medium.mkdir()
    recipient = cms.PasswordRecipient(password=NFC_PASSWORD.encode("utf-8"), kdf=fast_kdf())
    seal_file(plain, medium / "IM1", recipients=[recipient])
    assert _opened(_open(medium, tmp_path / "nfd", NFD_PASSWORD)) == ["IM1"]
    # The NFD octets themselves are another password: the normalisation is what opens it.
    with pytest.raises(DecryptionError):
        _open(medium, tmp_path / "raw", NFD_PASSWORD.encode("utf-8"))
    scanned = scan(
        ScanRequest(paths=(medium,), operator="tester", passwords=(NFD_PASSWORD,)), audit=NullSink()
    )
    assert [f.kind for f in scanned.report.files] == ["dicom"]  # opened, and scanned inside
    unopened = scan(ScanRequest(paths=(medium,), operator="tester"), audit=NullSink())
    assert [f.kind for f in unopened.report.files] == ["secure"]
