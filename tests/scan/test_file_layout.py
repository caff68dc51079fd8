"""LayoutCache's whole-file structures: a series is checked with a few slices, with exactly a full scan's verdict."""

from __future__ import annotations

from dcmseal.scan.layout import LayoutCache
from dcmseal.scan.report import FileReport
from dcmseal.scan.scanner import scan_file, scan_source
from tests.pydicom_data import pydicom_file
from tests.scan.corpus import ELF_HEADER, element, part10, zip_bytes

_PIXELS = 1024


def _scan(data: bytes, cache: LayoutCache | None) -> FileReport:
    return scan_source(data, len(data), None, name="x", layouts=cache)


def _series(count: int) -> tuple[bytes, list[bytes]]:
    """One file and ``count`` others of its layout: other UIDs and Patient IDs of the same lengths."""
    base = part10(pixels=bytes(_PIXELS), private=[(0x00, "OB", bytes(16))])
    uid = _scan(base, None).sop_instance_uid
    assert uid is not None
    assert base.count(uid.encode()) == 2
    others = []
    for index in range(count):
        other_uid = uid[:-4] + f"{index:04d}"
        other = base.replace(uid.encode(), other_uid.encode()).replace(
            b"SCAN-0001", f"SCAN-{index:04d}".encode()
        )
        assert len(other) == len(base)
        others.append(other)
    return base, others


def test_a_series_is_served_whole_and_agrees_with_a_full_scan() -> None:
    cache = LayoutCache()
    base, others = _series(12)
    for data in [base, *others]:
        assert _scan(data, cache) == _scan(data, None)
    # seen, layout recorded, layout hit (structure kept), then every further file from the structure
    assert cache.file_hits == len(others) + 1 - 3


def test_payloads_planted_in_a_known_structure_are_found() -> None:
    cache = LayoutCache()
    base, others = _series(6)
    for data in [base, *others]:
        _scan(data, cache)
    served = cache.file_hits
    private = element(0x0009, 0x1000, b"OB", bytes(16))
    assert base.count(private) == 1
    hostile_private = base.replace(private, element(0x0009, 0x1000, b"OB", ELF_HEADER[:16]))
    archive = zip_bytes()
    assert len(archive) < _PIXELS
    pixel_header = element(0x7FE0, 0x0010, b"OB", b"")[:8]  # tag + VR + reserved (the writer chose OB or OW)
    at = base.rindex(b"\xe0\x7f\x10\x00")
    assert base[at : at + 4] == pixel_header[:4]
    value_at = at + 12
    hostile_pixels = base[:value_at] + ELF_HEADER[:64] + base[value_at + 64 :]
    hostile_zip = base[:value_at] + archive + base[value_at + len(archive) :]
    for hostile, code in (
        (hostile_private, "body.executable"),
        (hostile_pixels, "body.executable"),
        (hostile_zip, "body.zip-eocd"),
    ):
        assert len(hostile) == len(base)
        report = _scan(hostile, cache)
        assert report == _scan(hostile, None)
        assert report.verdict.value == "malicious"
        assert code in report.codes()
    assert cache.file_hits == served + 3  # all three were served from the structure, values re-checked


def test_a_changed_header_is_walked_in_full() -> None:
    cache = LayoutCache()
    base, others = _series(5)
    for data in [base, *others]:
        _scan(data, cache)
    served = cache.file_hits
    patient_id = element(0x0010, 0x0020, b"LO", b"SCAN-0001 ")
    assert base.count(patient_id) == 1
    # Same size, same values, but (0010,0020) now says it is (0010,0010): tags out of order.
    renamed = base.replace(patient_id, element(0x0010, 0x0010, b"LO", b"SCAN-0001 "))
    assert len(renamed) == len(base)
    report = _scan(renamed, cache)
    assert report == _scan(renamed, None)
    assert "body.tag-order" in report.codes()
    assert cache.file_hits == served
    # A non-zero preamble is part of the structure too.
    preamble = b"MZ" + base[2:]
    assert _scan(preamble, cache) == _scan(preamble, None)
    assert _scan(preamble, None).verdict.value != "clean"
    assert cache.file_hits == served


def test_whole_file_structures_agree_with_full_scans_on_pydicom_files() -> None:
    root = pydicom_file("CT_small.dcm").parent
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    cache = LayoutCache(capacity=1000)
    for path in files * 5:
        assert scan_file(path, layouts=cache) == scan_file(path)
    # Passes 4 and 5 serve every file of a clean, cacheable structure whole (two dozen of them).
    assert cache.file_hits > 40
