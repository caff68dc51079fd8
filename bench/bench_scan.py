"""``dcmseal scan`` throughput side by side with a raw read of the same files and with pydicom, warm and cold.

One run generates two corpora on disk (``--workdir``, default a temporary folder beside the repository):

* ``small``: ``--files`` (20,000) small Part 10 files of about 9 KB (Explicit VR Little Endian, a CT-like
  header of ~40 elements, 64x64x16-bit pixels), 1,000 per folder;
* ``large``: ``--large-files`` (400) CT-like files of 512 KiB (512x512x16-bit pixels);
* ``varied``: ``--varied-files`` (2,000) files like ``small`` whose value lengths all differ, so no two
  files share an element layout and the scanner's LayoutCache never hits (its worst case).

and times, interleaved run by run (``--runs``, median reported):

1. ``scan_paths([folder])``: the library call ``dcmseal scan`` makes (pool of one process per core);
2. the same with ``workers=1`` (one process);
3. a raw read of the same files: walk the folder, ``open``/``read`` every byte/``close``, one process;
4. ``pydicom.dcmread(path, stop_before_pixels=True)`` over the same walk (on ``--pydicom-files`` of them);
5. cold: 1 and 3 again after ``posix_fadvise(POSIX_FADV_DONTNEED)`` on every file (the page cache drops
   the files' data; directory entries and inodes stay cached; no root needed; the corpus is fsynced first).

    .venv/bin/python bench/bench_scan.py               # ~2-3 minutes
    .venv/bin/python bench/bench_scan.py --quick       # 2,000 files, 1 run
    .venv/bin/python bench/bench_scan.py --render bench/results/scan-<time>.json

Writes ``bench/results/scan-<UTC time>[-quick].json`` and prints the markdown table of BENCHMARKS.md.
The machine is shared: before each timed run the script waits (``--idle-wait``, 30 s at most) until other
jobs keep fewer than 0.3 cores busy (from /proc/stat), and records how busy they were; the CPU time of
each measurement (its own process and the pool workers) is recorded too, as a load-independent figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
_PLACEHOLDER = "1.2.999.999.999999999999999999999999999999.1"  # replaced by a unique UID of the same length


def _template(pixels_side: int) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(_PLACEHOLDER)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = _PLACEHOLDER
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = "CT"
    ds.Manufacturer = "BENCH"
    ds.InstitutionName = "Bench Hospital"
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.StudyDescription = "CT CHEST"
    ds.SeriesDescription = "AXIAL 1mm"
    ds.ManufacturerModelName = "Model"
    ds.PatientName = "Bench^Patient"
    ds.PatientID = "BENCH-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.StudyInstanceUID = "1.2.3.4.5.6.7.8.9.1"
    ds.SeriesInstanceUID = "1.2.3.4.5.6.7.8.9.2"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = "1.2.3.4.5.6.7.8.9.3"
    ds.SliceLocation = "0"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = pixels_side
    ds.PixelSpacing = [0.5, 0.5]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.PixelData = os.urandom(pixels_side * pixels_side * 2)
    ds.preamble = bytes(128)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _generate(root: Path, count: int, pixels_side: int, per_folder: int = 1000) -> int:
    template = _template(pixels_side)
    placeholder = _PLACEHOLDER.encode()
    assert template.count(placeholder) == 2
    total = 0
    for index in range(count):
        folder = root / f"S{index // per_folder:04d}"
        if index % per_folder == 0:
            folder.mkdir(parents=True)
        uid = f"1.2.999.{index:0{len(_PLACEHOLDER) - 8}d}".encode()
        assert len(uid) == len(placeholder)
        data = template.replace(placeholder, uid)
        (folder / f"IM{index:06d}").write_bytes(data)
        total += len(data)
    return total


def _generate_varied(root: Path, count: int) -> int:
    """Files whose layouts all differ (value lengths vary), so no two share a walk (no LayoutCache hit)."""
    from pydicom import dcmread
    from pydicom.uid import UID

    base = dcmread(io.BytesIO(_template(64)))
    root.mkdir(parents=True)
    total = 0
    for index in range(count):
        ds = base.copy()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(f"1.2.999.{index}")
        ds.InstanceNumber = index
        ds.SeriesDescription = "S" * (1 + index % 60)
        ds.StudyDescription = "D" * (1 + (index // 60) % 60)
        ds.ImagePositionPatient = [0, 0, -index * 0.625]
        path = root / f"IM{index:06d}"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return total


def _files(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames))
    return found


def _raw_read(root: Path) -> int:
    """Walk and read every byte of every file: the floor any scanner that reads whole files sits on."""
    total = 0
    for path in _files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            while chunk := os.read(fd, 1024 * 1024):
                total += len(chunk)
        finally:
            os.close(fd)
    return total


def _drop_cache(root: Path) -> None:
    for path in _files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _load() -> float:
    return os.getloadavg()[0]


def _busy_cores(seconds: float = 0.5) -> float:
    """Cores kept busy by everything on the machine over ``seconds`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    cores = os.cpu_count() or 1
    return cores * (busy1 - busy0) / max(total1 - total0, 1)


def _wait_for_quiet(limit_s: float, threshold: float = 0.3) -> float:
    """Wait (up to ``limit_s``) until other jobs keep fewer than ``threshold`` cores busy; return that load."""
    deadline = time.monotonic() + limit_s
    busy = _busy_cores()
    while busy > threshold and time.monotonic() < deadline:
        busy = _busy_cores()
    return busy


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(fn: Callable[[], object]) -> tuple[float, float, float, float, float]:
    """(wall s, load before, load after, CPU s of this process and of the pool workers it reaped, CPU s of
    this process alone)."""
    before = _load()
    own = time.process_time()
    cpu = own + _children_cpu()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    after = time.process_time()
    return wall, before, _load(), after + _children_cpu() - cpu, after - own


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pydicom import dcmread

    from dcmseal.scan import Verdict, scan_paths

    work = Path(tempfile.mkdtemp(prefix="bench-scan-", dir=args.workdir))
    try:
        small, large = work / "small", work / "large"
        small_bytes = _generate(small, args.files, 64)
        large_bytes = _generate(large, args.large_files, 512, per_folder=200)
        varied = work / "varied"
        varied_bytes = _generate_varied(varied, args.varied_files)
        varied_files = _files(varied)
        subprocess.run(["sync"], check=True)
        # Sanity: every generated file is clean (a benchmark of a scanner that flags everything means nothing).
        check = scan_paths([small])
        assert check.verdict is Verdict.CLEAN, check.verdict
        assert len(check.files) == args.files
        pydicom_files = _files(small)[: args.pydicom_files]

        def pydicom_read() -> None:
            for path in pydicom_files:
                dcmread(path, stop_before_pixels=True)

        measures: dict[str, Callable[[], object]] = {
            "scan (pool, 2 processes)": lambda: scan_paths([small]),
            "scan (1 process)": lambda: scan_paths([small], workers=1),
            "raw read (1 process)": lambda: _raw_read(small),
            "pydicom dcmread(stop_before_pixels) (1 process)": pydicom_read,
            "varied: scan (1 process)": lambda: scan_paths([varied], workers=1),
            "varied: pydicom dcmread(stop_before_pixels)": lambda: [
                dcmread(p, stop_before_pixels=True) for p in varied_files
            ],
            "large: scan (pool)": lambda: scan_paths([large]),
            "large: scan (1 process)": lambda: scan_paths([large], workers=1),
            "large: raw read (1 process)": lambda: _raw_read(large),
        }
        counts = {}
        for name in measures:
            if name.startswith("pydicom"):
                counts[name] = args.pydicom_files
            elif name.startswith("large"):
                counts[name] = args.large_files
            elif name.startswith("varied"):
                counts[name] = args.varied_files
            else:
                counts[name] = args.files
        cold: dict[str, tuple[Path, Callable[[], object]]] = {
            "cold: scan (pool)": (small, lambda: scan_paths([small])),
            "cold: raw read (1 process)": (small, lambda: _raw_read(small)),
            "cold large: scan (pool)": (large, lambda: scan_paths([large])),
            "cold large: raw read (1 process)": (large, lambda: _raw_read(large)),
        }
        for name, (root, _) in cold.items():
            counts[name] = args.files if root == small else args.large_files
        samples: dict[str, list[list[float]]] = {name: [] for name in [*measures, *cold]}
        for fn in measures.values():  # one warm-up each: page cache, imports, pool fork path
            fn()
        for run_index in range(args.runs):
            for name, fn in measures.items():
                others = _wait_for_quiet(args.idle_wait)
                samples[name].append([*_time(fn), others])
            for name, (root, fn) in cold.items():
                _drop_cache(root)
                others = _wait_for_quiet(args.idle_wait)
                samples[name].append([*_time(fn), others])
            print(f"run {run_index + 1}/{args.runs} done", file=sys.stderr)
        rows = []
        for name, runs in samples.items():
            median = statistics.median(r[0] for r in runs)
            rows.append(
                {
                    "name": name,
                    "files": counts[name],
                    "median_s": median,
                    "files_per_s": counts[name] / median,
                    "runs_s": [r[0] for r in runs],
                    "cpu_s": [r[3] for r in runs],
                    "median_cpu_s": statistics.median(r[3] for r in runs),
                    "parent_cpu_s": [r[4] for r in runs],
                    "median_parent_cpu_s": statistics.median(r[4] for r in runs),
                    "busy_cores_before": [r[5] for r in runs],
                    "load_before": [r[1] for r in runs],
                    "load_after": [r[2] for r in runs],
                }
            )
        return {
            "schema": "dcmseal.bench-scan/1",
            "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {
                "cpu": _cpu(),
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "kernel": platform.release(),
                "filesystem": "ext4 on /dev/vda (virtio)" if Path("/dev/vda").exists() else "unknown",
            },
            "corpus": {
                "small_files": args.files,
                "small_bytes": small_bytes,
                "large_files": args.large_files,
                "large_bytes": large_bytes,
                "varied_files": args.varied_files,
                "varied_bytes": varied_bytes,
            },
            "runs": args.runs,
            "rows": rows,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def render(result: dict[str, Any]) -> str:
    rows = {r["name"]: r for r in result["rows"]}
    lines = [
        f"Run {result['when']}, {result['machine']['cpu']}, {result['machine']['cores']} cores, Python "
        f"{result['machine']['python']}, {result['machine']['filesystem']}; median of {result['runs']} runs. "
        f"small = {result['corpus']['small_files']:,} files, {result['corpus']['small_bytes'] / 1e6:.0f} MB; "
        f"large = {result['corpus']['large_files']:,} files, {result['corpus']['large_bytes'] / 1e6:.0f} MB; "
        f"varied = {result['corpus'].get('varied_files', 0):,} files, each with its own layout.",
        "",
        "| measurement | files | median s | files/s | CPU us/file | of which parent | cores busy with other jobs at start (min-max) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["rows"]:
        load = row.get("busy_cores_before") or row["load_before"]
        cpu = row.get("median_cpu_s")
        cpu_text = f"{cpu / row['files'] * 1e6:.1f}" if cpu is not None else ""
        parent = row.get("median_parent_cpu_s")
        # Only where a pool ran (below MIN_FILES_FOR_POOL files "pool" is one process: parent = all).
        pooled = parent is not None and cpu is not None and parent < 0.9 * cpu
        parent_text = f"{parent / row['files'] * 1e6:.1f}" if pooled else ""
        lines.append(
            f"| {row['name']} | {row['files']:,} | {row['median_s']:.3f} | {row['files_per_s']:,.0f} | "
            f"{cpu_text} | {parent_text} | {min(load):.2f}-{max(load):.2f} |"
        )
    scan, raw = rows["scan (pool, 2 processes)"], rows["raw read (1 process)"]
    one, pyd = rows["scan (1 process)"], rows["pydicom dcmread(stop_before_pixels) (1 process)"]
    cold_scan, cold_raw = rows["cold: scan (pool)"], rows["cold: raw read (1 process)"]
    lines += [
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| >= 50,000 files/s warm | {scan['files_per_s']:,.0f} files/s | {'met' if scan['files_per_s'] >= 50_000 else 'NOT met'} |",
        f"| cold within 1.2x of a raw read | scan {cold_scan['median_s']:.2f} s / raw {cold_raw['median_s']:.2f} s = "
        f"{cold_scan['median_s'] / cold_raw['median_s']:.2f}x | {'met' if cold_scan['median_s'] <= 1.2 * cold_raw['median_s'] else 'NOT met'} |",
        f"| >= 10x pydicom stop_before_pixels | pool {scan['files_per_s'] / pyd['files_per_s']:.1f}x, one process "
        f"{one['files_per_s'] / pyd['files_per_s']:.1f}x | {'met' if one['files_per_s'] >= 10 * pyd['files_per_s'] else 'NOT met'} |",
        f"| >= 10x pydicom, by CPU time per file (load-independent) | "
        f"{_cpu_ratio(pyd, one):.1f}x (varied, no shared layout: "
        f"{_cpu_ratio(rows['varied: pydicom dcmread(stop_before_pixels)'], rows['varied: scan (1 process)']):.1f}x) | |",
        f"| 50,000 files/s on 2 idle cores, projected from CPU time | "
        f"{2 / (one['median_cpu_s'] / one['files']):,.0f} files/s (2 / CPU s per file, one process) | |",
        f"| >= 10x pydicom, files that share no layout | one process "
        f"{rows['varied: scan (1 process)']['files_per_s'] / rows['varied: pydicom dcmread(stop_before_pixels)']['files_per_s']:.1f}x | |",
        f"| (warm) scan vs raw read | pool {scan['median_s'] / raw['median_s']:.2f}x, one process {one['median_s'] / raw['median_s']:.2f}x of the raw read's time | |",
    ]
    return "\n".join(lines)


def _cpu_ratio(slow: dict[str, Any], fast: dict[str, Any]) -> float:
    return float((slow["median_cpu_s"] / slow["files"]) / (fast["median_cpu_s"] / fast["files"]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--large-files", type=int, default=400)
    parser.add_argument("--pydicom-files", type=int, default=2_000)
    parser.add_argument("--varied-files", type=int, default=2_000)
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=30,
        help="seconds to wait for other jobs to calm down before each run",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench")
    parser.add_argument("--quick", action="store_true", help="2,000 small files, 100 large, 1 run")
    parser.add_argument("--render", type=Path, help="print the tables of a past result and exit")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return
    if args.quick:
        args.files, args.large_files, args.pydicom_files, args.varied_files, args.runs = (
            2_000,
            100,
            500,
            500,
            1,
        )
    result = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"scan-{stamp}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nwritten: {out.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
