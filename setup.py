"""Build hook: every sdist and wheel carries the offline web viewer, built from viewer/ with npm when needed.

Everything else about the package is in pyproject.toml. The viewer bundle (src/dcmseal/media/viewer/,
package data) is not in git: `make viewer` builds it for development, and this hook builds it for
`pip install .`, `python -m build` and `pip wheel` when it is missing or older than its sources (as Jupyter
extensions build their JavaScript). The sdist carries both the sources and the built bundle, so a wheel
built from the sdist needs no Node.js. Without Node.js and npm and without a bundle, the build fails with
one clear message instead of producing a package whose `dcmseal burn` cannot write the viewer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
VIEWER_SOURCES = ROOT / "viewer"
BUNDLE = ROOT / "src" / "dcmseal" / "media" / "viewer"
#: Written last by viewer/build.mjs: the bundle is complete when it exists (the Makefile's stamp too).
BUNDLE_STAMP = BUNDLE / "VIEWER" / "VIEWER.JS"
NO_NODE = (
    "the offline web viewer (src/dcmseal/media/viewer/) is not built and Node.js and npm are not on PATH: "
    "install Node.js 20 or later with npm and build again, or build from an sdist (it carries the bundle)"
)


def _sources() -> list[Path]:
    """The files the bundle is built from (none in an installation without viewer/)."""
    if not (VIEWER_SOURCES / "package.json").is_file():
        return []
    names = [VIEWER_SOURCES / n for n in ("package.json", "package-lock.json", "build.mjs", "tsconfig.json")]
    return [p for p in names if p.is_file()] + sorted(
        p for p in (VIEWER_SOURCES / "src").rglob("*") if p.is_file()
    )


def bundle_is_current() -> bool:
    """The bundle exists and no source is newer than it."""
    if not BUNDLE_STAMP.is_file():
        return False
    built = BUNDLE_STAMP.stat().st_mtime
    return all(p.stat().st_mtime <= built for p in _sources())


def _run(*command: str) -> None:
    print(f"building the viewer: {' '.join(command)} (in viewer/)", file=sys.stderr)
    subprocess.run(command, cwd=VIEWER_SOURCES, check=True)


def build_viewer() -> None:
    """Build the bundle with npm when it is missing or stale; fail clearly when it cannot be had."""
    if bundle_is_current():
        return
    npm, node = shutil.which("npm"), shutil.which("node")
    if not _sources() or npm is None or node is None:
        if BUNDLE_STAMP.is_file():
            print(
                "warning: the viewer bundle is older than viewer/ and cannot be rebuilt here", file=sys.stderr
            )
            return
        raise SystemExit(f"error: {NO_NODE}")
    lock = VIEWER_SOURCES / "node_modules" / ".package-lock.json"
    if not lock.is_file() or lock.stat().st_mtime < (VIEWER_SOURCES / "package-lock.json").stat().st_mtime:
        _run(npm, "ci", "--no-audit", "--no-fund")
    _run(npm, "run", "build")
    if not BUNDLE_STAMP.is_file():
        raise SystemExit(f"error: `npm run build` in viewer/ did not write {BUNDLE_STAMP}")


class BuildPyWithViewer(build_py):
    """build_py that first makes sure the viewer bundle (package data) is there and current."""

    def run(self) -> None:
        build_viewer()
        super().run()


class SdistWithViewer(sdist):
    """An sdist with the built bundle beside the viewer sources (a wheel built from it needs no Node.js)."""

    def run(self) -> None:
        build_viewer()
        super().run()


setup(cmdclass={"build_py": BuildPyWithViewer, "sdist": SdistWithViewer})
