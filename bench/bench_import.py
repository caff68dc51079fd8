"""Import a plain medium into Orthanc over C-STORE: ``dcmseal import`` against DCMTK ``dcmsend +sd +r``.

One run, on this machine, with one generated plain medium (``--files`` CT instances of ``--file-kib`` each,
Explicit VR Little Endian, one study, conformant File IDs, no DICOMDIR; the instances of ``bench_media.py``):

1. ``dcmsend +sd +r`` (scan the folder, recurse; one association) sends the medium to a real Orthanc;
2. ``dcmseal import`` sends the same files to the same Orthanc, as a user runs it: it also opens the medium,
   scans every file, writes each prepared file with a zero preamble and rescans it, journals every state
   change (SQLite, ``synchronous=FULL``) and verifies with C-FIND afterwards;
3. the target of issue 13: dcmseal's throughput at least 0.8 of dcmsend's (medians, the runs interleaved);
4. with ``--profile``, a cProfile of the import in one process, to see where its time goes.

Every timed run gets a fresh Orthanc with empty storage (so no run pays for another's stored or deleted
files; started before the clock, stopped after), the same AE titles (our calling AE title is the one
modality Orthanc knows) and the same loopback ports. The medium sits in the page cache (read once before);
dirty pages are written back before each run. Wall clock covers the whole command, interpreter start
included. MB = 10^6 bytes.

    .venv/bin/python bench/bench_import.py                 # 400 x 512 KiB, 3 runs each: a few minutes
    .venv/bin/python bench/bench_import.py --quick         # 40 files, 1 run
    .venv/bin/python bench/bench_import.py --profile       # and the cProfile of one import

Writes ``bench/results/import-<UTC time>[-quick].json`` (+ ``.md``, and ``.prof`` with ``--profile``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cms as cmsb  # machine info, the measured launcher, the quiet-machine logic
import bench_media as mediab  # the generated CT study

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.peers.orthanc import OrthancPeer, running_orthanc  # noqa: E402 - after the path is set

MB = 1_000_000
PACS_AET = "BENCHPACS"
OUR_AET = "DCMSEAL"
#: Issue 13, "Performance": dcmseal import >= 0.8 x the throughput of dcmsend +sd +r.
TARGET_FRACTION = 0.8


def make_medium(root: Path, files: int, size: int) -> dict[str, Any]:
    """A plain folder medium: ``files`` instances under DICOM/S000/ with conformant File IDs."""
    study = root / "DICOM" / "S000"
    made = mediab.make_study(study, files, size)
    for i, name in enumerate(sorted(made["uids"])):
        (study / name).rename(study / f"I{i:07d}")
    return {"files": files, "bytes": files * size, "generate_s": made["generate_s"]}


def warm(root: Path) -> None:
    """Read every file once, so both tools read the medium from the page cache."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fp:
                while fp.read(1 << 20):
                    pass


@contextlib.contextmanager
def fresh_orthanc(work: Path, ports: tuple[int, int] | None) -> Iterator[OrthancPeer]:
    """An Orthanc with empty storage that accepts C-STORE and C-FIND from OUR_AET only."""
    work.mkdir(parents=True)
    config = {
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": False,
        "DicomModalities": {"dcmseal": [OUR_AET, "127.0.0.1", 104]},
    }
    with running_orthanc(work, aet=PACS_AET, extra_config=config, ports=ports) as peer:
        yield peer


def dcmsend(medium: Path, peer: OrthancPeer) -> list[str]:
    # +sd: scan the directory; +r: recurse; -aet: the calling AE title Orthanc knows (as dcmseal's).
    return [
        "dcmsend",
        "-aet",
        OUR_AET,
        "-aec",
        PACS_AET,
        "+sd",
        "+r",
        "127.0.0.1",
        str(peer.dicom_port),
        str(medium),
    ]


def dcmseal_import(medium: Path, peer: OrthancPeer, work: Path) -> list[str]:
    return [
        *cmsb.dcmseal_cli(),
        "import",
        str(medium),
        "--to",
        f"dicom://{PACS_AET}@127.0.0.1:{peer.dicom_port}",
        "--aet",
        OUR_AET,
        "--journal",
        str(work / "journal.sqlite3"),
        "--quarantine",
        str(work / "quarantine"),
        "--json",
    ]


def timed_run(
    tool: str, medium: Path, work: Path, files: int, ports: tuple[int, int] | None
) -> tuple[dict[str, Any], tuple[int, int]]:
    """One timed send by ``tool`` into a fresh Orthanc; checks that Orthanc then holds every instance."""
    with fresh_orthanc(work / "pacs", ports) as peer:
        cmd = dcmsend(medium, peer) if tool == "dcmsend" else dcmseal_import(medium, peer, work)
        env = cmsb.child_env() | {
            "XDG_DATA_HOME": str(work / "data"),
            "XDG_CONFIG_HOME": str(work / "config"),
        }
        cmsb.settle()
        quiet = cmsb.wait_for_quiet()
        busy_before = cmsb.system_busy_s()
        proc = cmsb.check(cmsb.run_measured(cmd, env=env), tool)
        busy = cmsb.system_busy_s() - busy_before
        held = len(peer.ids("/instances"))
        if held != files:
            raise SystemExit(f"{tool}: Orthanc holds {held} instances, expected {files}")
        run: dict[str, Any] = {
            "wall_s": round(proc.wall_s, 3),
            "maxrss_mb": round(proc.maxrss_mb, 1),
            "machine_busy_cores": round(busy / proc.wall_s, 2),
            "quiet_before": quiet,
        }
        if tool == "dcmseal":
            summary = json.loads(proc.stdout)["summary"]
            run["elapsed_s"] = summary["elapsed_s"]
            run["stored"] = summary["stored"]
        return run, (peer.http_port, peer.dicom_port)


