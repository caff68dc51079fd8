"""Tests of the streaming BER/DER reader and the DER length writer (X.690 §8.1) on hand-made encodings."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcmseal.cms.der import EOC, DerReader, Header, encode_header, encode_length
from dcmseal.errors import MalformedEnvelopeError


class _Trickle:
    """A source that gives at most `step` bytes per read, like a pipe or a slow medium."""

    def __init__(self, data: bytes, step: int = 1) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def read(self, n: int = -1, /) -> bytes:
        if n < 0:
            n = len(self._data)
        chunk = self._data[self._pos : self._pos + min(n, self._step)]
        self._pos += len(chunk)
        return chunk


def _reader(data: bytes, *, size: int | None = None, trickle: bool = False) -> DerReader:
    source = _Trickle(data) if trickle else io.BytesIO(data)
    return DerReader(source, size=size)


def _octets(reader: DerReader, *, chunk_size: int) -> list[bytes]:
    header = reader.read_header("test string")
    return list(reader.iter_octets(header, "test string", chunk_size=chunk_size))


# -- encode_length / encode_header -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8180"),
        (255, "81ff"),
        (256, "820100"),
        (65535, "82ffff"),
        (65536, "83010000"),
        (2**32, "850100000000"),
    ],
)
def test_encode_length_is_the_shortest_definite_form(length: int, expected: str) -> None:
    assert encode_length(length).hex() == expected


def test_encode_length_refuses_a_negative_length() -> None:
    with pytest.raises(ValueError, match="negative"):
        encode_length(-1)


def test_encode_header_prefixes_the_tag() -> None:
    assert encode_header(0x30, 300).hex() == "3082012c"
    assert encode_header(0x80, 5).hex() == "8005"


@given(tag=st.sampled_from([0x02, 0x04, 0x06, 0x30, 0x31, 0x80, 0xA0, 0xA3]), length=st.integers(0, 2**40))
def test_encode_header_reads_back(tag: int, length: int) -> None:
    encoded = encode_header(tag, length)
    header = _reader(encoded).read_header("round trip")
    assert header == Header(0, tag, tag & 0x1F, length, len(encoded))


# -- headers --------------------------------------------------------------------------------------------------


def test_definite_header_fields() -> None:
    reader = _reader(bytes.fromhex("0000") + bytes.fromhex("3082010a") + bytes(266), trickle=True)
    reader.read_exact(2, "padding")
    header = reader.read_header("SEQUENCE")
    assert header == Header(offset=2, tag=0x30, tag_number=0x10, length=266, header_length=4)
    assert header.constructed
    assert header.content_offset == 6
    assert header.end == 272
    assert reader.offset == 6


def test_indefinite_length_on_a_constructed_element() -> None:
    data = bytes.fromhex("3080 020105 0500 0000")
    reader = _reader(data)
    outer = reader.read_header("SEQUENCE")
    assert outer.length is None
    assert outer.end is None
    assert not reader.at_end_of(outer)
    assert reader.read_value(reader.read_header("INTEGER"), "INTEGER", limit=4) == b"\x05"
    assert reader.read_value(reader.read_header("NULL"), "NULL", limit=4) == b""
    assert reader.at_end_of(outer)
    reader.close(outer, "SEQUENCE")
    assert reader.offset == len(data)
    assert reader.at_eof()


def test_indefinite_length_on_a_primitive_is_refused() -> None:
    with pytest.raises(MalformedEnvelopeError, match=r"offset 0: indefinite length on a primitive"):
        _reader(bytes.fromhex("0480 0101 0000")).read_header("OCTET STRING")


def test_indefinite_length_where_a_value_is_read_is_refused() -> None:
    reader = _reader(bytes.fromhex("3080 0000"))
    header = reader.read_header("SEQUENCE")
    with pytest.raises(MalformedEnvelopeError, match="unexpected indefinite length"):
        reader.read_value(header, "SEQUENCE", limit=10)


def test_value_above_its_limit_is_refused() -> None:
    reader = _reader(bytes.fromhex("0405") + b"abcde")
    header = reader.read_header("OCTET STRING")
    with pytest.raises(MalformedEnvelopeError, match="5 bytes exceed the limit of 4"):
        reader.read_value(header, "OCTET STRING", limit=4)


def test_more_than_eight_length_octets_is_refused() -> None:
    with pytest.raises(MalformedEnvelopeError, match="length of 9 octets"):
        _reader(bytes.fromhex("0489") + bytes(9)).read_header("OCTET STRING")


def test_long_form_non_minimal_length_is_accepted_and_kept() -> None:
    """BER allows a long form where a short one would do (X.690 §8.1.3.5 note); read_element keeps it."""
    data = bytes.fromhex("048103") + b"abc"
    reader = _reader(data)
    assert reader.read_element("OCTET STRING", limit=16) == data
    header = _reader(data).read_header("OCTET STRING")
    assert (header.length, header.header_length) == (3, 3)


def test_high_tag_number_form() -> None:
    """X.690 §8.1.2.4: 0x1F in the first octet, then base-128 digits (high bit = more follow)."""
    data = bytes.fromhex("bf8201 03") + b"abc"
    header = _reader(data).read_header("[257]")
    assert header == Header(offset=0, tag=0xBF, tag_number=257, length=3, header_length=4)
    assert header.constructed
    assert _reader(data).read_element("[257]", limit=16) == data


def test_high_tag_number_of_one_octet() -> None:
    data = bytes.fromhex("9f20 02") + b"hi"
    header = _reader(data).read_header("[32]")
    assert (header.tag_number, header.header_length, header.length) == (32, 3, 2)
    assert _reader(data).read_element("[32]", limit=16) == data


def test_high_tag_number_of_too_many_octets_is_refused() -> None:
    data = bytes.fromhex("1f" + "81" * 5 + "01 00")
    with pytest.raises(MalformedEnvelopeError, match="offset 0: tag number too long"):
        _reader(data).read_header("tag")


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("1f05 03")
        + b"abc",  # tag 5 in the high form (X.690 §8.1.2.2: numbers 0..30 use one octet)
        bytes.fromhex("9f8025 01") + b"x",  # leading 0x80 digit (X.690 §8.1.2.4.2 c)
    ],
    ids=["low-number-in-high-form", "leading-zero-digit"],
)
def test_read_element_never_changes_the_tag_octets(data: bytes) -> None:
    """read_element hands the element on to asn1crypto "as read"; it may refuse a bad tag, never rewrite it."""
    try:
        element = _reader(data).read_element("element", limit=64)
    except MalformedEnvelopeError:
        return
    assert element == data


# -- sizes, truncation, offsets -------------------------------------------------------------------------------


def test_length_beyond_size_names_the_offset() -> None:
    data = bytes.fromhex("3082 0100") + bytes(10)
    with pytest.raises(MalformedEnvelopeError) as excinfo:
        _reader(data, size=len(data)).read_header("ContentInfo")
    message = str(excinfo.value)
    assert message == "ContentInfo at offset 4 claims 256 bytes, but only 10 remain"


def test_nested_length_beyond_size_names_its_own_offset() -> None:
    data = bytes.fromhex("3008 0201 00 0408") + b"abc"
    reader = _reader(data, size=len(data))
    reader.read_header("outer")
    reader.read_element("version", limit=8)
    with pytest.raises(
        MalformedEnvelopeError, match=r"^OCTET STRING at offset 7 claims 8 bytes, but only 3 remain$"
    ):
        reader.read_header("OCTET STRING")


def test_size_is_checked_before_anything_is_read() -> None:
    """A hostile 2**60 length is refused from the header alone: nothing is allocated or read for it."""
    data = bytes.fromhex("0488 1000000000000000")

    class _NoMoreReads(io.BytesIO):
        def read(self, n: int | None = -1, /) -> bytes:
            if self.tell() >= len(data):
                raise AssertionError("read past the header")
            return super().read(n)

    reader = DerReader(_NoMoreReads(data), size=len(data))
    with pytest.raises(MalformedEnvelopeError, match=f"offset 10 claims {2**60} bytes"):
        reader.read_header("OCTET STRING")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x30", b"\x30\x82\x01", b"\x1f", b"\x1f\x81"],
    ids=["empty", "tag-only", "short-length", "high-tag-only", "high-tag-unfinished"],
)
def test_truncated_header(data: bytes) -> None:
    with pytest.raises(MalformedEnvelopeError, match="truncated envelope"):
        _reader(data).read_header("header")


def test_truncated_value_names_what_and_where() -> None:
    reader = _reader(bytes.fromhex("0405") + b"abc", trickle=True)
    header = reader.read_header("OCTET STRING")
    with pytest.raises(MalformedEnvelopeError) as excinfo:
        reader.read_value(header, "OCTET STRING", limit=16)
    assert str(excinfo.value) == "truncated envelope: OCTET STRING at offset 2 needs 5 bytes, only 3 left"


def test_truncated_indefinite_element_without_eoc() -> None:
    with pytest.raises(MalformedEnvelopeError, match="truncated envelope"):
        _reader(bytes.fromhex("3080 020100")).read_element("SEQUENCE", limit=64)


def test_read_element_above_its_limit() -> None:
    data = bytes.fromhex("3080 0403") + b"abc" + bytes.fromhex("0403") + b"def" + EOC
    assert _reader(data).read_element("SEQUENCE", limit=64) == data
    with pytest.raises(MalformedEnvelopeError, match="exceeds the size limit"):
        _reader(data).read_element("SEQUENCE", limit=8)


def test_close_checks_a_definite_end() -> None:
    reader = _reader(bytes.fromhex("3003 020100 05"))
    outer = reader.read_header("SEQUENCE")
    reader.read_exact(2, "part")
    with pytest.raises(MalformedEnvelopeError, match="content ends at offset 4, but its length says 5"):
        reader.close(outer, "SEQUENCE")


def test_close_wants_the_end_of_contents() -> None:
    reader = _reader(bytes.fromhex("3080 0500 0001"))
    outer = reader.read_header("SEQUENCE")
    reader.read_element("NULL", limit=4)
    with pytest.raises(MalformedEnvelopeError, match="offset 4: missing end-of-contents"):
        reader.close(outer, "SEQUENCE")


# -- read_element: BER passes through untouched ---------------------------------------------------------------


def test_read_element_passes_indefinite_ber_through() -> None:
    data = bytes.fromhex("3180 a380 020100 0000 3003 020101 0000")
    reader = _reader(data + b"tail", trickle=True)
    assert reader.read_element("SET", limit=64) == data
    assert reader.offset == len(data)
    rest = b""
    while chunk := reader.read_some(10):  # a short source may give fewer bytes per call
        rest += chunk
    assert rest == b"tail"
    assert reader.at_eof()


def test_nesting_depth_limit() -> None:
    def nested(depth: int) -> bytes:
        return b"\x30\x80" * depth + b"\x05\x00" + EOC * depth

    assert _reader(nested(32)).read_element("deep", limit=1024) == nested(32)
    with pytest.raises(MalformedEnvelopeError, match="nesting deeper than 32"):
        _reader(nested(33)).read_element("deep", limit=1024)
    with pytest.raises(MalformedEnvelopeError, match="nesting deeper than 32"):
        _reader(nested(10_000)).read_element("deep", limit=10**6)


# -- constructed OCTET STRINGs --------------------------------------------------------------------------------


def test_primitive_octets_in_chunks() -> None:
    reader = _reader(bytes.fromhex("0407") + b"abcdefg")
    assert _octets(reader, chunk_size=3) == [b"abc", b"def", b"g"]
    assert reader.at_eof()


def test_constructed_indefinite_segments() -> None:
    data = bytes.fromhex("2480 0403") + b"abc" + bytes.fromhex("0400 0402") + b"de" + EOC + b"next"
    reader = _reader(data)
    assert b"".join(_octets(reader, chunk_size=2)) == b"abcde"
    assert reader.read_some(4) == b"next"


def test_constructed_definite_segments() -> None:
    data = bytes.fromhex("2408 0402") + b"ab" + bytes.fromhex("0402") + b"cd"
    reader = _reader(data)
    assert _octets(reader, chunk_size=16) == [b"ab", b"cd"]
    assert reader.offset == len(data)


def test_nested_constructed_segments() -> None:
    """X.690 §8.7.3.2: a segment may itself be constructed."""
    data = (
        bytes.fromhex("2480 2480 0401")
        + b"a"
        + EOC
        + bytes.fromhex("2403 0401")
        + b"b"
        + bytes.fromhex("0401")
        + b"c"
        + EOC
    )
    assert b"".join(_octets(_reader(data, trickle=True), chunk_size=1)) == b"abc"


def test_context_tagged_constructed_string_like_encrypted_content() -> None:
    """encryptedContent [0] IMPLICIT, constructed (0xA0) with OCTET STRING segments, as openssl -stream writes."""
    segments = [b"\x11" * 4096, b"\x22" * 608, b"\x33" * 16]
    body = b"".join(encode_header(0x04, len(s)) + s for s in segments)
    data = b"\xa0\x80" + body + EOC
    reader = _reader(data, size=len(data))
    assert b"".join(_octets(reader, chunk_size=1000)) == b"".join(segments)
    assert reader.offset == len(data)


def test_segment_of_another_type_is_refused() -> None:
    data = bytes.fromhex("2480 0201 05 0000")
    with pytest.raises(MalformedEnvelopeError, match="offset 2: constructed string holds tag 0x02"):
        _octets(_reader(data), chunk_size=4)


def test_constructed_string_depth_limit() -> None:
    def nested(depth: int) -> bytes:
        return b"\x24\x80" * depth + b"\x04\x01a" + EOC * depth

    assert b"".join(_octets(_reader(nested(32)), chunk_size=4)) == b"a"
    with pytest.raises(MalformedEnvelopeError, match="nested deeper than 32"):
        _octets(_reader(nested(33)), chunk_size=4)


def test_truncated_segment() -> None:
    data = bytes.fromhex("2480 0405") + b"ab"
    with pytest.raises(MalformedEnvelopeError, match="truncated envelope"):
        _octets(_reader(data), chunk_size=4)


def test_definite_constructed_string_whose_segments_overrun_it() -> None:
    data = bytes.fromhex("2403 0402") + b"ab"
    with pytest.raises(MalformedEnvelopeError, match="content ends at offset 6, but its length says 5"):
        _octets(_reader(data), chunk_size=4)


@given(
    segments=st.lists(st.binary(max_size=40), max_size=8),
    chunk_size=st.integers(1, 64),
    indefinite=st.booleans(),
    trickle=st.booleans(),
)
def test_iter_octets_returns_the_concatenation(
    segments: list[bytes], chunk_size: int, indefinite: bool, trickle: bool
) -> None:
    body = b"".join(encode_header(0x04, len(s)) + s for s in segments)
    data = (b"\x24\x80" + body + EOC) if indefinite else (encode_header(0x24, len(body)) + body)
    reader = _reader(data + b"\x05\x00", trickle=trickle)
    chunks = _octets(reader, chunk_size=chunk_size)
    assert b"".join(chunks) == b"".join(segments)
    assert all(0 < len(c) <= chunk_size for c in chunks)
    assert reader.offset == len(data)
    assert reader.peek(2) == b"\x05\x00"


# -- raw reads -------------------------------------------------------------------------------------------------


def test_peek_does_not_consume() -> None:
    reader = _reader(b"abcdef", trickle=True)
    assert reader.peek(3) == b"abc"
    assert reader.peek(10) == b"abcdef"
    assert reader.offset == 0
    assert reader.read_exact(4, "four") == b"abcd"
    assert reader.read_some(10) == b"ef"
    assert reader.read_some(10) == b""
    assert reader.offset == 6
    assert reader.at_eof()
