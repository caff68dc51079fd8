"""Scan what the user names: files, folders (mounted media), zip archives and ISO images, with medium checks.

Large folders are spread over a process pool (the per-file work is pure Python); Secure DICOM Files are
opened in this process only, so a password derives its key once (one CMS context for the whole scan). A zip
found in a folder, an image or another zip is opened and its files scanned as ``outer.zip!inner.zip!IM1``,
within the bounds of :class:`dcmseal.reader.containers.NestingLimits`; dcmseal's own offline viewer is
recognised by SHA-256 (:mod:`dcmseal.scan.viewer`).
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dcmseal import cms
from dcmseal.config import DEFAULT_KDF_BUDGET_PER_MEDIUM, DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import DcmsealError, InputError, MissingInputError, ResourceLimitError
from dcmseal.events import Emitter, HandlerSpec
from dcmseal.part10 import is_secure_head
from dcmseal.reader.containers import (
    MEMBER_READ_ERRORS,
    NESTED_SEPARATOR,
    Archive,
    Member,
    NestingBudget,
    NestingLimits,
    is_iso_image,
    is_quarantine_dir,
    is_udf_only_image,
    is_zip_head,
    iter_folder,
    open_archive,
    open_nested,
)
from dcmseal.scan.layout import LayoutCache
from dcmseal.scan.medium import (
    LayoutEntry,
    check_layout,
    dicomdir_references,
    entry_from_head,
    find_dicomdirs,
)
from dcmseal.scan.report import FileReport, Finding, ScanReport, Verdict
from dcmseal.scan.scanner import HEAD_BYTES, scan_file, scan_source
from dcmseal.scan.unsealed import (
    OPENED_CODES,
    credentials_from,
    decrypt_to_memory,
    flag_unopened,
    scan_secure,
)
from dcmseal.scan.viewer import ViewerMatch, find_viewers, known_bundle, sha256_of
from dcmseal.workers import fork_context, process_pool

__all__ = ["scan_paths"]

logger = logging.getLogger(__name__)

#: Below this many files a process pool costs more than it saves (start-up is ~50 ms).
MIN_FILES_FOR_POOL = 4000
#: Files per task sent to a worker: large enough that pickling is noise, small enough to balance.
_CHUNK_FILES = 512
#: Files opened ahead of the one being parsed, their reads announced to the kernel (cold caches).
PREFETCH_FILES = 32
#: How much of each file ahead is announced: the head the scan reads first.
PREFETCH_BYTES = 64 * 1024
#: A head read slower than this came from the disk, not the page cache (a cached 16 KiB read takes ~2 us).
_COLD_READ_NS = 50_000
#: After a read from the disk, the next this many files are announced to the kernel.
_ADVISE_WINDOW = 256
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
#: How often (in files) progress is reported.
_PROGRESS_EVERY = 256


@dataclass(frozen=True, slots=True)
class _Options:
    allow_tiff: bool
    credentials: tuple[cms.Credential, ...]
    max_iterations: int
    nesting: NestingLimits
    accept_unprotected: bool = False
    #: The PBKDF2 work the whole scan may spend opening Secure DICOM Files (a medium: one budget).
    kdf_budget: cms.KdfBudget | None = None
    #: The scan's CMS state: each password derives its key once for the whole scan.
    context: cms.Context = field(default_factory=cms.Context)


def _scan_one(
    path: Path | str, name: str, allow_tiff: bool, layouts: LayoutCache | None = None
) -> FileReport:
    try:
        return scan_file(path, name=name, allow_tiff=allow_tiff, layouts=layouts)
    except OSError as exc:
        finding = Finding("file.unreadable", f"cannot read: {exc.strerror or exc}", Verdict.SUSPICIOUS, None)
        return FileReport.of(name, "not-dicom", [finding])


_Wire = tuple[str, str, str, str | None, tuple[tuple[str, str, str, int | None], ...]]


def _to_wire(report: FileReport) -> _Wire:
    # Plain tuples cross the process boundary 20 times cheaper than the dataclasses (6 us -> 0.3 us a file).
    findings = tuple((f.code, f.message, f.severity.value, f.offset) for f in report.findings)
    return (report.path, report.verdict.value, report.kind, report.sop_instance_uid, findings)


_VERDICTS = {v.value: v for v in Verdict}


def _from_wire(wire: _Wire) -> FileReport:
    path, verdict, kind, uid, findings = wire
    if not findings:
        return FileReport(path, Verdict.CLEAN, (), kind, uid)
    found = tuple(Finding(c, m, _VERDICTS[s], o) for c, m, s, o in findings)
    return FileReport(path, _VERDICTS[verdict], found, kind, uid)


def _scan_many(items: Sequence[tuple[str, str]], allow_tiff: bool) -> Iterator[FileReport]:
    """Scan (path, name) pairs in order, with the next files' reads already under way on a cold cache.

    Each file is opened :data:`PREFETCH_FILES` files ahead; while the cache is cold (a head read took
    longer than :data:`_COLD_READ_NS`, or no read has been timed yet) the opened file is announced to the
    kernel with ``posix_fadvise(WILLNEED)``, so its pages are read while earlier files are parsed (one
    process, several reads in flight). On a warm cache the announcement, a system call per file, is left
    out. The descriptor opened ahead is the one scanned: no extra open.
    """
    layouts = LayoutCache()
    total = len(items)
    advise = getattr(os, "posix_fadvise", None)
    advise_until = 2 * PREFETCH_FILES  # the first files are announced until reads tell how the cache is
    ahead: collections.deque[int | OSError] = collections.deque()
    pread, clock, head_bytes, cold_ns = os.pread, time.perf_counter_ns, HEAD_BYTES, _COLD_READ_NS

    def open_at(index: int) -> int | OSError:
        try:
            fd = os.open(items[index][0], _OPEN_FLAGS)
        except OSError as exc:
            return exc
        if advise is not None and index < advise_until:
            with contextlib.suppress(OSError):
                advise(fd, 0, PREFETCH_BYTES, os.POSIX_FADV_WILLNEED)
        return fd

    try:
        ahead.extend(open_at(index) for index in range(min(PREFETCH_FILES, total)))
        for index in range(total):
            opened = ahead.popleft()
            if index + PREFETCH_FILES < total:
                ahead.append(open_at(index + PREFETCH_FILES))
            name = items[index][1]
            if isinstance(opened, OSError):
                yield _unreadable(name, opened)
                continue
            try:
                started = clock()
                head = pread(opened, head_bytes, 0)
                if clock() - started > cold_ns:
                    advise_until = index + _ADVISE_WINDOW
                size = len(head) if len(head) < head_bytes else os.fstat(opened).st_size
                report = scan_source(
                    head, size, _reader(opened), name=name, allow_tiff=allow_tiff, layouts=layouts
                )
            except OSError as exc:
                report = _unreadable(name, exc)
            except Exception as exc:  # one file that breaks the scanner does not stop the scan
                report = _scanner_failed(name, exc)
            finally:
                os.close(opened)
            yield report
    finally:
        for opened in ahead:
            if not isinstance(opened, OSError):
                os.close(opened)


def _reader(fd: int) -> Callable[[int, int], bytes]:
    def read_at(at: int, n: int) -> bytes:
        return os.pread(fd, n, at)

    return read_at


def _scanner_failed(name: str, exc: Exception) -> FileReport:
    """A file the scanner itself could not judge: suspicious, with one line (the traceback in the debug log)."""
    logger.debug("%s: the scanner failed", name, exc_info=True)
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    finding = Finding(
        "file.unscannable", f"the scanner could not judge this file ({text})", Verdict.SUSPICIOUS
    )
    return FileReport.of(name, "not-dicom", [finding])


def _unreadable(name: str, exc: OSError) -> FileReport:
    finding = Finding("file.unreadable", f"cannot read: {exc.strerror or exc}", Verdict.SUSPICIOUS, None)
    return FileReport.of(name, "not-dicom", [finding])


#: A chunk's result: each file's SOP Instance UID when it is clean DICOM with no finding (the common case,
#: one string), and the other files' reports in full, by position in the chunk (their path left empty).
_ChunkResult = tuple[list[str | None], dict[int, _Wire]]


def _scan_paths_chunk(paths: list[str], allow_tiff: bool) -> _ChunkResult:
    """Worker: scan ``paths`` and answer compactly (see :data:`_ChunkResult`)."""
    uids: list[str | None] = []
    others: dict[int, _Wire] = {}
    for index, report in enumerate(_scan_many([(path, "") for path in paths], allow_tiff)):
        if report.findings or report.kind != "dicom":
            others[index] = _to_wire(report)
            uids.append(None)
        else:
            uids.append(report.sop_instance_uid)
    return uids, others


def _scan_listing(
    listing: Iterator[Member],
    prefix: str,
    allow_tiff: bool,
    workers: int,
    reports: dict[str, FileReport],
    events: Emitter,
) -> tuple[list[Member], list[Member], list[FileReport]]:
    """Scan the files of ``listing`` as it is read, filling ``reports`` (label -> report).

    Returns every member, the regular files (not links) and their reports in that order. Once :data:`MIN_FILES_FOR_POOL` files are listed
    (and ``workers`` > 1) a pool is forked and the rest of the listing overlaps the scan: a task is a list
    of paths, its answer one UID per clean file (:func:`_scan_paths_chunk`), so the parent lists, sends
    and builds reports, and the workers do everything else.
    """
    members: list[Member] = []
    regular: list[Member] = []
    found: list[FileReport] = []
    pool: ProcessPoolExecutor | None = None
    futures: list[tuple[int, Future[_ChunkResult]]] = []
    sent = 0
    try:
        for member in listing:
            members.append(member)
            if member.symlink:
                continue
            regular.append(member)
            if workers > 1 and pool is None and len(regular) >= MIN_FILES_FOR_POOL:
                pool = process_pool(workers, mp_context=fork_context())
            if pool is not None and len(regular) - sent >= _CHUNK_FILES:
                chunk = [m.path or "" for m in regular[sent:]]
                futures.append((sent, pool.submit(_scan_paths_chunk, chunk, allow_tiff)))
                sent = len(regular)
        total = len(regular)
        events.progress("scan", 0, total)
        if pool is not None:
            if sent < total:
                chunk = [m.path or "" for m in regular[sent:]]
                futures.append((sent, pool.submit(_scan_paths_chunk, chunk, allow_tiff)))
            clean, dicom = Verdict.CLEAN, "dicom"
            for start, future in futures:
                uids, others = future.result()
                for index, uid in enumerate(uids):
                    label = f"{prefix}{regular[start + index].name}"
                    if index in others:
                        report = _relabel(others[index], label)
                    else:
                        report = FileReport(label, clean, (), dicom, uid)
                    reports[label] = report
                    found.append(report)
                events.progress("scan", start + len(uids), total)
        else:
            items = [(m.path or "", _label(prefix, m.name)) for m in regular]
            for index, report in enumerate(_scan_many(items, allow_tiff), 1):
                reports[report.path] = report
                found.append(report)
                if index % _PROGRESS_EVERY == 0 or index == total:
                    events.progress("scan", index, total)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return members, regular, found


def _relabel(wire: _Wire, label: str) -> FileReport:
    _path, verdict, kind, uid, findings = wire
    return _from_wire((label, verdict, kind, uid, findings))


def _layout_entry(report: FileReport, member: Member, head: bytes | None) -> LayoutEntry:
    if report.kind in ("dicom", "secure") or any(f.code in OPENED_CODES for f in report.findings):
        return LayoutEntry(member.name, "secure" if report.kind == "secure" else "dicom")
    if head is None and member.path is not None:
        with open(member.path, "rb") as fp:
            head = fp.read(4096)
            if PurePosixPath(member.name).name.lower() == "autorun.inf":
                head += fp.read(60 * 1024)
    return entry_from_head(
        member.name,
        head or b"",
        autorun=head if PurePosixPath(member.name).name.lower() == "autorun.inf" else None,
    )


#: A DICOMDIR or an autorun.inf, in any case, in a newline-joined list of names (a name holding a newline
#: can only add a match, which costs time, never drop one).
_DICOMDIR_OR_AUTORUN = re.compile(r"(?:^|/)(?:DICOMDIR|AUTORUN\.INF)$", re.IGNORECASE | re.MULTILINE)


def _names_dicomdir_or_autorun(members: Sequence[Member]) -> bool:
    """Whether a DICOMDIR or an autorun.inf is among ``members`` (one C-level search, not a loop)."""
    return _DICOMDIR_OR_AUTORUN.search("\n".join([m.name for m in members])) is not None


def _label(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def _scan_folder(
    root: Path, prefix: str, options: _Options, workers: int, events: Emitter
) -> tuple[list[FileReport], list[Finding]]:
    reports: dict[str, FileReport] = {}
    members, regular, found = _scan_listing(
        iter_folder(root), prefix, options.allow_tiff, workers, reports, events
    )
    if options.credentials:
        secure = [m for m in regular if reports[_label(prefix, m.name)].kind == "secure"]
        for index, member in enumerate(secure, 1):
            assert member.path is not None
            label = _label(prefix, member.name)
            with open(member.path, "rb") as fp:
                reports[label] = scan_secure(
                    fp,
                    os.fstat(fp.fileno()).st_size,
                    options.credentials,
                    name=label,
                    allow_tiff=options.allow_tiff,
                    max_iterations=options.max_iterations,
                    accept_unprotected=options.accept_unprotected,
                    kdf_budget=options.kdf_budget,
                    context=options.context,
                )
            events.progress("open", index, len(secure))
    viewers = find_viewers(
        (m.name for m in regular),
        size_of=lambda name: os.stat(root / name).st_size,
        digest_of=lambda name: _file_digest(root / name),
        bundle=known_bundle(),
    )
    _mark_viewers(reports, viewers, prefix)
    if options.credentials or viewers:  # some reports were replaced above
        found = [reports[_label(prefix, m.name)] for m in regular]
    entries: list[LayoutEntry] = []
    # A DICOM file counts in the medium checks only against a DICOMDIR (unreferenced, missing files) or an
    # autorun.inf (what it launches); on a medium with neither, its entry would change no finding, and
    # 20,000 of them cost 25 ms here (tests/scan/test_tree.py holds this to scan_medium_layout's answer).
    dicom_entries = _names_dicomdir_or_autorun(members)
    position = 0
    for member in members:
        if member.symlink:
            entries.append(LayoutEntry(member.name, "symlink"))
            continue
        report = found[position]
        position += 1
        if report.kind == "dicom":  # _layout_entry's answer, without its call: most files of a medium
            if dicom_entries:
                entries.append(LayoutEntry(member.name, "dicom"))
            continue
        try:
            entries.append(_layout_entry(report, member, None))
        except OSError:
            entries.append(LayoutEntry(member.name, "not-dicom"))
    medium = _medium_findings(entries, lambda name: (root / name).read_bytes(), options, viewers)
    files: list[FileReport] = []
    nested: list[Finding] = []
    budget = NestingBudget(options.nesting)
    for member, report in zip(regular, found, strict=True):
        if report.kind == "not-dicom" and "file.zip" in report.codes():
            # A zip on a medium is opened in place, as if it had been named on the command line.
            label = _label(prefix, member.name)
            report, inner_files, inner_findings = _scan_zip_file(
                Path(member.path or ""), label, report, options, budget
            )
            files.append(report)
            files.extend(inner_files)
            nested.extend(inner_findings)
            continue
        files.append(report)
    return files, _prefixed(medium, prefix) + nested


def _file_digest(path: Path) -> str:
    with open(path, "rb") as fp:
        return sha256_of(fp)


def _viewer_report(label: str, match: ViewerMatch) -> FileReport:
    finding = Finding("file.viewer", f"dcmseal offline viewer, known bundle {match.label}", Verdict.CLEAN)
    return FileReport.of(label, "not-dicom", [finding])


def _mark_viewers(reports: dict[str, FileReport], viewers: Sequence[ViewerMatch], prefix: str) -> None:
    """Replace the reports of the viewer's files (HTML, JavaScript: flagged by content) with a note."""
    for match in viewers:
        for name in match.names:
            label = _label(prefix, name)
            if label in reports:
                reports[label] = _viewer_report(label, match)


