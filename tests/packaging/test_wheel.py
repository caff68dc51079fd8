"""dcmseal as users install it (issue 14 §2): the sdist and the wheel carry the viewer, and a wheel installed into
a fresh virtualenv outside the repository burns and opens a medium.

The builds copy the package's files to tmp_path first: nothing is written into the repository. Both tests ask
the package index for the build backend (build isolation), as `pip install .` and `python -m build` do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from tests.part10.dicomfiles import FAST_ITERATIONS, PASSWORD
from tests.pydicom_data import pydicom_file
from tests.viewer_bundle import require_viewer_bundle

REPOSITORY = Path(__file__).resolve().parents[2]
BUNDLE = REPOSITORY / "src" / "dcmseal" / "media" / "viewer"
#: Byproducts of a development checkout that a build must neither need nor carry.
_NOT_SOURCES = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.egg-info", "node_modules", "dist", "test-dist", "build"
)


def _copy_project(target: Path, *, with_bundle: bool) -> Path:
    """The files a build of dcmseal reads (pyproject.toml, setup.py, MANIFEST.in, README, src/, viewer/)."""
    target.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPOSITORY / name, target / name)
    shutil.copytree(REPOSITORY / "src", target / "src", ignore=_NOT_SOURCES)
    shutil.copytree(REPOSITORY / "viewer", target / "viewer", ignore=_NOT_SOURCES)
    copied = target / "src" / "dcmseal" / "media" / "viewer"
    if not with_bundle:
        shutil.rmtree(copied, ignore_errors=True)
    return target


def _environment(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH into the repository, no dcmseal settings."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("DCMSEAL_")}
    env.update(extra)
    return env


def _build(project: Path, out: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = _environment() if path is None else _environment(PATH=path)
    return subprocess.run(
        [sys.executable, "-m", "build", *args, "--outdir", str(out), str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def _need_bundle() -> None:
    require_viewer_bundle()


@pytest.mark.slow
def test_a_build_without_node_and_without_a_bundle_fails_with_one_clear_line(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "project", with_bundle=False)
    no_tools = tmp_path / "bin"  # a PATH with neither node nor npm
    no_tools.mkdir()
    result = _build(project, tmp_path / "dist", "--wheel", path=str(no_tools))
    assert result.returncode != 0
    assert (
        "the offline web viewer (src/dcmseal/media/viewer/) is not built and Node.js and npm are not on PATH"
        in (result.stdout + result.stderr)
    )
    assert not list((tmp_path / "dist").glob("*.whl")) if (tmp_path / "dist").exists() else True


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.usefixtures("_need_bundle")
def test_the_wheel_installed_outside_the_repository_burns_and_opens_a_medium(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "project", with_bundle=True)
    dist = tmp_path / "dist"
    built = _build(project, dist)  # the sdist, then the wheel built from the unpacked sdist
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = dist.glob("dcmseal-*.tar.gz")
    (wheel,) = dist.glob("dcmseal-*.whl")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"setup.py", "viewer/package.json", "viewer/package-lock.json", "viewer/src/main.ts"} <= names
    assert "src/dcmseal/media/viewer/VIEWER/VIEWER.JS" in names
    assert not any(name.startswith("viewer/node_modules") for name in names)
    with zipfile.ZipFile(wheel) as whl:
        packed = set(whl.namelist())
    assert {"dcmseal/media/viewer/INDEX.HTM", "dcmseal/media/viewer/VIEWER/VIEWER.JS"} <= packed
    # validate_message reads the PS3.15 A.5.1 schema from the package
    assert {"dcmseal/audit/schema/audit-message.rng", "dcmseal/audit/schema/audit-message.rnc"} <= packed

    # A fresh virtualenv outside the repository, the wheel installed as a user installs it.
    home = tmp_path / "user"
    home.mkdir()
    environment = venv.EnvBuilder(with_pip=True)
    environment.create(home / "venv")
    python = home / "venv" / "bin" / "python"
    env = _environment(
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        DCMSEAL_SYSTEM_CONFIG=str(home / "no-system-config.toml"),
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        cwd=home, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    def dcmseal(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(home / "venv" / "bin" / "dcmseal"), *(str(a) for a in args)],
            cwd=home, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    where = subprocess.run(
        [str(python), "-c", "import dcmseal; print(dcmseal.__file__)"],
        cwd=home, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    package = Path(where.stdout.strip()).parent
    assert package.is_relative_to(home / "venv")  # not the repository's sources

    (home / "pw.txt").write_text(PASSWORD + "\n")
    study = home / "study"
    study.mkdir()
    shutil.copyfile(pydicom_file("CT_small.dcm"), study / "IM0001")
    burned = dcmseal(
        "burn", study, "--out", home / "usb", "--format", "dir", "--password-file", "pw.txt", "--no-escrow",
        "--iterations", str(FAST_ITERATIONS),
    )  # fmt: skip
    assert burned.returncode == 0, burned.stderr
    # The viewer the wheel carries is on the medium (setup.py rebuilt it if viewer/ was newer than the
    # checkout's bundle, so compare with the installed copy, not the checkout's).
    carried = package / "media" / "viewer"
    for name in ("INDEX.HTM", "VIEWER/VIEWER.JS"):
        assert (home / "usb" / name).read_bytes() == (carried / name).read_bytes(), name
    opened = dcmseal("open", home / "usb", "--out", home / "opened", "--password-file", "pw.txt", "--json")
    assert opened.returncode == 0, opened.stderr
    # The File-set's instances: not its DICOMDIR, nor the manifest of what dcmseal wrote (media/target.py).
    instances = [
        p
        for p in (home / "opened").rglob("*")
        if p.is_file() and p.name not in ("DICOMDIR", ".dcmseal-manifest.json")
    ]
    assert len(instances) == 1
    assert instances[0].read_bytes()[128:132] == b"DICM"
