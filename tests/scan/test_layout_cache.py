"""LayoutCache: files of one layout share a walk, and still get exactly the verdict a full walk gives."""

from __future__ import annotations

from dcmseal.scan.layout import LayoutCache
from dcmseal.scan.scanner import scan_file, scan_source
from tests.pydicom_data import pydicom_file
from tests.scan.corpus import ELF_HEADER, element, part10, split_part10


def _scan(data: bytes, cache: LayoutCache | None) -> tuple[str, tuple[str, ...]]:
    report = scan_source(data, len(data), None, name="x", layouts=cache)
    return report.verdict.value, report.codes()


def test_same_layout_is_a_hit_and_values_are_still_checked() -> None:
    cache = LayoutCache()
    clean = part10(pixels=bytes(64), private=[(0x00, "OB", bytes(16))])
    for _ in range(3):  # seen, recorded, then served from the cache
        assert _scan(clean, cache) == ("clean", ())
    assert cache.hits == 1
    # Same layout, byte for byte the same headers, but an ELF header in the private value and in the pixels.
    private = element(0x0009, 0x1000, b"OB", bytes(16))
    assert clean.count(private) == 1
    hostile = clean.replace(private, element(0x0009, 0x1000, b"OB", ELF_HEADER[:16]))
    assert len(hostile) == len(clean)
    assert _scan(hostile, cache) == ("malicious", ("body.executable",))
    pixels = part10(pixels=ELF_HEADER[:64], private=[(0x00, "OB", bytes(16))])
    assert _scan(pixels, cache)[0] == "malicious"
    assert cache.hits == 3


def test_a_changed_header_means_a_full_walk() -> None:
    cache = LayoutCache()
    head, body = split_part10(part10(pixels=None))
    at = body.index(b"\x08\x00\x60\x00CS")  # (0008,0050) goes before Modality (0008,0060)
    in_order = head + body[:at] + element(0x0008, 0x0050, b"SH", b"ACC1") + body[at:]
    out_of_order = head + body + element(0x0008, 0x0050, b"SH", b"ACC1")
    assert len(in_order) == len(out_of_order)
    assert _scan(in_order, cache)[0] == "clean"
    assert _scan(out_of_order, cache) == ("suspicious", ("body.tag-order",))
    assert cache.hits == 0


def test_cached_and_full_walks_agree_on_pydicom_files() -> None:
    root = pydicom_file("CT_small.dcm").parent
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    cache = LayoutCache(capacity=1000)
    for path in files + files + files:
        assert scan_file(path, layouts=cache) == scan_file(path)
    assert cache.hits > 50