def _opened_report(label: str, count: int) -> FileReport:
    finding = Finding(
        "container.opened",
        f"a zip archive, opened: its {count} files are reported as {label}{NESTED_SEPARATOR}...",
        Verdict.CLEAN,
    )
    return FileReport.of(label, "not-dicom", [finding])


def _not_opened(report: FileReport, code: str, message: str) -> FileReport:
    finding = Finding(code, message, Verdict.SUSPICIOUS)
    return FileReport.of(report.path, report.kind, [*report.findings, finding], report.sop_instance_uid)


def _scan_zip_file(
    path: Path, label: str, report: FileReport, options: _Options, budget: NestingBudget
) -> tuple[FileReport, list[FileReport], list[Finding]]:
    """Open the zip ``path`` found in a folder and scan its files (the container's report, its files, findings)."""
    inner_prefix = f"{label}{NESTED_SEPARATOR}"
    try:
        with open_archive(path) as archive:
            files, findings = _scan_open_archive(
                archive, inner_prefix, options, Emitter(), depth=0, budget=budget
            )
    except ResourceLimitError as exc:
        return _not_opened(report, "container.limit", exc.message), [], []
    except InputError as exc:
        return _not_opened(report, "container.unreadable", f"cannot open the archive: {exc.message}"), [], []
    return _opened_report(label, len(files)), files, findings


