"""Burn a study to a secure ISO image and open it again: MB/s, and where the time goes.

One run measures, on this machine and on one generated study (``--files`` CT instances of ``--file-kib``
each, Explicit VR Little Endian, one patient, study and series, random pixel bytes; nothing to convert):

1. ``seal_tree`` of the study folder (password, PBKDF2-HMAC-SHA256 600,000 iterations, 2 workers): the
   "seal throughput" of the CMS issue on these very files, plus ``dcmseal seal`` on the command line as
   ``bench_cms.py`` (b) runs it;
2. ``burn`` to an ISO image (STD-GEN-SEC-CD; password + escrow certificate; SQLite registry and audit file
   in the work folder): MB/s, PBKDF2 derivations, and the share of the wall clock in each step: collect,
   conform (+ preamble check), DICOMDIR planning (``build_fileset``), seal, ISO writing, registry, audit,
   staging clean-up. Steps are timed by wrappers around the functions ``burn`` calls (the progress
   callback's own timeline is recorded too);
3. ``dcmseal open`` of that image in a fresh process (cold key cache): MB/s and ``kdf_derivations``; and
   the same open in-process with timers around ISO extraction, unseal and the DICOMDIR check;
4. the verdicts: burn >= 60 % of the seal throughput, open >= 1 GB/s, one PBKDF2 derivation each;
5. a cProfile of burn and open in one process (``workers=1``) on 200 of the files, and the same two
   without ``fsync`` (what durability costs).

Every measured step runs in a child process of its own (cold caches, worker CPU counted, interpreter start
outside the timed region except for the ``dcmseal`` command lines). Inputs sit in the page cache; dirty
pages are written back (``sync``) before each step. MB = 10^6 bytes; MB/s are study bytes over wall clock.

    .venv/bin/python bench/bench_media.py            # 2,000 x 512 KiB (1 GiB): a few minutes
    .venv/bin/python bench/bench_media.py --quick    # 200 files
    .venv/bin/python bench/bench_media.py --render bench/results/media-<time>.json

Writes ``bench/results/media-<UTC time>[-quick].json`` (+ ``.md`` and the cProfile ``.prof`` files).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import functools
import io
import json
import os
import pstats
import resource
import secrets
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cms as cmsb  # the sibling benchmark: machine info, primitives, quiet-machine logic

MB = 1_000_000
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent
ITERATIONS = 600_000
WORKERS = 2
PROFILE_FILES = 200

# Targets from issue 3, section "Benchmarks".
TARGET_BURN_FRACTION_OF_SEAL = 0.60
TARGET_OPEN_MBS = 1000.0  # 1 GB/s
TARGET_DERIVATIONS = 1


# -- the study ---------------------------------------------------------------------------------------
PIXEL_COLUMNS = 512  # 16-bit pixels: one row is 1024 bytes
_UID_ROOT = "1.2.826.0.1.3680043.8.498"  # pydicom's root, as pydicom's generate_uid uses it
_PAD_GROUP = 0x0099  # a private block that takes the bytes that do not fill a whole row


def _template() -> Any:
    """pydicom's CT_small header without its pixels and trailing padding."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(str(get_testdata_file("CT_small.dcm")))
    del ds.PixelData
    if (0xFFFC, 0xFFFC) in ds:
        del ds[0xFFFC, 0xFFFC]
    ds.preamble = bytes(128)  # CT_small's is a TIFF header; burn would zero it (and say so)
    ds.PatientName = "Bench^Media"
    ds.PatientID = "BENCHMEDIA"
    ds.Columns = PIXEL_COLUMNS
    ds.add_new((_PAD_GROUP, 0x0010), "LO", "DCMSEAL BENCH")
    ds.add_new((_PAD_GROUP, 0x1000), "OB", b"")
    return ds


def _encode(ds: Any) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_study(folder: Path, files: int, size: int) -> dict[str, Any]:
    """``files`` distinct CT instances of exactly ``size`` bytes in ``folder``; {name: SOP Instance UID}.

    Each is CT_small's header with its own SOP Instance UID and Instance Number (one study, one series),
    Rows x 512 random 16-bit pixels, and the few bytes that do not fill a row in a private OB element.
    """
    from pydicom.uid import UID

    folder.mkdir(parents=True)
    run = f"{_UID_ROOT}.{secrets.randbelow(9 * 10**19) + 10**19}"  # fixed length: every header is as long
    ds = _template()
    ds.StudyInstanceUID = UID(f"{run}.1")
    ds.SeriesInstanceUID = UID(f"{run}.2")
    ds.FrameOfReferenceUID = UID(f"{run}.4")
    uids: dict[str, str] = {}

    def uid(i: int) -> UID:
        return UID(f"{run}.3.{i + 1}")

    # The private OB element is the last one before the pixels: its header ends the encoded data set, so
    # each file's own header length (Instance Number has 1 to 4 digits) is absorbed by its padding.
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(files - 1)
    ds.InstanceNumber = files  # the longest header
    ds.Rows = 1
    longest = len(_encode(ds)) + 12  # + the PixelData element header (tag, VR, reserved, 4-byte length)
    pixel_bytes = (size - longest) // (PIXEL_COLUMNS * 2) * (PIXEL_COLUMNS * 2)
    if pixel_bytes <= 0 or size % 2:
        raise SystemExit(f"cannot make a CT instance of {size} bytes (the header alone is {longest})")
    ds.Rows = pixel_bytes // (PIXEL_COLUMNS * 2)
    pad_tail = struct.pack("<HH2sHI", _PAD_GROUP, 0x1000, b"OB", 0, 0)
    pads = []
    started = time.perf_counter()
    for i in range(files):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(i)
        ds.InstanceNumber = i + 1
        header = _encode(ds)
        if not header.endswith(pad_tail):
            raise SystemExit("the padding element is not the last of the data set")
        pad = size - len(header) - 12 - pixel_bytes
        pads.append(pad)
        header = header[:-4] + struct.pack("<I", pad) + os.urandom(pad)
        name = f"CT{i + 1:06d}.dcm"
        with open(folder / name, "wb") as fp:
            fp.write(header + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))
            left = pixel_bytes
            while left:
                n = min(left, 4 * MIB)
                fp.write(os.urandom(n))
                left -= n
        if (folder / name).stat().st_size != size:
            raise SystemExit(f"{name}: {(folder / name).stat().st_size} bytes, expected {size}")
        uids[name] = str(uid(i))
    elapsed = time.perf_counter() - started
    for name in (next(iter(uids)), next(reversed(uids))):
        check_instance(folder / name)
    return {
        "uids": uids,
        "rows": int(ds.Rows),
        "pad_bytes": [min(pads), max(pads)],
        "generate_s": round(elapsed, 2),
    }


