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
    [
        (cms.DigestAlgorithm.SHA224, False),
        (cms.DigestAlgorithm.SHA256, True),
        (cms.DigestAlgorithm.SHA1, True),
    ],
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


def test_the_dvd_bridge_is_udf_1_02(tmp_path: Path, registry: Registry) -> None:
    # pycdlib's option is called "2.60"; what it writes must be what the documents say (UDF 1.02).
    from dcmseal.media.profiles import Profile

    request = BurnRequest(
        sources=(str(CT_SMALL),),
        out=tmp_path / "dvd.iso",
        operator="profile-tester",
        profile=Profile.DVD_JPEG,
        password=PASSWORD.encode(),
        iterations=FAST_ITERATIONS,
        viewer=False,
    )
    burn(request, registry=registry, audit=FileSink(tmp_path / "audit.log"))
    image = (tmp_path / "dvd.iso").read_bytes()
    sector = 2048
    recognition = {image[n * sector + 1 : n * sector + 6] for n in range(16, 32)}
    assert b"NSR02" in recognition
    assert b"NSR03" not in recognition
    # Every "*OSTA UDF Compliant" domain identifier (ECMA-167 1/7.4 EntityID: flags, 23-byte identifier,
    # 8-byte suffix) carries the UDF revision in the first two suffix bytes, little-endian.
    marker = b"*OSTA UDF Compliant"
    revisions = set()
    start = image.find(marker)
    while start != -1:
        revisions.add(int.from_bytes(image[start + 23 : start + 25], "little"))
        start = image.find(marker, start + 1)
    assert revisions == {0x0102}