def _prefixed(findings: list[Finding], prefix: str) -> list[Finding]:
    if not prefix:
        return findings
    return [Finding(f.code, f"{prefix}{f.message}", f.severity, f.offset) for f in findings]


def _medium_findings(
    entries: list[LayoutEntry],
    read: Callable[[str], bytes],
    options: _Options,
    viewers: Sequence[ViewerMatch] = (),
) -> list[Finding]:
    filesets: dict[str, frozenset[str] | None] = {}
    notes: list[Finding] = []
    for dicomdir in find_dicomdirs(entries):
        try:
            data = read(dicomdir)
        except (OSError, DcmsealError) as exc:
            filesets[dicomdir] = None
            notes.append(
                Finding("medium.dicomdir-unreadable", f"{dicomdir}: cannot read: {exc}", Verdict.SUSPICIOUS)
            )
            continue
        if options.credentials and is_secure_head(data):
            # On failure the DICOMDIR's own report says why; its references stay unchecked.
            with contextlib.suppress(DcmsealError):
                data = decrypt_to_memory(
                    io.BytesIO(data),
                    len(data),
                    options.credentials,
                    max_iterations=options.max_iterations,
                    accept_unprotected=options.accept_unprotected,
                    kdf_budget=options.kdf_budget,
                    context=options.context,
                )
        referenced, note = dicomdir_references(data, dicomdir)
        filesets[dicomdir] = referenced
        if note is not None:
            notes.append(note)
    return check_layout(entries, filesets=filesets, notes=notes, viewers=viewers)