def check_instance(path: Path) -> None:
    """The generated file parses whole with pydicom and its pixels fill Rows x Columns exactly."""
    from pydicom import dcmread

    ds = dcmread(path)
    expected = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
    if len(ds.PixelData) != expected or str(ds.file_meta.TransferSyntaxUID) != "1.2.840.10008.1.2.1":
        raise SystemExit(f"{path}: not the instance intended")


def sha256_file(path: Path) -> str:
    return cmsb.sha256_file(path)


# -- timers around the functions a workflow calls (child side) ----------------------------------------
class Spans:
    """Wall time spent in wrapped functions, by name; fsync calls counted against the innermost one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_s: dict[str, float] = defaultdict(float)  # process CPU time (this process, all its threads)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[str] = []
        self.fsync_s: dict[str, float] = defaultdict(float)
        self.fsync_calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(name)
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.cpu_s[name] += time.process_time() - cpu_started
                self.calls[name] += 1
                self.stack.pop()

        return timed

    def patch(self, owner: Any, attr: str, name: str) -> None:
        if not hasattr(owner, attr):
            return  # the code no longer has this step (it moved or went away): nothing to time
        setattr(owner, attr, self.wrap(name, getattr(owner, attr)))

    def patch_cleanup(self, owner: Any, attr: str, name: str) -> None:
        """Time the exit of the context manager ``owner.attr`` (a staging folder's removal)."""
        original = getattr(owner, attr)

        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            exiting = None
            try:
                with original(*args, **kwargs) as value:
                    try:
                        yield value
                    finally:
                        exiting = time.perf_counter()
                        self.stack.append(name)
            finally:
                if exiting is not None:
                    self.stack.pop()
                    self.seconds[name] += time.perf_counter() - exiting
                    self.calls[name] += 1

        setattr(owner, attr, timed)

    def count_fsync(self, *, disable: bool = False) -> None:
        real = os.fsync

        def fsync(fd: FileDescriptorLike) -> None:
            where = self.stack[-1] if self.stack else "(outside)"
            started = time.perf_counter()
            try:
                if not disable:
                    real(fd)
            finally:
                self.fsync_s[where] += time.perf_counter() - started
                self.fsync_calls[where] += 1

        os.fsync = fsync

    def to_json(self) -> dict[str, Any]:
        return {
            "spans": {
                k: {"s": round(v, 4), "cpu_s": round(self.cpu_s[k], 4), "calls": self.calls[k]}
                for k, v in self.seconds.items()
            },
            "fsync": {k: {"s": round(v, 4), "calls": self.fsync_calls[k]} for k, v in self.fsync_s.items()},
        }


class Timeline:
    """The progress callback: when each stage was first and last reported, relative to ``start``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.calls: dict[str, int] = defaultdict(int)
        self.last_done: dict[str, tuple[int, int]] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter() - self.start
        self.first.setdefault(stage, now)
        self.last[stage] = now
        self.calls[stage] += 1
        self.last_done[stage] = (done, total)

    def to_json(self) -> dict[str, Any]:
        return {
            s: {
                "first_s": round(self.first[s], 4),
                "last_s": round(self.last[s], 4),
                "calls": self.calls[s],
                "last_done": list(self.last_done[s]),
            }
            for s in self.first
        }


def instrument_shared(spans: Spans) -> None:
    from dcmseal.audit import FileSink
    from dcmseal.cms.kdf import Pbkdf2Cache

    spans.patch(FileSink, "emit", "audit")
    spans.patch(Pbkdf2Cache, "derive", "pbkdf2")


def instrument_burn(spans: Spans) -> None:
    import dcmseal.media.burn as burn_mod
    import dcmseal.media.output as output_mod
    from dcmseal.keys.registry import Registry

    spans.patch(burn_mod, "collect", "collect")
    spans.patch(burn_mod, "conform", "conform")
    spans.patch(burn_mod, "_zero_preamble", "preamble")
    spans.patch(burn_mod, "build_fileset", "dicomdir")
    spans.patch(burn_mod, "seal_files", "seal")  # a folder medium
    spans.patch(
        burn_mod, "prepare_streams", "seal"
    )  # an ISO: keys wrapped and sizes fixed here, crypto in write
    spans.patch(burn_mod, "seal_password_for_escrow", "escrow")
    spans.patch(output_mod, "write_iso", "write")
    spans.patch_cleanup(burn_mod, "staging_dir", "cleanup")
    spans.patch(Registry, "new_medium_id", "registry")
    spans.patch(Registry, "record_medium", "registry")


def instrument_open(spans: Spans) -> None:
    import dcmseal.intake.listing as listing_mod
    import dcmseal.intake.read as intake_mod
    import dcmseal.media.open as open_mod

    # Reading the medium in (dcmseal.intake): the listing, in place for an ISO image (iso_file_extents), else
    # an extraction; each file recognised; the sealed ones unsealed. (media.open.open_medium is the whole
    # workflow, not the extraction it was named like before the reader's became medium_as_folder.)
    spans.patch(listing_mod.Listing, "read", "extract")
    spans.patch(intake_mod, "_classify", "classify")
    spans.patch(intake_mod, "unseal_files", "unseal")
    spans.patch(open_mod, "read_file_meta", "facts")
    spans.patch(open_mod, "read_dicomdir", "dicomdir")
    spans.patch(open_mod, "check_agreement", "dicomdir")
    spans.patch(open_mod, "build_fileset", "dicomdir")
    spans.patch(open_mod, "_summaries", "summaries")
    spans.patch_cleanup(open_mod, "staging_dir", "cleanup")


# -- the workflows (child side) -----------------------------------------------------------------------
def do_seal(spec: dict[str, Any]) -> dict[str, Any]:
    from dcmseal import cms
    from dcmseal.part10 import SealPlan, seal_tree

    plan = SealPlan(
        password=spec["password"].encode(),
        kdf=cms.Pbkdf2Params(salt=os.urandom(16), iterations=ITERATIONS, prf=cms.Prf.SHA256),
    )
    started = time.perf_counter()
    report = seal_tree([Path(spec["study"])], Path(spec["out"]), plan, workers=spec["workers"])
    wall = time.perf_counter() - started
    if report.failed:
        raise SystemExit(f"seal_tree: {len(report.failed)} failed; first: {report.failed[0].reason}")
    return {
        "wall_s": wall,
        "elapsed_s": report.elapsed_s,
        "files": len(report.outcomes),
        "pbkdf2_derivations": report.pbkdf2_derivations,
        "workers": report.workers,
    }


def _burn(spec: dict[str, Any], progress: Callable[[str, int, int], None] | None) -> tuple[Any, float, float]:
    """(BurnResult, wall seconds of burn(), seconds to open the registry)."""
    from cryptography import x509

    from dcmseal.audit import FileSink
    from dcmseal.events import on_progress
    from dcmseal.keys.registry import Registry
    from dcmseal.media.burn import BurnRequest, burn

    certificate = x509.load_pem_x509_certificate(Path(spec["escrow_cert"]).read_bytes())
    request = BurnRequest(
        sources=tuple(spec["sources"]),
        out=Path(spec["out"]),
        operator="bench",
        output_format="iso",
        password=spec["password"].encode(),
        escrow_certificate=certificate,
        label=spec.get("label", "BENCH MEDIA"),
        iterations=ITERATIONS,
        workers=spec["workers"],
    )
    started = time.perf_counter()
    registry = Registry.open(spec["registry"])
    registry_open = time.perf_counter() - started
    try:
        if isinstance(progress, Timeline):
            progress.start = time.perf_counter()
        started = time.perf_counter()
        result = burn(
            request,
            registry=registry,
            audit=FileSink(Path(spec["audit"])),
            handlers=[on_progress(progress)] if progress is not None else [],
        )
        wall = time.perf_counter() - started
    finally:
        registry.close()
    return result, wall, registry_open


def _burn_summary(result: Any, wall: float, spec: dict[str, Any]) -> dict[str, Any]:
    converted = sum(1 for f in result.files if f.conversion)
    summary = {
        "wall_s": wall,
        "elapsed_s": result.elapsed_s,
        "profile": result.profile.value,
        "files_burned": len(result.files),
        "converted": converted,
        "rejected": len(result.rejected),
        "notes": list(result.notes)[:5],
        "pbkdf2_derivations": result.pbkdf2_derivations,
        "size_bytes": result.size_bytes,
        "medium_id": result.medium_id,
    }
    if spec.get("expect_files") is not None and (
        len(result.files) != spec["expect_files"] or converted or result.rejected
    ):
        raise SystemExit(f"burn did not take every file as it is: {json.dumps(summary)}")
    return summary


def do_burn(spec: dict[str, Any]) -> dict[str, Any]:
    spans = Spans()
    instrument_shared(spans)
    instrument_burn(spans)
    spans.count_fsync()
    timeline = Timeline()
    result, wall, registry_open = _burn(spec, timeline)
    out = _burn_summary(result, wall, spec)
    out["timeline"] = timeline.to_json()
    out["registry_open_s"] = registry_open
    out.update(spans.to_json())
    return out


def _open(spec: dict[str, Any], progress: Callable[[str, int, int], None] | None) -> tuple[Any, float]:
    from dcmseal.audit import FileSink
    from dcmseal.events import on_progress
    from dcmseal.media.open import OpenRequest, open_medium

    request = OpenRequest(
        medium=Path(spec["medium"]),
        out=Path(spec["out"]),
        operator="bench",
        passwords=(spec["password"].encode(),),
        workers=spec["workers"],
        handlers=() if progress is None else (on_progress(progress),),
    )
    if isinstance(progress, Timeline):
        progress.start = time.perf_counter()
    started = time.perf_counter()
    result = open_medium(request, audit=FileSink(Path(spec["audit"])))
    return result, time.perf_counter() - started


def _open_summary(result: Any, wall: float, spec: dict[str, Any]) -> dict[str, Any]:
    opened = sum(1 for f in result.files if f.status == "opened")
    summary = {
        "wall_s": wall,
        "elapsed_s": result.elapsed_s,
        "opened": opened,
        "failed": len(result.failed),
        "kdf_derivations": result.kdf_derivations,
        "dicomdir_rebuilt": result.dicomdir_rebuilt,
        "disagreements": len(result.disagreements),
    }
    if (
        result.failed
        or result.dicomdir_rebuilt
        or result.disagreements
        or (
            spec.get("expect_files") is not None and opened != spec["expect_files"] + 1  # + the DICOMDIR
        )
    ):
        raise SystemExit(f"open did not go as expected: {json.dumps(summary)}")
    return summary


def do_open(spec: dict[str, Any]) -> dict[str, Any]:
    spans = Spans()
    instrument_shared(spans)
    instrument_open(spans)
    spans.count_fsync()
    timeline = Timeline()
    result, wall = _open(spec, timeline)
    out = _open_summary(result, wall, spec)
    out["timeline"] = timeline.to_json()
    out.update(spans.to_json())
    return out


# -- profile (child side) -----------------------------------------------------------------------------
def _label(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":
        return func
    path = Path(file)
    for marker in ("site-packages", "src"):
        if marker in path.parts:
            path = Path(*path.parts[path.parts.index(marker) + 1 :])
            break
    else:
        path = Path(path.name)
    return f"{path}:{line}({func})"


# (label, file suffix, function name, "ct" cumulative or "tt" own time): what the report names.
_BUCKETS: tuple[tuple[str, str, str, str], ...] = (
    ("dcmread (pydicom), all callers", "pydicom/filereader.py", "dcmread", "ct"),
    ("build_fileset: read_header (dcmseal's header walk)", "dcmseal/part10/header.py", "read_header", "ct"),
    (
        "build_fileset: records and keys (_records, _insert)",
        "dcmseal/media/fileset/records.py",
        "_insert",
        "ct",
    ),
    ("build_fileset: DICOMDIR encoding (one pass)", "dcmseal/media/dicomdir.py", "encode_dicomdir", "ct"),
    (
        "build_fileset: FileSet.write (copies every file, writes DICOMDIR)",
        "pydicom/fileset.py",
        "write",
        "ct",
    ),
    ("FileSet.write: load (re-reads the DICOMDIR)", "pydicom/fileset.py", "load", "ct"),
    ("shutil.copyfile (pydicom FileSet.write, conform)", "shutil.py", "copyfile", "ct"),
    ("shutil.copyfileobj (conform, copy of each source)", "shutil.py", "copyfileobj", "ct"),
    ("posix.fsync (every caller)", "~", "<built-in method posix.fsync>", "tt"),
    ("cms encrypt (seal: read, digest, encrypt, write)", "dcmseal/cms/envelope.py", "encrypt", "ct"),
    ("cms decrypt (unseal)", "dcmseal/cms/envelope.py", "decrypt", "ct"),
    ("pycdlib add_file (mastering)", "pycdlib/pycdlib.py", "add_file", "ct"),
    ("pycdlib write_fp (ISO writing)", "pycdlib/pycdlib.py", "write_fp", "ct"),
    ("extract_iso (copy out of the image)", "dcmseal/reader/isofiles.py", "extract_iso", "ct"),
    ("read_file_meta (every caller)", "dcmseal/part10/fileformat.py", "read_file_meta", "ct"),
    ("is_secure_file", "dcmseal/part10/secure.py", "is_secure_file", "ct"),
    ("shutil.rmtree (staging clean-up)", "shutil.py", "rmtree", "ct"),
    ("PBKDF2 derive", "dcmseal/cms/kdf.py", "derive", "ct"),
)


def _buckets(stats: pstats.Stats) -> list[dict[str, Any]]:
    # typeshed does not declare Stats.stats, the raw table pstats builds its reports from.
    table = stats.stats  # type: ignore[attr-defined]
    out = []
    for label, suffix, func, which in _BUCKETS:
        seconds, calls = 0.0, 0
        for (file, _line, name), (_cc, nc, tt, ct, _callers) in table.items():
            if name == func and (file == suffix or file.endswith(suffix)):
                seconds += ct if which == "ct" else tt
                calls += nc
        out.append({"what": label, "s": round(seconds, 3), "calls": calls})
    return out


def _top(stats: pstats.Stats, key: int, n: int) -> list[dict[str, Any]]:
    # typeshed does not declare Stats.stats, the raw table pstats builds its reports from.
    table = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda kv: kv[1][key], reverse=True)[:n]
    return [
        {"function": _label(k), "calls": v[1], "tottime_s": round(v[2], 3), "cumtime_s": round(v[3], 3)}
        for k, v in rows
    ]


def do_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """Burn and open in this process (workers=1) under cProfile; then both again with and without fsync."""
    results: dict[str, Any] = {}
    work = Path(spec["work"])
    spans = Spans()
    instrument_shared(spans)
    instrument_burn(spans)
    instrument_open(spans)
    disabled = {"on": False}
    real_fsync = os.fsync

    def fsync(fd: FileDescriptorLike) -> None:
        where = spans.stack[-1] if spans.stack else "(outside)"
        started = time.perf_counter()
        try:
            if not disabled["on"]:
                real_fsync(fd)
        finally:
            spans.fsync_s[where] += time.perf_counter() - started
            spans.fsync_calls[where] += 1

    os.fsync = fsync

    def fresh_spans() -> None:
        for d in (spans.seconds, spans.calls, spans.fsync_s, spans.fsync_calls):
            d.clear()

    def one(kind: str, tag: str, profile: bool) -> dict[str, Any]:
        fresh_spans()
        iso = work / f"profile-{tag}.iso"
        sub = {**spec, "out": str(iso), "workers": 1, "expect_files": len(spec["sources"])}
        if kind == "open":
            sub.update(medium=str(iso), out=str(work / f"profile-{tag}-opened"))
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        try:
            if kind == "burn":
                result, wall, _ = _burn(sub, None)
                summary = _burn_summary(result, wall, sub)
            else:
                result, wall = _open(sub, None)
                summary = _open_summary(result, wall, sub)
        finally:
            if profiler is not None:
                profiler.disable()
        summary.update(spans.to_json())
        if profiler is not None:
            prof_path = Path(spec["prof_prefix"] + f"-{kind}.prof")
            profiler.dump_stats(prof_path)
            stats = pstats.Stats(profiler)
            summary["prof_file"] = str(prof_path)
            summary["top_tottime"] = _top(stats, 2, 25)
            summary["top_cumtime"] = _top(stats, 3, 40)
            summary["buckets"] = _buckets(stats)
        return summary

    # cProfile (fsync on), then plain timings with fsync on and off, all with workers=1.
    results["burn_cprofile"] = one("burn", "cprof", profile=True)
    results["open_cprofile"] = one("open", "cprof", profile=True)
    # Alternate with and without fsync, twice, and keep the faster of each: the machine is shared.
    for attempt in range(2):
        for tag, off in (("fsync", False), ("nofsync", True)):
            disabled["on"] = off
            for kind in ("burn", "open"):
                got = one(kind, f"{tag}{attempt}", profile=False)
                kept = results.get(f"{kind}_{tag}")
                got["walls_s"] = [*(kept["walls_s"] if kept else []), round(got["wall_s"], 3)]
                if kept is None or got["wall_s"] < kept["wall_s"]:
                    results[f"{kind}_{tag}"] = got
                else:
                    kept["walls_s"] = got["walls_s"]
    disabled["on"] = False
    for path in work.glob("profile-*"):
        cmsb.clear(path)
    return results


CHILD_MODES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "seal": do_seal,
    "burn": do_burn,
    "open": do_open,
    "profile": do_profile,
}


def child_main(mode: str, spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    result = CHILD_MODES[mode](spec)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["child_self_cpu_s"] = round(
        usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime, 3
    )
    Path(spec["result"]).write_text(json.dumps(result, indent=1))
    return 0


# -- parent side: measured steps ----------------------------------------------------------------------
def children_written_bytes() -> int:
    """Bytes our reaped descendants dirtied in files (``ru_oublock``: 512-byte units on Linux)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock * 512


def measured(prepare: Callable[[], object], action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``action`` on a quiet machine (re-run when other jobs kept > 0.15 cores busy), as bench_cms does.

    ``action`` returns its own numbers (its ``wall_s`` at least) plus ``process_wall_s``.
    """
    discarded: list[float] = []
    for attempt in range(cmsb.QUIET.retries + 1):
        prepare()
        cmsb.settle()
        quiet = cmsb.wait_for_quiet() if cmsb.QUIET.max_wait_s > 0 else True
        load = os.getloadavg()[0]
        busy, ours, written = cmsb.system_busy_s(), cmsb.our_cpu_s(), children_written_bytes()
        started = time.perf_counter()
        out = action()
        span = time.perf_counter() - started
        cmsb.reap_orphans()
        ours_s = cmsb.our_cpu_s() - ours
        other = max(0.0, cmsb.system_busy_s() - busy - ours_s) / span
        if other > cmsb.QUIET.max_other_cores and attempt < cmsb.QUIET.retries:
            discarded.append(round(out["wall_s"], 3))
            print(f"  disturbed (other jobs: {other:.2f} cores); again", file=sys.stderr)
            continue
        break
    out.update(
        our_cores=round(ours_s / span, 2),
        other_cores=round(other, 2),
        started_quiet=quiet,
        load_1min_at_start=round(load, 2),
        files_written_mb=round((children_written_bytes() - written) / MB, 1),
        discarded_runs_s=discarded,
    )
    return out


def run_child(mode: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    spec_path = work / f"spec-{mode}.json"
    result_path = work / f"result-{mode}.json"
    result_path.unlink(missing_ok=True)
    spec = {**spec, "result": str(result_path)}
    spec_path.write_text(json.dumps(spec))
    spec_path.chmod(0o600)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--spec", str(spec_path)]
    proc = cmsb.check(cmsb.run_measured(cmd, env=cmsb.child_env()), f"child {mode}")
    out: dict[str, Any] = json.loads(result_path.read_text())
    out["process_wall_s"] = proc.wall_s
    out["peak_rss_mb"] = round(proc.maxrss_mb, 1)
    return out


def cli_env(work: Path) -> dict[str, str]:
    """Defaults everywhere, but the audit log in the work folder."""
    return {**cmsb.child_env(), "DCMSEAL_AUDIT_LOG": str(work / "audit-cli.log")}


def run_cli(args: list[str], work: Path, what: str) -> dict[str, Any]:
    cmd = [*cmsb.dcmseal_cli(), *args, "--json"]
    proc = cmsb.check(cmsb.run_measured(cmd, env=cli_env(work)), what)
    report = json.loads(proc.stdout)
    return {"process_wall_s": proc.wall_s, "wall_s": proc.wall_s, "peak_rss_mb": round(proc.maxrss_mb, 1),
            "report": report}  # fmt: skip


# -- the disk, measured like the primitives ------------------------------------------------------------
def measure_disk(work: Path, file_kib: int) -> dict[str, Any]:
    """What durable writes cost here: one big file + fsync, and many files written as atomic_write does."""
    from dcmseal.fsutil import atomic_write

    folder = work / "disk"
    folder.mkdir()
    block = os.urandom(MIB)
    big = folder / "big"
    cmsb.settle()
    started = time.perf_counter()
    with open(big, "wb") as fp:
        for _ in range(256):
            fp.write(block)
        fp.flush()
        os.fsync(fp.fileno())
    big_mbs = 256 * MIB / (time.perf_counter() - started) / MB
    data = os.urandom(file_kib * 1024)
    n = 100
    rates = {}
    for label, durable in (("atomic_write", True), ("plain", False)):
        cmsb.settle()
        started = time.perf_counter()
        for i in range(n):
            if durable:
                with atomic_write(folder / f"{label}{i:04d}") as out:
                    out.write(data)
            else:
                (folder / f"{label}{i:04d}").write_bytes(data)
        rates[label] = time.perf_counter() - started
    shutil.rmtree(folder)
    return {
        "sequential_256mib_fsync_mbs": round(big_mbs, 1),
        "atomic_write_files": n,
        "atomic_write_file_kib": file_kib,
        "atomic_write_mbs": round(n * len(data) / rates["atomic_write"] / MB, 1),
        "atomic_write_ms_per_file": round(rates["atomic_write"] / n * 1000, 2),
        "plain_write_mbs": round(n * len(data) / rates["plain"] / MB, 1),
    }


# -- report ------------------------------------------------------------------------------------------
BURN_STEPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("collect", ("collect",), "read the File Meta of every source"),
    (
        "conform",
        ("conform", "preamble"),
        "stage each file (a hard link; a copy where the preamble is zeroed or the file converted)",
    ),
    (
        "DICOMDIR planning",
        ("dicomdir",),
        "build_fileset: read headers (dcmseal.part10.header), build records, hard-link to File IDs, write DICOMDIR",
    ),
    (
        "seal planning",
        ("seal",),
        "ISO: prepare_seal of every file (PBKDF2 once, keys wrapped, sizes fixed); folder: seal_files on 2 workers",
    ),
    (
        "write (ISO)",
        ("write",),
        "write_iso: pycdlib lays the image out with holes, 2 workers seal every file into its extent, fsync",
    ),
    ("registry", ("registry",), "new medium ID + record (SQLite)"),
    ("audit", ("audit",), "Export audit message (append + fsync)"),
    (
        "staging clean-up",
        ("cleanup",),
        "rmtree of the staging folder (links, placeholders, converted copies)",
    ),
)
OPEN_STEPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "ISO listing",
        ("extract",),
        "iso_file_extents: where each file lies in the image (read in place, no copy)",
    ),
    ("classify", ("classify",), "is it sealed? (reads each file's head)"),
    (
        "unseal (crypto)",
        ("unseal",),
        "unseal_files on 2 workers, reading the image in place: PBKDF2 once, AES-CBC + digest, one syncfs",
    ),
    ("File Meta of every file", ("facts",), "read_file_meta of each opened file"),
    ("DICOMDIR check/rebuild", ("dicomdir",), "read_dicomdir + check_agreement (+ build_fileset if rebuilt)"),
    (
        "summaries",
        ("summaries",),
        "dcmread of each file for the audit summary (only when the DICOMDIR is not used)",
    ),
    ("staging clean-up", ("cleanup",), "rmtree of the staging folder"),
    ("audit", ("audit",), "Import audit message"),
)


def shares(
    run: dict[str, Any], steps: tuple[tuple[str, tuple[str, ...], str], ...], rest_what: str
) -> list[dict[str, Any]]:
    wall = run["wall_s"]
    spans = run["spans"]
    rows = []
    for label, keys, what in steps:
        seconds = sum(spans.get(k, {}).get("s", 0.0) for k in keys)
        fsync = sum(run["fsync"].get(k, {}).get("s", 0.0) for k in keys)
        rows.append({"step": label, "s": round(seconds, 3), "share": round(seconds / wall, 4),
                     "fsync_in_process_s": round(fsync, 3), "what": what})  # fmt: skip
    rest = wall - sum(r["s"] for r in rows)
    rows.append({"step": "rest", "s": round(rest, 3), "share": round(rest / wall, 4), "fsync_in_process_s": 0.0,
                 "what": rest_what})  # fmt: skip
    return rows


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose wall clock is the median (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2]


def summarize_runs(runs: list[dict[str, Any]], nbytes: int, nfiles: int) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    median = statistics.median(walls)
    return {
        "median_s": round(median, 3),
        "runs_s": [round(w, 3) for w in walls],
        "mb_per_s": round(nbytes / median / MB, 1),
        "files_per_s": round(nfiles / median, 1),
    }


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    seal, burn, open_cli = result["seal_tree"], result["burn"], result["open_cli"]
    ratio = burn["mb_per_s"] / seal["mb_per_s"]
    return [
        {"target": "burn MB/s >= 60 % of seal_tree MB/s (same files, same run)", "value": round(ratio, 3),
         "needed": TARGET_BURN_FRACTION_OF_SEAL, "met": ratio >= TARGET_BURN_FRACTION_OF_SEAL},
        {"target": "open MB/s (dcmseal open, fresh process, wall clock) >= 1 GB/s",
         "value": open_cli["mb_per_s"], "needed": TARGET_OPEN_MBS, "met": open_cli["mb_per_s"] >= TARGET_OPEN_MBS},
        {"target": "open MB/s in-process (no interpreter start) >= 1 GB/s",
         "value": result["open_inprocess"]["mb_per_s"], "needed": TARGET_OPEN_MBS,
         "met": result["open_inprocess"]["mb_per_s"] >= TARGET_OPEN_MBS},
        {"target": "burn: one PBKDF2 derivation", "value": burn["pbkdf2_derivations"], "needed": TARGET_DERIVATIONS,
         "met": all(d == TARGET_DERIVATIONS for d in burn["pbkdf2_derivations_all"])},
        {"target": "open (fresh process): kdf_derivations = 1", "value": open_cli["kdf_derivations"],
         "needed": TARGET_DERIVATIONS, "met": all(d == TARGET_DERIVATIONS for d in open_cli["kdf_derivations_all"])},
    ]  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    m, prim, disk = result["machine"], result["primitives"], result["disk"]
    study = result["study"]
    seal, cli_seal, burn = result["seal_tree"], result["seal_cli"], result["burn"]
    open_cli, open_in = result["open_cli"], result["open_inprocess"]
    gib = study["bytes"] / 1024**3
    lines = [
        f"`{result['command']}` — {result['date']}; {m['cpu_model']}, {m['cpus']} CPUs ({m.get('hypervisor', '')}), "
        f"{m.get('mem_gib', '?')} GiB; Python {m['python']}; cryptography {m['cryptography']}; dcmseal "
        f"{m.get('git', '?')} (src {m.get('src_sha256', '?')}"
        + ("" if result.get("src_sha256_at_end") == m.get("src_sha256") else ", **changed during the run**")
        + f"). Load average at start: {', '.join(f'{x:.2f}' for x in result['load_average_at_start'])}.",
        "",
        f"Study: {study['files']:,} CT instances of {study['file_bytes'] / 1024:,.0f} KiB "
        f"({study['bytes'] / MB:,.1f} MB = {gib:.2f} GiB), Explicit VR Little Endian, one series; "
        f"{result['args']['runs']} run(s), medians. Every opened instance equals its source byte for byte: "
        f"{'yes' if result.get('verified') else 'NO'}.",
        "",
        "| step | median s | runs s | MB/s | files/s | PBKDF2 | cores used | other jobs (cores) "
        "| files written MB | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        ("seal_tree (in-process, 2 workers)", seal, seal["pbkdf2_derivations"]),
        ("`dcmseal seal` (CLI process, as bench_cms (b))", cli_seal, cli_seal["pbkdf2_derivations"]),
        ("**burn** to ISO (in-process)", burn, burn["pbkdf2_derivations"]),
        ("`dcmseal open` ISO (fresh process)", open_cli, open_cli["kdf_derivations"]),
        ("open_medium (in-process, timed steps)", open_in, open_in["kdf_derivations"]),
    ]
    for label, r, kdf in rows:
        lines.append(
            f"| {label} | {r['median_s']:.2f} | {', '.join(f'{x:.2f}' for x in r['runs_s'])} | "
            f"{r['mb_per_s']:,.0f} | {r['files_per_s']:,.0f} | {kdf} | "
            f"{r['our_cores']:.2f} | {r['other_cores']:.2f} | {r['files_written_mb']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        f"`dcmseal seal`/`open` own `elapsed_s` (no interpreter start): seal {cli_seal['own_elapsed_s']:.2f} s "
        f"({study['bytes'] / cli_seal['own_elapsed_s'] / MB:,.0f} MB/s), open {open_cli['own_elapsed_s']:.2f} s "
        f"({study['bytes'] / open_cli['own_elapsed_s'] / MB:,.0f} MB/s). ISO image: "
        f"{burn['size_bytes'] / MB:,.1f} MB. Registry open (schema check, not in burn's time): "
        f"{burn['registry_open_s']:.2f} s.",
        "",
        "| target | measured | needed | |",
        "|---|---:|---:|---|",
    ]
    for v in result["verdicts"]:
        lines.append(
            f"| {v['target']} | {v['value']:g} | {v['needed']:g} | {'met' if v['met'] else '**missed**'} |"
        )
    for title, key, steps_total in (
        ("Burn", "burn_shares", burn),
        ("Open (in-process)", "open_shares", open_in),
    ):
        lines += [
            "",
            f"{title}: {steps_total['median_s']:.2f} s; where the time goes (timers around the functions called, "
            "median run; fsync = time in fsync in the main process, the workers' own are not counted):",
            "",
            "| step | s | share | fsync s | what |",
            "|---|---:|---:|---:|---|",
        ]
        for row in result[key]:
            lines.append(
                f"| {row['step']} | {row['s']:.2f} | {row['share'] * 100:.1f} % | {row['fsync_in_process_s']:.2f} | "
                f"{row['what']} |"
            )
    burn_run, open_run = median_run(burn["runs"]), median_run(open_in["runs"])
    pb = burn_run["spans"].get("pbkdf2", {}).get("s", 0.0)
    po = open_run["spans"].get("pbkdf2", {}).get("s", 0.0)
    every = "; ".join(
        f"{workflow} {step} {', '.join(f'{x:.2f}' for x in values)}"
        for workflow, steps in result.get("step_runs_s", {}).items()
        for step, values in steps.items()
    )
    lines += [
        "",
        f"PBKDF2 (600k, one derivation): {pb * 1000:.0f} ms of the burn's seal step, {po * 1000:.0f} ms of the "
        f"open's unseal step; primitive: {prim['pbkdf2_sha256_600k_ms']} ms. Burn's seal step "
        f"{burn_run['spans']['seal']['s']:.2f} s (planning; sealing into an ISO happens in its write step, "
        f"{burn_run['spans'].get('write', {}).get('s', 0.0):.2f} s) against seal_tree's {seal['median_s']:.2f} s "
        "on the same files; "
        f"DICOMDIR planning {burn_run['spans']['dicomdir']['s'] / study['files'] * 1000:.2f} ms per file"
        + (
            f" ({burn_run['spans']['dicomdir']['cpu_s'] / study['files'] * 1000:.2f} ms CPU per file)."
            if "cpu_s" in burn_run["spans"]["dicomdir"]
            else "."
        )
        + (f" Steps in every run (s): {every}." if every else ""),
        "",
        "Burn as its progress callback sees it (seconds from the start of `burn()`, median run):",
        "",
        "| span | from | to | s |",
        "|---|---:|---:|---:|",
    ]
    for label, start, end, seconds in result["burn_timeline"]:
        lines.append(f"| {label} | {start:.2f} | {end:.2f} | {seconds:.2f} |")
    lines += [
        "",
        "| limit on this machine | MB/s |",
        "|---|---:|",
        f"| AES-256-CBC encrypt, one core | {prim['aes256_cbc_encrypt_mbs']:,.0f} |",
        f"| AES-256-CBC decrypt, one core | {prim['aes256_cbc_decrypt_mbs']:,.0f} |",
        f"| SHA-256, one core | {prim['sha256_mbs']:,.0f} |",
        f"| digest + CBC encrypt, one core (x2 cores) | {prim['digest_plus_cbc_encrypt_mbs']:,.0f} "
        f"({2 * prim['digest_plus_cbc_encrypt_mbs']:,.0f}) |",
        f"| digest + CBC decrypt, one core (x2 cores) | {prim['digest_plus_cbc_decrypt_mbs']:,.0f} "
        f"({2 * prim['digest_plus_cbc_decrypt_mbs']:,.0f}) |",
        f"| disk: 256 MiB sequential write + fsync | {disk['sequential_256mib_fsync_mbs']:,.0f} |",
        f"| disk: {disk['atomic_write_files']} x {disk['atomic_write_file_kib']} KiB via `atomic_write` (fsync each) "
        f"| {disk['atomic_write_mbs']:,.0f} ({disk['atomic_write_ms_per_file']:.1f} ms/file) |",
        f"| disk: same files, plain writes (page cache) | {disk['plain_write_mbs']:,.0f} |",
    ]
    prof = result.get("profile")
    if prof:
        n = prof["files"]
        lines += [
            "",
            f"Profile: burn and open of {n} of the files in one process, `workers=1` (crypto in-process), "
            "under cProfile (times inflated for Python-heavy code), then without cProfile with and without fsync:",
            "",
            "| | with fsync s | fsync disabled s | fsync cost |",
            "|---|---:|---:|---:|",
        ]
        for kind in ("burn", "open"):
            a, b = prof[f"{kind}_fsync"]["wall_s"], prof[f"{kind}_nofsync"]["wall_s"]
            lines.append(f"| {kind} | {a:.2f} | {b:.2f} | {(a - b) / a * 100:.0f} % |")
        lines += ["", "(fastest of 2 runs each; workers=1)"]
        for kind in ("burn", "open"):
            p = prof[f"{kind}_cprofile"]
            lines += ["", f"{kind} under cProfile: {p['wall_s']:.2f} s", "", "| function(s) | s | calls |",
                      "|---|---:|---:|"]  # fmt: skip
            for b in p["buckets"]:
                if b["calls"]:
                    lines.append(f"| {b['what']} | {b['s']:.2f} | {b['calls']:,} |")
    return "\n".join(lines)


def burn_timeline(run: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """Spans between progress callbacks: what the brief calls the stages, edges as the callback shows them."""
    t = run["timeline"]
    wall = run["wall_s"]
    points = [
        ("start -> 'collect'", 0.0, t["collect"]["first_s"]),
        ("collect ('collect' -> first 'conform')", t["collect"]["first_s"], t["conform"]["first_s"]),
        ("conform (first -> last 'conform' callback)", t["conform"]["first_s"], t["conform"]["last_s"]),
        ("last 'conform' -> first 'seal' (last file's conform, build_fileset, PBKDF2, pool start, first seal)",
         t["conform"]["last_s"], t["seal"]["first_s"]),
        ("seal (first -> last 'seal')", t["seal"]["first_s"], t["seal"]["last_s"]),
        ("last 'seal' -> first 'write' (README, escrow, sizes, pycdlib mastering)",
         t["seal"]["last_s"], t["write"]["first_s"]),
        ("write (first -> last 'write')", t["write"]["first_s"], t["write"]["last_s"]),
        ("last 'write' -> end (fsync of the image, registry, rename, clean-up, audit)", t["write"]["last_s"], wall),
    ]  # fmt: skip
    return [(label, round(a, 3), round(b, 3), round(b - a, 3)) for label, a, b in points]


# -- main --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="instances in the study")
    parser.add_argument("--file-kib", type=int, default=512, help="size of each instance")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {PROFILE_FILES} files")
    parser.add_argument("--runs", type=int, default=1, help="runs of each measurement (median)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temp dir)")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile step")
    parser.add_argument("--retries", type=int, default=2, help="re-runs of a step other jobs disturbed")
    parser.add_argument("--idle-wait", type=float, default=60.0, help="seconds to wait for an idle machine")
    parser.add_argument("--render", type=Path, default=None, help="only print the tables of a results JSON")
    parser.add_argument("--child", choices=sorted(CHILD_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.spec)
    if args.render is not None:
        print(markdown(json.loads(args.render.read_text())))
        return 0
    if args.quick:
        args.files = PROFILE_FILES
    cmsb.QUIET.max_wait_s = args.idle_wait
    cmsb.QUIET.retries = args.retries
    subreaper = cmsb.become_subreaper()
    load_at_start = os.getloadavg()

    base = args.workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dcmseal-bench-media-", dir=base))
    password = "pw-" + secrets.token_urlsafe(24)
    password_file = work / "password.txt"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    date = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    stamp = date.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    try:
        result: dict[str, Any] = {
            "schema": "dcmseal.bench-media/1",
            "date": date.strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join([".venv/bin/python", *sys.argv]),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "load_average_at_start": load_at_start,
            "machine": cmsb.machine(),
            "subreaper": subreaper,
        }
        print(
            f"load average at start: {load_at_start}; measuring the primitives and the disk ...",
            file=sys.stderr,
        )
        if cmsb.QUIET.max_wait_s > 0:
            cmsb.wait_for_quiet()
        result["primitives"] = cmsb.measure_primitives(64 if args.quick else 256)
        result["disk"] = measure_disk(work, args.file_kib)

        print(f"generating {args.files} x {args.file_kib} KiB ...", file=sys.stderr)
        study_dir = work / "study"
        made = make_study(study_dir, args.files, args.file_kib * 1024)
        names = sorted(made["uids"])
        nbytes = sum((study_dir / n).stat().st_size for n in names)
        result["study"] = {
            "files": args.files,
            "file_bytes": args.file_kib * 1024,
            "bytes": nbytes,
            "rows": made["rows"],
            "pad_bytes": made["pad_bytes"],
            "generate_s": made["generate_s"],
        }

        from dcmseal.keys.escrow import create_escrow_identity

        escrow = create_escrow_identity(
            "Bench Hospital", work / "escrow", passphrase=secrets.token_urlsafe(18).encode()
        )
        common = {
            "password": password,
            "workers": WORKERS,
            "registry": f"sqlite:///{work / 'registry.sqlite3'}",
            "audit": str(work / "audit.log"),
            "escrow_cert": str(escrow.certificate_path),
            "expect_files": args.files,
        }
        iso = work / "medium.iso"
        sealed, sealed_cli = work / "sealed", work / "sealed-cli"
        opened_cli, opened_in = work / "opened-cli", work / "opened-inprocess"
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # Outputs of many files are moved aside, not deleted, until the end: see bench_cms.retire.
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}: seal_tree ...", file=sys.stderr)
            runs["seal_tree"].append(
                measured(
                    lambda: cmsb.retire(sealed),
                    lambda: run_child("seal", {**common, "study": str(study_dir), "out": str(sealed)}, work),
                )
            )
            cmsb.retire(sealed)
            print("  dcmseal seal (CLI) ...", file=sys.stderr)

            def cli_seal() -> dict[str, Any]:
                out = run_cli(["seal", str(study_dir), "--out", str(sealed_cli), "--password-file",
                               str(password_file)], work, "dcmseal seal")  # fmt: skip
                summary = out.pop("report")["summary"]
                if summary["failed"]:
                    raise SystemExit("dcmseal seal reported failures")
                return {**out, "pbkdf2_derivations": summary["pbkdf2_derivations"],
                        "own_elapsed_s": summary["elapsed_s"], "workers": summary["workers"]}  # fmt: skip

            runs["seal_cli"].append(measured(lambda: cmsb.retire(sealed_cli), cli_seal))
            cmsb.retire(sealed_cli)
            print("  burn ...", file=sys.stderr)
            runs["burn"].append(
                measured(
                    lambda: cmsb.clear(iso),
                    lambda: run_child("burn", {**common, "sources": [str(study_dir)], "out": str(iso)}, work),
                )
            )

            def open_cli_step() -> None:
                print("  dcmseal open (CLI, fresh process) ...", file=sys.stderr)

                def cli_open() -> dict[str, Any]:
                    out = run_cli(["open", str(iso), "--out", str(opened_cli), "--password-file",
                                   str(password_file), "--workers", str(WORKERS)], work, "dcmseal open")  # fmt: skip
                    report = out.pop("report")
                    summary = report["summary"]
                    if summary["failed"] or report["dicomdir_rebuilt"] or report["disagreements"]:
                        raise SystemExit(f"dcmseal open: {json.dumps(summary)}")
                    out["files"] = report["files"]
                    return {**out, "kdf_derivations": report["kdf_derivations"], "opened": summary["opened"],
                            "own_elapsed_s": summary["elapsed_s"]}  # fmt: skip

                runs["open_cli"].append(measured(lambda: cmsb.retire(opened_cli), cli_open))
                if "verified" not in result:
                    # Correctness, untimed: every instance came back byte for byte (inputs have a zero preamble).
                    by_uid = {
                        f["sop_instance_uid"]: f["file_id"]
                        for f in runs["open_cli"][-1]["files"]
                        if f["file_id"]
                    }
                    bad = []
                    for n in names:
                        file_id = by_uid.get(made["uids"][n])
                        if file_id is None or sha256_file(opened_cli / file_id) != sha256_file(study_dir / n):
                            bad.append(n)
                    result["verified"] = not bad
                    if bad:
                        raise SystemExit(f"open did not give back {len(bad)} file(s), first {bad[0]}")
                runs["open_cli"][-1].pop("files", None)
                cmsb.retire(opened_cli)

            def open_inprocess_step() -> None:
                print("  open_medium (in-process, timed steps) ...", file=sys.stderr)
                runs["open_inprocess"].append(
                    measured(
                        lambda: cmsb.retire(opened_in),
                        lambda: run_child(
                            "open", {**common, "medium": str(iso), "out": str(opened_in)}, work
                        ),
                    )
                )
                cmsb.retire(opened_in)

            # Alternate which open goes first: the one right after the burn meets its write-back and discards.
            for step in (open_cli_step, open_inprocess_step)[:: 1 if run % 2 == 0 else -1]:
                step()

        for key, rs in runs.items():
            summary = summarize_runs(rs, nbytes, args.files)
            for field in ("our_cores", "other_cores", "files_written_mb", "peak_rss_mb"):
                summary[field] = statistics.median(r[field] for r in rs)
            summary["runs"] = rs
            result[key] = summary
        result["seal_tree"]["pbkdf2_derivations"] = runs["seal_tree"][0]["pbkdf2_derivations"]
        result["seal_cli"]["pbkdf2_derivations"] = runs["seal_cli"][0]["pbkdf2_derivations"]
        result["seal_cli"]["own_elapsed_s"] = statistics.median(r["own_elapsed_s"] for r in runs["seal_cli"])
        result["burn"]["pbkdf2_derivations"] = runs["burn"][0]["pbkdf2_derivations"]
        result["burn"]["pbkdf2_derivations_all"] = [r["pbkdf2_derivations"] for r in runs["burn"]]
        result["burn"]["size_bytes"] = runs["burn"][0]["size_bytes"]
        result["burn"]["registry_open_s"] = runs["burn"][0]["registry_open_s"]
        result["burn"]["profile"] = runs["burn"][0]["profile"]
        result["open_cli"]["kdf_derivations"] = runs["open_cli"][0]["kdf_derivations"]
        result["open_cli"]["kdf_derivations_all"] = [r["kdf_derivations"] for r in runs["open_cli"]]
        result["open_cli"]["own_elapsed_s"] = statistics.median(r["own_elapsed_s"] for r in runs["open_cli"])
        result["open_inprocess"]["kdf_derivations"] = runs["open_inprocess"][0]["kdf_derivations"]
        burn_median, open_median = median_run(runs["burn"]), median_run(runs["open_inprocess"])
        result["burn_shares"] = shares(
            burn_median, BURN_STEPS, "README, escrow copy of the password (RSA), summaries, sizes, renames"
        )
        result["open_shares"] = shares(open_median, OPEN_STEPS, "listing, renames, result")
        result["burn_timeline"] = burn_timeline(burn_median)
        result["step_runs_s"] = {
            "burn": {k: [round(r["spans"].get(k, {}).get("s", 0.0), 2) for r in runs["burn"]]
                     for k in ("conform", "dicomdir", "seal", "write", "cleanup")},
            "open": {k: [round(r["spans"].get(k, {}).get("s", 0.0), 2) for r in runs["open_inprocess"]]
                     for k in ("extract", "unseal", "dicomdir")},
        }  # fmt: skip
        result["verdicts"] = verdicts(result)

        if not args.no_profile:
            print(
                f"profiling burn and open of {min(PROFILE_FILES, args.files)} files (workers=1) ...",
                file=sys.stderr,
            )
            chosen = [str(study_dir / n) for n in names[:PROFILE_FILES]]
            cmsb.settle()
            profile = run_child(
                "profile",
                {**common, "sources": chosen, "work": str(work),
                 "prof_prefix": str(args.results_dir / f"media-{stamp}"), "expect_files": len(chosen)},
                work,
            )  # fmt: skip
            profile["files"] = len(chosen)
            result["profile"] = profile
        result["src_sha256_at_end"] = cmsb.src_fingerprint()
        if result["src_sha256_at_end"] != result["machine"]["src_sha256"]:
            print("warning: src/dcmseal changed during the run", file=sys.stderr)
        result["load_average_at_end"] = os.getloadavg()
        result["total_s"] = round(time.perf_counter() - started, 1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = args.results_dir / f"media-{stamp}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nwritten {out} ({result['total_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