def profile_import(medium: Path, work: Path, ports: tuple[int, int] | None, out: Path) -> list[str]:
    """cProfile of one import in this process; the top functions by cumulative time."""
    from dcmseal.audit import FileSink
    from dcmseal.importer import DimseTarget
    from dcmseal.importer.pipeline import ImportRequest, import_medium

    with fresh_orthanc(work / "pacs", ports) as peer:
        request = ImportRequest(
            medium=medium,
            target=DimseTarget(called_aet=PACS_AET, host="127.0.0.1", port=peer.dicom_port),
            operator="bench",
            journal=work / "journal.sqlite3",
            quarantine=work / "quarantine",
            calling_aet=OUR_AET,
        )
        profiler = cProfile.Profile()
        profiler.enable()
        result = import_medium(request, audit=FileSink(work / "audit.log"))
        profiler.disable()
        if not result.ok:
            raise SystemExit(f"profiled import failed: {result.peer_error}")
    profiler.dump_stats(out)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    return text.getvalue().splitlines()


def markdown(result: dict[str, Any]) -> str:
    m = result["medium"]
    lines = [
        f"### Import into Orthanc over C-STORE ({result['when']}, git {result['machine'].get('git')})",
        "",
        f"{m['files']} instances x {m['bytes'] // m['files'] // 1024} KiB = {m['bytes'] / MB:.0f} MB, plain folder "
        f"medium, one study; a fresh Orthanc {result['orthanc']} per run; {result['runs']} runs each, interleaved.",
        "",
        "| tool | median wall s | runs (s) | MB/s | instances/s | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for tool in ("dcmsend", "dcmseal"):
        t = result["tools"][tool]
        walls = ", ".join(f"{r['wall_s']:.2f}" for r in t["runs"])
        lines.append(
            f"| {t['command']} | {t['median_s']:.2f} | {walls} | "
            f"{t['mb_per_s']:.1f} | {t['instances_per_s']:.1f} | {max(r['maxrss_mb'] for r in t['runs']):.0f} |"
        )
    v = result["verdict"]
    lines += [
        "",
        f"dcmseal / dcmsend throughput: **{v['fraction']:.2f}** (target >= {TARGET_FRACTION}): "
        f"**{'met' if v['met'] else 'NOT met'}**.",
    ]
    if result.get("profile"):
        lines += ["", "```", *result["profile"][:40], "```"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--file-kib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 files, 1 run")
    parser.add_argument("--profile", action="store_true", help="also a cProfile of one import")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.runs = 40, 1
    if shutil.which("dcmsend") is None:
        raise SystemExit("dcmsend (DCMTK) is not installed")
    cmsb.become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="dcmseal-bench-import-", dir=args.workdir))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        medium = work / "medium"
        info = make_medium(medium, args.files, args.file_kib * 1024)
        warm(medium)
        runs: dict[str, list[dict[str, Any]]] = {"dcmsend": [], "dcmseal": []}
        ports: tuple[int, int] | None = None
        for n in range(args.runs):
            for tool in ("dcmsend", "dcmseal"):
                run, ports = timed_run(tool, medium, work / f"{tool}-{n}", args.files, ports)
                runs[tool].append(run)
                print(f"{tool} run {n + 1}: {run['wall_s']:.2f} s", file=sys.stderr)
        tools: dict[str, Any] = {}
        for tool, command in (("dcmsend", "`dcmsend +sd +r`"), ("dcmseal", "`dcmseal import`")):
            median = statistics.median(r["wall_s"] for r in runs[tool])
            tools[tool] = {
                "command": command,
                "runs": runs[tool],
                "median_s": median,
                "mb_per_s": info["bytes"] / MB / median,
                "instances_per_s": args.files / median,
            }
        fraction = tools["dcmsend"]["median_s"] / tools["dcmseal"]["median_s"]
        result: dict[str, Any] = {
            "when": stamp,
            "machine": cmsb.machine(),
            "orthanc": _orthanc_version(),
            "medium": info,
            "runs": args.runs,
            "tools": tools,
            "verdict": {
                "fraction": round(fraction, 3),
                "target": TARGET_FRACTION,
                "met": fraction >= TARGET_FRACTION,
            },
        }
        out = REPO / "bench" / "results" / f"import-{stamp}{'-quick' if args.quick else ''}"
        out.parent.mkdir(exist_ok=True)
        if args.profile:
            result["profile"] = profile_import(medium, work / "profile", ports, out.with_suffix(".prof"))
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        text = markdown(result)
        out.with_suffix(".md").write_text(text)
        print(text)
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _orthanc_version() -> str:
    with contextlib.suppress(OSError):
        import subprocess

        found = subprocess.run(
            ["/usr/sbin/Orthanc", "--version"], capture_output=True, text=True, check=False
        )
        first = (found.stdout or found.stderr).splitlines()
        if first:
            return first[0].strip()
    return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