def _scan_member(archive: Archive, member: Member, label: str, options: _Options) -> tuple[FileReport, bytes]:
    if member.problem is not None:
        # A structural problem (a name escaping the root, a file past the end of the image) is what makes
        # ``open`` refuse the medium: the scan says so too, and its exit code with it.
        code = "medium.symlink" if member.symlink else "container.unreadable"
        code = "container.structure" if member.structural else code
        return FileReport.of(label, "not-dicom", [Finding(code, member.problem, Verdict.SUSPICIOUS)]), b""
    with archive.open(member) as fp:
        head = fp.read(HEAD_BYTES)
        size = member.size

        def read_at(at: int, n: int) -> bytes:
            fp.seek(at)
            return fp.read(n)

        report = scan_source(head, size, read_at, name=label, allow_tiff=options.allow_tiff)
        if report.kind == "secure" and options.credentials:
            fp.seek(0)
            report = scan_secure(
                fp,
                size,
                options.credentials,
                name=label,
                allow_tiff=options.allow_tiff,
                max_iterations=options.max_iterations,
                accept_unprotected=options.accept_unprotected,
                kdf_budget=options.kdf_budget,
                context=options.context,
            )
    return report, head


def _scan_archive(
    path: Path, prefix: str, options: _Options, events: Emitter
) -> tuple[list[FileReport], list[Finding]]:
    with open_archive(path) as archive:
        return _scan_open_archive(
            archive, prefix, options, events, depth=0, budget=NestingBudget(options.nesting)
        )


