"""A streaming BER/DER reader and DER header writer for envelopes too large to hold in memory (X.690)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from dcmseal.errors import MalformedEnvelopeError

__all__ = [
    "EOC",
    "ByteSource",
    "DerReader",
    "Header",
    "encode_header",
    "encode_length",
]

EOC = b"\x00\x00"
_MAX_LENGTH_OCTETS = 8
#: Constructed strings and indefinite containers nest; a hostile file could nest without end.
_MAX_DEPTH = 32

# Tag octets used by the envelope parser (class | constructed | number).
TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_SEQUENCE = 0x30
TAG_SET = 0x31
TAG_CONTEXT_0_CONSTRUCTED = 0xA0
TAG_CONTEXT_0_PRIMITIVE = 0x80
TAG_CONTEXT_1_CONSTRUCTED = 0xA1


class ByteSource(Protocol):
    """Anything with ``read(n)`` that returns at most ``n`` bytes and ``b""`` at the end."""

    def read(self, n: int = -1, /) -> bytes: ...


def encode_length(length: int) -> bytes:
    """DER length octets (X.690 §8.1.3, definite form, shortest)."""
    if length < 0:
        raise ValueError("negative length")
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode_header(tag: int, length: int) -> bytes:
    """Identifier and length octets of a DER element with a one-octet tag."""
    return bytes([tag]) + encode_length(length)


@dataclass(frozen=True, slots=True)
class Header:
    """One TLV header as read: where it starts, its tag octet(s), and its length (None = indefinite)."""

    offset: int
    tag: int  # first identifier octet: class | constructed | low tag number
    tag_number: int
    length: int | None
    header_length: int
    raw: bytes = field(default=b"", compare=False)  # identifier and length octets exactly as read

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    @property
    def content_offset(self) -> int:
        return self.offset + self.header_length

    @property
    def end(self) -> int | None:
        """Offset just past the content, for definite lengths."""
        return None if self.length is None else self.content_offset + self.length


class DerReader:
    """Pull parser over a :class:`ByteSource` that tracks offsets and refuses lengths beyond the input.

    ``size`` is the number of bytes the source can give (a file's size) when known; every definite
    length is checked against it before anything is read or allocated.
    """

    def __init__(self, source: ByteSource, *, size: int | None = None, what: str = "envelope") -> None:
        self._source = source
        self._buffer = b""
        self._buffer_pos = 0
        self.offset = 0
        self.size = size
        self.what = what

    # -- raw bytes -------------------------------------------------------------------------------
    def _fill(self, n: int) -> None:
        """Make at least ``n`` bytes available in the buffer, or all that remain."""
        available = len(self._buffer) - self._buffer_pos
        if available >= n:
            return
        parts = [self._buffer[self._buffer_pos :]]
        while available < n:
            chunk = self._source.read(max(n - available, 64 * 1024))
            if not chunk:
                break
            parts.append(chunk)
            available += len(chunk)
        self._buffer = b"".join(parts)
        self._buffer_pos = 0

    def peek(self, n: int) -> bytes:
        """Up to ``n`` next bytes, without consuming them."""
        self._fill(n)
        return self._buffer[self._buffer_pos : self._buffer_pos + n]

    def read_exact(self, n: int, context: str) -> bytes:
        """Exactly ``n`` bytes, or :class:`MalformedEnvelopeError` naming the offset and the structure."""
        self.check_fits(n, context)
        if n <= len(self._buffer) - self._buffer_pos:
            data = self._buffer[self._buffer_pos : self._buffer_pos + n]
            self._buffer_pos += n
        else:
            head = self._buffer[self._buffer_pos :]
            self._buffer, self._buffer_pos = b"", 0
            rest = io.BytesIO()
            rest.write(head)
            while rest.tell() < n:
                chunk = self._source.read(n - rest.tell())
                if not chunk:
                    break
                rest.write(chunk)
            data = rest.getvalue()
        if len(data) != n:
            raise MalformedEnvelopeError(
                f"truncated {self.what}: {context} at offset {self.offset} needs {n} bytes, only {len(data)} left"
            )
        self.offset += n
        return data

    def check_fits(self, n: int, context: str) -> None:
        if self.size is not None and self.offset + n > self.size:
            raise MalformedEnvelopeError(
                f"{context} at offset {self.offset} claims {n} bytes, but only {self.size - self.offset} remain"
            )

    def read_some(self, n: int) -> bytes:
        """Between 1 and ``n`` bytes (fewer when the buffer or the source has fewer ready); ``b""`` at the end."""
        available = len(self._buffer) - self._buffer_pos
        if available:
            data = self._buffer[self._buffer_pos : self._buffer_pos + n]
            self._buffer_pos += len(data)
        else:
            data = self._source.read(n)
        self.offset += len(data)
        return data

    def readinto_some(self, buffer: memoryview) -> int:
        """Like :meth:`read_some`, into ``buffer`` (the source's ``readinto`` when it has one); 0 at the end."""
        available = len(self._buffer) - self._buffer_pos
        if available:
            n = min(available, len(buffer))
            buffer[:n] = self._buffer[self._buffer_pos : self._buffer_pos + n]
            self._buffer_pos += n
        else:
            readinto = getattr(self._source, "readinto", None)
            if readinto is not None:
                n = readinto(buffer) or 0
            else:
                data = self._source.read(len(buffer))
                n = len(data)
                buffer[:n] = data
        self.offset += n
        return n

    def at_eof(self) -> bool:
        return not self.peek(1)

    # -- TLV ---------------------------------------------------------------------------------------
    def read_header(self, context: str) -> Header:
        """Read one identifier + length; ``context`` names the structure for error messages."""
        start = self.offset
        raw = bytearray(self.read_exact(1, context))
        first = raw[0]
        tag_number = first & 0x1F
        if tag_number == 0x1F:  # high-tag-number form (X.690 §8.1.2.4)
            tag_number = 0
            for _ in range(5):
                octet = self.read_exact(1, context)[0]
                raw.append(octet)
                tag_number = (tag_number << 7) | (octet & 0x7F)
                if not octet & 0x80:
                    break
            else:
                raise MalformedEnvelopeError(f"{context} at offset {start}: tag number too long")
        length_octet = self.read_exact(1, context)[0]
        raw.append(length_octet)
        length: int | None
        if length_octet < 0x80:
            length = length_octet
        elif length_octet == 0x80:
            if not first & 0x20:
                raise MalformedEnvelopeError(f"{context} at offset {start}: indefinite length on a primitive")
            length = None
        else:
            count = length_octet & 0x7F
            if count > _MAX_LENGTH_OCTETS:
                raise MalformedEnvelopeError(f"{context} at offset {start}: length of {count} octets")
            length_octets = self.read_exact(count, context)
            raw += length_octets
            length = int.from_bytes(length_octets, "big")
        header = Header(start, first, tag_number, length, len(raw), bytes(raw))
        if length is not None:
            self.check_fits(length, context)
        return header

    def expect(self, tag: int, context: str) -> Header:
        """Read a header and check its identifier octet."""
        header = self.read_header(context)
        if header.tag != tag:
            raise MalformedEnvelopeError(
                f"{context} at offset {header.offset}: expected tag 0x{tag:02X}, found 0x{header.tag:02X}"
            )
        return header

    def read_value(self, header: Header, context: str, *, limit: int) -> bytes:
        """The content octets of a definite-length element (at most ``limit`` bytes)."""
        if header.length is None:
            raise MalformedEnvelopeError(f"{context} at offset {header.offset}: unexpected indefinite length")
        if header.length > limit:
            raise MalformedEnvelopeError(
                f"{context} at offset {header.offset}: {header.length} bytes exceed the limit of {limit}"
            )
        return self.read_exact(header.length, context)

    def read_element(self, context: str, *, limit: int) -> bytes:
        """The whole encoding (identifier, length, content) of the next element, BER allowed, at most ``limit``."""
        start = self.offset
        parts: list[bytes] = []
        self._read_element_into(parts, context, start + limit, depth=0)
        return b"".join(parts)

    def _read_element_into(self, parts: list[bytes], context: str, stop: int, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise MalformedEnvelopeError(f"{context}: nesting deeper than {_MAX_DEPTH}")
        start = self.offset
        header = self.read_header(context)
        parts.append(header.raw)  # as read: BER goes through to asn1crypto untouched
        if header.length is not None:
            if header.content_offset + header.length > stop:
                raise MalformedEnvelopeError(f"{context} at offset {start}: element exceeds the size limit")
            parts.append(self.read_exact(header.length, context))
            return
        while True:
            if self.peek(2) == EOC:
                parts.append(self.read_exact(2, context))
                return
            if self.offset >= stop:
                raise MalformedEnvelopeError(f"{context} at offset {start}: element exceeds the size limit")
            self._read_element_into(parts, context, stop, depth + 1)

    def at_end_of(self, container: Header) -> bool:
        """Whether the next byte is past ``container`` (definite) or is its end-of-contents (indefinite)."""
        if container.length is not None:
            end = container.end
            assert end is not None
            return self.offset >= end
        return self.peek(2) == EOC

    def close(self, container: Header, context: str) -> None:
        """Consume the end of ``container``: check the offset (definite) or read its EOC (indefinite)."""
        if container.length is None:
            if self.read_exact(2, context) != EOC:
                raise MalformedEnvelopeError(
                    f"{context} at offset {self.offset - 2}: missing end-of-contents"
                )
        elif self.offset != container.end:
            raise MalformedEnvelopeError(
                f"{context}: content ends at offset {self.offset}, but its length says {container.end}"
            )

    def iter_octets(
        self, header: Header, context: str, *, chunk_size: int, depth: int = 0
    ) -> Iterator[bytes]:
        """Stream the content octets of an OCTET STRING, primitive or constructed (BER segments)."""
        if depth > _MAX_DEPTH:
            raise MalformedEnvelopeError(f"{context}: constructed string nested deeper than {_MAX_DEPTH}")
        if not header.constructed:
            assert header.length is not None
            self.check_fits(header.length, context)
            remaining = header.length
            while remaining:
                # Whatever the source gives, up to a chunk: no re-assembly into exact sizes.
                data = self.read_some(min(remaining, chunk_size))
                if not data:
                    raise MalformedEnvelopeError(
                        f"truncated {self.what}: {context} at offset {self.offset} lacks {remaining} bytes"
                    )
                remaining -= len(data)
                yield data
            return
        while not self.at_end_of(header):
            segment = self.read_header(context)
            if segment.tag not in (TAG_OCTET_STRING, TAG_OCTET_STRING | 0x20):
                raise MalformedEnvelopeError(
                    f"{context} at offset {segment.offset}: constructed string holds tag 0x{segment.tag:02X}"
                )
            yield from self.iter_octets(segment, context, chunk_size=chunk_size, depth=depth + 1)
        self.close(header, context)
