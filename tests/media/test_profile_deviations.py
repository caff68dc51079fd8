"""What a burned medium claims about its profile: everything outside PS3.15 D.1 is said, never silent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.audit import FileSink
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, burn
from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD
from tests.pydicom_data import pydicom_file

CT_SMALL = pydicom_file("CT_small.dcm")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield reg
    reg.close()


@pytest.mark.parametrize(
    ("digest", "in_profile"),
    [(cms.DigestAlgorithm.SHA224, False), (cms.DigestAlgorithm.SHA256, True), (cms.DigestAlgorithm.SHA1, True)],
)
def test_a_digest_outside_d1_takes_the_medium_outside_its_profile(
    tmp_path: Path, registry: Registry, digest: cms.DigestAlgorithm, in_profile: bool
) -> None:
    request = BurnRequest(
        sources=(str(CT_SMALL),),
        out=tmp_path / "m",
        operator="profile-tester",
        output_format="dir",
        password=PASSWORD.encode(),
        iterations=FAST_ITERATIONS,
        digest=digest,
        viewer=False,
    )
    result = burn(request, registry=registry, audit=FileSink(tmp_path / "audit.log"))
    document = result.to_json()
    assert document["in_profile"] is in_profile
    assert result.in_profile is in_profile
    if not in_profile:
        (deviation,) = result.outside_profile
        assert "SHA224 digest is outside PS3.15 D.1" in deviation