def _scan_open_archive(
    archive: Archive, prefix: str, options: _Options, events: Emitter, *, depth: int, budget: NestingBudget
) -> tuple[list[FileReport], list[Finding]]:
    """Scan every member of ``archive`` (``depth`` 0: the input itself), opening the zips among them."""
    files: list[FileReport] = []
    nested: list[Finding] = []
    entries: list[LayoutEntry] = []
    total = len(archive.members)
    events.progress("scan", 0, total)
    for index, member in enumerate(archive.members, 1):
        label = _label(prefix, member.name)
        try:
            report, head = _scan_member(archive, member, label, options)
        except DcmsealError as exc:
            report, head = _scanner_failed(label, exc), b""
        except MEMBER_READ_ERRORS as exc:
            # zipfile raises these for corrupt members (bad CRC, truncated data); pycdlib raises PyCdlibException (an Exception)
            report, head = (
                FileReport.of(
                    label,
                    "not-dicom",
                    [Finding("container.unreadable", f"cannot read: {exc}", Verdict.SUSPICIOUS)],
                ),
                b"",
            )
        except Exception as exc:  # one member that breaks the scanner does not stop the scan
            report, head = _scanner_failed(label, exc), b""
        inner_files: list[FileReport] = []
        if report.kind == "not-dicom" and member.problem is None and is_zip_head(head):
            report, inner_files, inner_findings = _scan_nested(
                archive, member, label, report, options, depth=depth + 1, budget=budget
            )
            nested.extend(inner_findings)
        files.append(report)
        files.extend(inner_files)
        autorun = None
        if PurePosixPath(member.name).name.lower() == "autorun.inf" and member.problem is None:
            autorun = archive.read(member, 64 * 1024)
        if report.kind in ("dicom", "secure") or any(f.code in OPENED_CODES for f in report.findings):
            entries.append(LayoutEntry(member.name, "secure" if report.kind == "secure" else "dicom"))
        else:
            entries.append(entry_from_head(member.name, head[:4096], autorun=autorun))
        if index % _PROGRESS_EVERY == 0 or index == total:
            events.progress("scan", index, total)
    by_name = {m.name: m for m in archive.members if m.problem is None}
    viewers = find_viewers(
        by_name,
        size_of=lambda name: by_name[name].size,
        digest_of=lambda name: _member_digest(archive, by_name[name]),
        bundle=known_bundle(),
    )
    if viewers:
        by_label = {f.path: f for f in files}
        _mark_viewers(by_label, viewers, prefix)
        files = [by_label[f.path] for f in files]
    medium = _medium_findings(
        entries, lambda name: archive.read(by_name[name], 512 * 1024 * 1024), options, viewers
    )
    return files, _prefixed(medium, prefix) + nested


