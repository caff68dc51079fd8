"""Old code against new, side by side: the same CLI commands on the same files, runs interleaved, medians.

``old`` is a commit's ``src/`` (``git archive``, read-only) put first on ``PYTHONPATH``; ``new`` is this
checkout's ``src/``. On a shared machine the absolute times move with other jobs; runs alternate old/new
and new/old so the ratios hold. Prints a markdown table and writes the runs to ``--json``.

    .venv/bin/python bench/compare_commits.py --commit e356459 --big FILE --many FOLDER --password-file P

Cases: ``seal``/``unseal`` of ``--big`` (one large Part 10 file) and of ``--many`` (a folder); with
``--scan``, ``scan`` of ``--many``; with ``--media``, ``burn`` of ``--many`` to an ISO image (no escrow, the
offline viewer copied into the old tree when this checkout has it built) and ``open`` of that image.
``--media`` needs ``--many`` to be one study of real instances: ``--make DIR`` writes such inputs
(bench_cms's big file, bench_media's CT study) and prints the command that compares them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
#: The built offline viewer (git-ignored, `make viewer`): ``git archive`` of an old commit lacks it.
_VIEWER = Path("dcmseal") / "media" / "viewer"
#: Exit codes a case accepts: scan exits 4 when it finds anything (a result, not a failure).
_ACCEPTED = {"scan": {0, 4}}


def _environment(src: Path, home: Path) -> dict[str, str]:
    """Defaults everywhere (no DCMSEAL_*), ``src`` first on the path, config and data (registry, audit
    log) in ``home``: old and new never share a registry whose schema may differ."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCMSEAL_")}
    env["PYTHONPATH"] = str(src)
    env["XDG_CONFIG_HOME"] = str(home / "config")
    env["XDG_DATA_HOME"] = str(home / "data")
    return env


def _timed(command: list[str], env: dict[str, str], accepted: set[int]) -> tuple[float, float | None]:
    """Wall clock of ``command`` and its reported ``summary.elapsed_s``, after a ``sync``."""
    os.sync()
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode not in accepted:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    try:
        own = float(json.loads(proc.stdout)["summary"]["elapsed_s"])
    except (ValueError, KeyError, TypeError):
        own = None
    return wall, own


def _cases(args: argparse.Namespace, dcmseal: str, out: Path) -> list[tuple[str, list[str]]]:
    pw = ["--password-file", str(args.password_file), "--json"]
    cases = [
        ("seal big", [dcmseal, "seal", str(args.big), "--out", str(out / "sb"), *pw]),
        ("unseal big", [dcmseal, "unseal", str(out / "sb"), "--out", str(out / "ub"), *pw]),
        ("seal many", [dcmseal, "seal", str(args.many), "--out", str(out / "sm"), *pw]),
        ("unseal many", [dcmseal, "unseal", str(out / "sm"), "--out", str(out / "um"), *pw]),
    ]
    if args.scan:
        cases.append(("scan", [dcmseal, "scan", str(args.many), "--json"]))
    if args.media:
        image = str(out / "medium.iso")
        cases += [
            (
                "burn",
                [dcmseal, "burn", str(args.many), "--out", image, "--format", "iso", "--no-escrow", *pw],
            ),
            ("open", [dcmseal, "open", image, "--out", str(out / "opened"), *pw]),
        ]
    return cases


def make_inputs(folder: Path, *, big_mib: int, files: int, file_kib: int) -> None:
    """Write ``big.dcm``, the study ``many/``, and a password file into ``folder``."""
    sys.path.insert(0, str(REPO / "bench"))
    import bench_cms
    import bench_media

    folder.mkdir(parents=True, exist_ok=True)
    bench_cms.write_part10(folder / "big.dcm", big_mib * MIB, 0)
    bench_media.make_study(folder / "many", files, file_kib * 1024)
    password = folder / "password"
    password.write_text("violet kettle drums across seven harbours\n")
    password.chmod(0o600)


def _old_tree(commit: str, work: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
    old_src = work / "src"
    built = REPO / "src" / _VIEWER
    if built.is_dir() and not (old_src / _VIEWER).exists():
        shutil.copytree(built, old_src / _VIEWER)
    return old_src


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--commit", help="the old code: a commit of this repository")
    parser.add_argument("--big", type=Path, help="one large Part 10 file")
    parser.add_argument("--many", type=Path, help="a folder of many Part 10 files (one study for --media)")
    parser.add_argument("--password-file", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scan", action="store_true", help="also time `dcmseal scan` of --many")
    parser.add_argument(
        "--media", action="store_true", help="also time `burn` of --many to an ISO and `open`"
    )
    parser.add_argument("--json", type=Path, default=None, help="where to write every run")
    parser.add_argument("--make", type=Path, default=None, help="write inputs into this folder and stop")
    parser.add_argument("--big-mib", type=int, default=256, help="--make: size of big.dcm")
    parser.add_argument("--files", type=int, default=500, help="--make: instances in many/")
    parser.add_argument("--file-kib", type=int, default=256, help="--make: size of each instance")
    args = parser.parse_args(argv)

    if args.make is not None:
        make_inputs(args.make, big_mib=args.big_mib, files=args.files, file_kib=args.file_kib)
        print(
            f"{sys.executable} {__file__} --commit COMMIT --big {args.make / 'big.dcm'} --many {args.make / 'many'}"
            f" --password-file {args.make / 'password'} --scan --media"
        )
        return 0
    if not (args.commit and args.big and args.many and args.password_file):
        parser.error("--commit, --big, --many and --password-file are required (or --make DIR)")

    dcmseal = str(Path(sys.executable).with_name("dcmseal"))
    work = Path(tempfile.mkdtemp(prefix="dcmseal-compare-"))
    runs: dict[str, list[float | None]] = {}
    names: list[str] = []
    try:
        sources = {"old": _old_tree(args.commit, work), "new": REPO / "src"}
        for round_index in range(args.rounds):
            order = ("old", "new") if round_index % 2 == 0 else ("new", "old")
            for which in order:
                out = work / f"out-{which}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                env = _environment(sources[which], work / f"home-{which}")
                for name, command in _cases(args, dcmseal, out):
                    wall, own = _timed(command, env, _ACCEPTED.get(name, {0}))
                    if name not in names:
                        names.append(name)
                    runs.setdefault(f"{name}|{which}|wall", []).append(wall)
                    runs.setdefault(f"{name}|{which}|own", []).append(own)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("| case | old wall s | new wall s | old/new | old own s | new own s | old/new |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        cells = []
        for measure in ("wall", "own"):
            old = [v for v in runs[f"{name}|old|{measure}"] if v is not None]
            new = [v for v in runs[f"{name}|new|{measure}"] if v is not None]
            if old and new:
                o, n = statistics.median(old), statistics.median(new)
                cells += [f"{o:.2f}", f"{n:.2f}", f"{o / n:.2f}x"]
            else:
                cells += ["", "", ""]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
