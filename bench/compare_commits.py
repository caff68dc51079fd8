"""Old code against new, side by side: the same CLI commands on the same files, runs interleaved, medians.

``old`` is a commit's ``src/`` (``git archive``, read-only) put first on ``PYTHONPATH``; ``new`` is the working
tree. On a shared machine the absolute times move with other jobs; runs alternate old/new and new/old so the
ratios hold. Prints a markdown table and writes the runs to ``--json``.

    .venv/bin/python bench/compare_commits.py --commit e356459 --big FILE --many FOLDER --password-file P
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


def _environment(old_src: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCMSEAL_")}
    if old_src is not None:
        env["PYTHONPATH"] = str(old_src)
    return env


def _timed(command: list[str], old_src: Path | None) -> tuple[float, float | None]:
    """Wall clock of ``command`` and its reported ``summary.elapsed_s``, after a ``sync``."""
    os.sync()
    started = time.perf_counter()
    proc = subprocess.run(command, env=_environment(old_src), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    try:
        own = float(json.loads(proc.stdout)["summary"]["elapsed_s"])
    except (ValueError, KeyError, TypeError):
        own = None
    return wall, own


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", required=True, help="the old code: a commit of this repository")
    parser.add_argument("--big", type=Path, required=True, help="one large Part 10 file")
    parser.add_argument("--many", type=Path, required=True, help="a folder of many Part 10 files")
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="where to write every run")
    args = parser.parse_args(argv)

    dcmseal = str(Path(sys.executable).with_name("dcmseal"))
    work = Path(tempfile.mkdtemp(prefix="dcmseal-compare-"))
    runs: dict[str, list[float | None]] = {}
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.commit, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        old_src = work / "src"
        pw = ["--password-file", str(args.password_file), "--json"]
        for round_index in range(args.rounds):
            order = ("old", "new") if round_index % 2 == 0 else ("new", "old")
            for which in order:
                out = work / f"out-{which}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                src = old_src if which == "old" else None
                for name, command in (
                    ("seal big", [dcmseal, "seal", str(args.big), "--out", str(out / "sb"), *pw]),
                    ("unseal big", [dcmseal, "unseal", str(out / "sb"), "--out", str(out / "ub"), *pw]),
                    ("seal many", [dcmseal, "seal", str(args.many), "--out", str(out / "sm"), *pw]),
                    ("unseal many", [dcmseal, "unseal", str(out / "sm"), "--out", str(out / "um"), *pw]),
                ):
                    wall, own = _timed(command, src)
                    runs.setdefault(f"{name}|{which}|wall", []).append(wall)
                    runs.setdefault(f"{name}|{which}|own", []).append(own)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("| case | old wall s | new wall s | old/new | old own s | new own s | old/new |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("seal big", "unseal big", "seal many", "unseal many"):
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