def _member_digest(archive: Archive, member: Member) -> str:
    try:
        with archive.open(member) as fp:
            return sha256_of(fp)
    except MEMBER_READ_ERRORS as exc:  # a corrupt member is not the viewer (its own report says why)
        raise OSError(str(exc)) from exc


def _scan_nested(
    parent: Archive,
    member: Member,
    label: str,
    report: FileReport,
    options: _Options,
    *,
    depth: int,
    budget: NestingBudget,
) -> tuple[FileReport, list[FileReport], list[Finding]]:
    """Open the zip ``member`` of ``parent`` and scan its files; a bound reached is a finding, not an error."""
    try:
        inner = open_nested(parent, member, label=label, depth=depth, budget=budget)
    except ResourceLimitError as exc:
        return _not_opened(report, "container.limit", exc.message), [], []
    except InputError as exc:
        return _not_opened(report, "container.unreadable", f"cannot open the archive: {exc.message}"), [], []
    except MEMBER_READ_ERRORS as exc:
        # reading the member itself failed (bad CRC, truncated data): as for any unreadable member
        return _not_opened(report, "container.unreadable", f"cannot read the archive: {exc}"), [], []
    try:
        files, findings = _scan_open_archive(
            inner, f"{label}{NESTED_SEPARATOR}", options, Emitter(), depth=depth, budget=budget
        )
    finally:
        inner.close()
    return _opened_report(label, len(files)), files, findings


def _kind_of_input(path: Path) -> str:
    """'folder', 'archive' (ISO or zip that is not itself DICOM) or 'file', by content."""
    if path.is_dir():
        return "folder"
    with open(path, "rb") as fp:
        head = fp.read(HEAD_BYTES)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "file"  # a DICOM file with a ZIP appended is a polyglot to report, not an archive to open
    if is_secure_head(head):
        return "file"
    if is_iso_image(path) or is_udf_only_image(path):
        return "archive"  # a UDF-only image is read through 7z (refused, saying what to install, without it)
    import zipfile

    if zipfile.is_zipfile(path):
        return "archive"
    return "file"


