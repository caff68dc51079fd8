"""Element layouts already walked, so the next file of a series is checked in one comparison."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from dcmseal.part10.fileformat import HEADER_BYTES
from dcmseal.scan.meta import MetaResult
from dcmseal.scan.report import Finding
from dcmseal.scan.signatures import QUICK_PREFIXES
from dcmseal.scan.walker import BodyResult, ReadAt, _inspect, walk_dataset

__all__ = ["LayoutCache"]


@dataclass(frozen=True, slots=True)
class _Layout:
    headers: Callable[[bytes], object]  # the header bytes of every element, taken in one C-level call
    expected: object
    last_byte: int
    inspected: tuple[tuple[int, int, int, bytes, int, bool], ...]
    trace: tuple[int, ...]  # the offsets of those headers


_MAX_LAYOUT_MISSES = 2
#: The (0002,0000) File Meta Information Group Length element, header and value (PS3.10 §7.1).
_META_KEY = slice(HEADER_BYTES, HEADER_BYTES + 12)
#: The File Preamble and the "DICM" prefix: part of every file layout (a known layout has a zero preamble).
_PREFIX = (0, HEADER_BYTES)

_Span = tuple[int, int]
_Probe = tuple[int, int, int, bytes, int, bool]  # offset, value_at, tag, VR, length, removable


@dataclass(slots=True)
class _FileLayout:
    """A whole file's structure, known clean: preamble, File Meta group and data set element headers.

    ``exact`` takes exactly the bytes the meta and data set layouts compare (the proof that the walk would
    take the same path); ``quick`` takes larger runs, the header bytes plus the values between them that
    have not been seen to differ, so that a series usually costs a handful of slices, not one per element.
    ``quick`` covers every byte ``exact`` covers: a ``quick`` match is an ``exact`` match.
    """

    exact: Callable[[bytes], object]
    exact_expected: object
    quick: Callable[[bytes], object]
    quick_expected: object
    reference: bytes  # the first ``last`` bytes of the file it was learnt from
    covered: list[_Span]  # the header bytes (merged runs)
    gaps: list[_Span]  # the value bytes between them that ``quick`` still compares
    last: int
    uid: _Span | None  # the Media Storage SOP Instance UID value
    probes: tuple[_Probe, ...]  # value checks that depend on the values (signatures), repeated per file


def _merge(spans: list[_Span]) -> list[_Span]:
    merged: list[_Span] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _getter(spans: list[_Span]) -> Callable[[bytes], object]:
    return operator.itemgetter(*(slice(lo, hi) for lo, hi in spans))


@dataclass(frozen=True, slots=True)
class _MetaLayout:
    headers: Callable[[bytes], object]
    expected: object
    last_byte: int
    template: MetaResult


class LayoutCache:
    """Element layouts already walked, so the next file of a series is checked in one comparison.

    Files of one series usually share their layout: the same elements, VRs and lengths at the same offsets
    (only values differ). When a file has the size, data set start and transfer syntax of a layout seen
    before, and the header bytes (tag, VR, length) at every offset that walk visited are identical, the
    walk would take exactly the same path and reach the same structural verdict, so only the value checks
    (payload signatures in private/OB/UN/pixel values) are run again. Only layouts whose walk found nothing
    (no findings, no payload, no document, the data set ending at the end of the file) are kept.

    Once a layout has served a file, the whole file's structure (zero preamble, File Meta headers, data set
    headers) is kept by size too (:meth:`known_file`), and the next file of that size is checked with a
    few slices instead of a meta parse and a walk lookup.
    """

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._layouts: dict[tuple[int, int, str | None], _Layout] = {}
        self._seen: dict[tuple[int, int, str | None], int] = {}  # key -> layouts recorded that did not hold
        # File Meta layouts by the bytes of their (0002,0000) Group Length element: the group's layout does
        # not depend on the file's size, so files whose data sets differ still share it.
        self._metas: dict[bytes, _MetaLayout] = {}
        self._meta_seen: set[bytes] = set()
        self._files: dict[int, _FileLayout] = {}
        self.hits = 0
        self.file_hits = 0  # of ``hits``, those served by a whole-file structure (:meth:`known_file`)
        #: Whether the last :meth:`walk` was served by a known layout (then :meth:`learn_file` may keep it).
        self.last_walk_hit = False

    def known_file(
        self, buf: bytes, size: int, read_at: ReadAt | None
    ) -> tuple[str | None, list[Finding]] | None:
        """The SOP Instance UID and the findings of a file whose whole structure is known; None if it is not.

        The findings are those of the value checks only (a known structure has no structural finding); the
        caller still runs the checks that look at the whole file (the ZIP end of central directory).
        """
        layout = self._files.get(size)
        if layout is None or len(buf) < layout.last:
            return None
        if layout.quick(buf) != layout.quick_expected:
            if layout.exact(buf) != layout.exact_expected:
                return None
            self._widen(layout, buf)
        self.hits += 1
        self.file_hits += 1
        result: BodyResult | None = None
        blen = len(buf)
        for offset, value_at, tag, vr, length, removable in layout.probes:
            # _inspect's own first test, inline: most values do not start like any signature.
            if value_at + 2 <= blen and buf[value_at : value_at + 2] not in QUICK_PREFIXES:
                continue
            if result is None:
                result = BodyResult(dataset_end=size)
            _inspect(result, buf, 0, offset, value_at, tag, vr, length, read_at, removable, frozenset())
        uid = None
        if layout.uid is not None:
            lo, hi = layout.uid
            uid = buf[lo:hi].rstrip(b"\x00 ").decode("ascii", "replace")
        return uid, result.findings if result is not None else []

    @staticmethod
    def _widen(layout: _FileLayout, buf: bytes) -> None:
        """Stop comparing the values that differ in ``buf`` (its header bytes matched exactly)."""
        reference = layout.reference
        layout.gaps = [(lo, hi) for lo, hi in layout.gaps if buf[lo:hi] == reference[lo:hi]]
        spans = _merge(layout.covered + layout.gaps)
        layout.quick = _getter(spans)
        layout.quick_expected = layout.quick(reference)

    def learn_file(self, buf: bytes, size: int, meta: MetaResult) -> None:
        """Keep the structure of a file that the last :meth:`walk` served from a layout, with no findings.

        The caller guarantees the file had no finding at all before the value-independent checks (zero
        preamble, a File Meta group with no finding); ``meta`` must come from :meth:`meta` or the fast parse.
        """
        if not self.last_walk_hit or meta.trace is None or meta.spans is None:
            return
        body = self._layouts.get((size, meta.end, meta.transfer_syntax))
        if body is None:
            return
        (ts_lo, ts_hi), (class_lo, class_hi), uid_span = meta.spans
        exact = [_PREFIX, (ts_lo, ts_hi), (class_lo, class_hi)]
        exact += [(o, o + 12) for o in meta.trace]
        exact += [(o, o + 12) for o in body.trace]
        covered = _merge(exact)
        last = covered[-1][1]
        if last > len(buf):
            return
        getter = _getter(covered)
        gaps = [(covered[i][1], covered[i + 1][0]) for i in range(len(covered) - 1)]
        whole = _getter([(0, last)])
        if len(self._files) >= self._capacity:
            self._files.clear()
        self._files[size] = _FileLayout(
            exact=getter,
            exact_expected=getter(buf),
            quick=whole,
            quick_expected=whole(buf),
            reference=buf[:last],
            covered=covered,
            gaps=gaps,
            last=last,
            uid=uid_span if meta.sop_instance_uid is not None else None,
            # A check on a value shorter than 4 bytes ends before looking at it (_inspect): nothing to repeat.
            probes=tuple(p for p in body.inspected if p[4] >= 4),
        )

    def meta(self, buf: bytes, size: int) -> MetaResult | None:
        """The File Meta group of ``buf`` from a known layout: same headers and same Transfer Syntax bytes."""
        known = self._metas.get(buf[_META_KEY])
        if known is None or known.last_byte > len(buf) or known.headers(buf) != known.expected:
            return None
        template = known.template
        lo, hi = template.spans[2] if template.spans else (0, 0)
        uid = (
            buf[lo:hi].rstrip(b"\x00 ").decode("ascii", "replace")
            if template.sop_instance_uid is not None
            else None
        )
        return MetaResult(
            template.end,
            template.transfer_syntax,
            template.sop_class_uid,
            uid,
            trace=template.trace,
            spans=template.spans,
        )

    def remember_meta(self, buf: bytes, size: int, meta: MetaResult) -> None:
        """Keep the layout of a File Meta group parsed by the fast path (second sighting of its Group Length)."""
        if meta.trace is None or meta.spans is None or meta.findings:
            return
        key = buf[_META_KEY]
        if key not in self._meta_seen:
            if len(self._meta_seen) >= 16 * self._capacity:
                self._meta_seen.clear()
            self._meta_seen.add(key)
            return
        if len(self._metas) >= self._capacity:
            self._metas.clear()
        (ts_lo, ts_hi), (class_lo, class_hi), _uid = meta.spans
        # Header bytes, and the Transfer Syntax and SOP Class values themselves (they decide the walk).
        slices = [slice(o, o + 12) for o in meta.trace] + [slice(ts_lo, ts_hi), slice(class_lo, class_hi)]
        headers = operator.itemgetter(*slices)
        last = max(meta.trace) + 12
        self._metas[key] = _MetaLayout(headers, headers(buf), last, meta)

    def walk(
        self, buf: bytes, *, start: int, size: int, read_at: ReadAt | None, transfer_syntax: str | None
    ) -> BodyResult:
        """:func:`walk_dataset`, from the cache when the layout is known."""
        key = (size, start, transfer_syntax)
        layout = self._layouts.get(key)
        if layout is not None and layout.last_byte <= len(buf) and layout.headers(buf) == layout.expected:
            self.hits += 1
            self.last_walk_hit = True
            result = BodyResult(dataset_end=size)
            for offset, value_at, tag, vr, length, removable in layout.inspected:
                _inspect(result, buf, 0, offset, value_at, tag, vr, length, read_at, removable, frozenset())
            return result
        self.last_walk_hit = False
        # A layout is recorded the second time its key shows up, and a key whose layouts keep changing
        # (same size, different elements) stops being recorded: files that share nothing pay nothing.
        seen = self._seen.get(key, 0)
        if layout is not None:
            seen = self._seen[key] = seen + 1
            del self._layouts[key]
        if (layout is None and key not in self._seen) or seen >= _MAX_LAYOUT_MISSES:
            if len(self._seen) >= 16 * self._capacity:
                self._seen.clear()
            self._seen.setdefault(key, 0)
            return walk_dataset(buf, start=start, size=size, read_at=read_at, transfer_syntax=transfer_syntax)
        result = walk_dataset(
            buf, start=start, size=size, read_at=read_at, transfer_syntax=transfer_syntax, trace=True
        )
        trace, inspected = result.trace, result.inspected
        if (
            trace
            and inspected is not None
            and not result.findings
            and not result.payloads
            and not result.malformed
            and not result.deflated
            and result.document is None
            and not result.values
            and result.dataset_end == size
            and (len(buf) >= size or max(trace) + 12 <= len(buf))
        ):
            if len(self._layouts) >= self._capacity:
                self._layouts.clear()
            headers = operator.itemgetter(*(slice(o, o + 12) for o in trace))
            self._layouts[key] = _Layout(
                headers,
                headers(buf),
                max(trace) + 12 if len(buf) < size else 0,
                tuple(inspected),
                tuple(trace),
            )
        result.trace = result.inspected = None
        return result