def _inputs(paths: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    several = len(paths) > 1
    for path in paths:
        prefix = f"{path.as_posix().rstrip('/')}/" if several else ""
        yield Path(path), prefix


def _no_dicom(path: Path, others: int) -> Finding:
    """The finding of a folder, image or archive without one DICOM file: not a medium to open or import."""
    what = (
        f"no DICOM file on this medium ({others} other file(s))" if others else "holds no file: not a medium"
    )
    return Finding("medium.no-dicom", f"{path}: {what}", Verdict.SUSPICIOUS)


def scan_paths(
    paths: Sequence[Path],
    *,
    allow_tiff: bool = True,
    passwords: Sequence[bytes] = (),
    private_keys: Sequence[bytes] = (),
    handlers: Sequence[HandlerSpec] = (),
    workers: int = 0,
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS,
    nesting: NestingLimits | None = None,
    accept_unprotected: bool = False,
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM,
) -> ScanReport:
    """Scan files, folders (mounted media), ISO images and zip archives.

    Every file gets a :class:`FileReport`; every folder, image or archive also gets the medium checks
    (:func:`dcmseal.scan.scan_medium_layout`). Secure DICOM Files are reported ``kind="secure"``, or, when
    ``passwords``/``private_keys`` (PKCS#8 DER) open them, scanned after decryption in memory.

    File paths in the report are relative to the folder, image or archive when one input is given, and
    prefixed with the input as given when there are several; a single file is named as given.

    Parameters
    ----------
    handlers
        ``(event class, handler)`` pairs (:mod:`dcmseal.events`): :class:`~dcmseal.events.Progress` is
        emitted for the stages ``"scan"`` and ``"open"``.
    workers
        Processes for large folders (0: one per core; 1: none).
    kdf_budget_per_medium
        PBKDF2 iterations the scan may spend opening Secure DICOM Files, all inputs together.
    accept_unprotected
        Also open Secure DICOM Files with no digest or signature inside; they are reported
        ``secure.opened-unverified`` (suspicious), never as verified.
    nesting
        How far zips inside zips (and inside folders and images) are opened; a bound reached is a
        ``container.limit`` finding on the archive that was not opened.

    Raises
    ------
    InputError
        An input that does not exist, or an archive or image that cannot be read at all.
    """
    events = Emitter(handlers)
    options = _Options(
        allow_tiff,
        credentials_from(passwords, private_keys),
        max_iterations,
        nesting or NestingLimits(),
        accept_unprotected,
        cms.KdfBudget.for_limits(max_iterations, kdf_budget_per_medium),
    )
    pool_size = workers or (os.cpu_count() or 1)
    files: list[FileReport] = []
    medium: list[Finding] = []
    for path, prefix in _inputs(paths):
        if not path.exists() and not path.is_symlink():
            raise MissingInputError(path)
        if path.is_dir() and is_quarantine_dir(path):
            medium.append(
                Finding(
                    "medium.quarantine-skipped", f"{path}: a quarantine folder, not scanned", Verdict.CLEAN
                )
            )
            continue
        try:
            kind = _kind_of_input(path)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from exc
        if kind == "folder":
            found, findings = _scan_folder(path, prefix, options, pool_size, events)
        elif kind == "archive":
            found, findings = _scan_archive(path, prefix, options, events)
        else:
            label = str(path)
            report = _scan_one(path, label, allow_tiff)
            if report.kind == "secure" and options.credentials:
                with open(path, "rb") as fp:
                    report = scan_secure(
                        fp,
                        os.fstat(fp.fileno()).st_size,
                        options.credentials,
                        name=label,
                        allow_tiff=allow_tiff,
                        max_iterations=max_iterations,
                        accept_unprotected=accept_unprotected,
                        kdf_budget=options.kdf_budget,
                        context=options.context,
                    )
            found, findings = [report], []
            events.progress("scan", 1, 1)
        if kind != "file" and not any(f.kind in ("dicom", "secure") for f in found):
            # open refuses such a medium ("no DICOM file on this medium"): scan says so too.
            findings = [*findings, _no_dicom(path, len(found))]
        if options.credentials:  # every envelope was tried: one that alone did not open is suspicious
            found = flag_unopened(found)
        files.extend(found)
        medium.extend(findings)
    if logger.isEnabledFor(logging.INFO):  # two passes over every report: only when someone listens
        logger.info(
            "scanned %d files: %d malicious, %d suspicious",
            len(files),
            sum(f.verdict is Verdict.MALICIOUS for f in files),
            sum(f.verdict is Verdict.SUSPICIOUS for f in files),
        )
    return ScanReport.of(files, medium)
