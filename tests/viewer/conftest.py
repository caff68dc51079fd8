"""Fixtures for the viewer tests: node and the viewer's npm tree, Chromium, and media burned for the browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from pydicom.data import get_testdata_file

from dcmseal.audit import FileSink
from dcmseal.keys.registry import Registry
from dcmseal.media.burn import BurnRequest, BurnResult, burn
from dcmseal.media.profiles import Profile
from dcmseal.media.webviewer import BUNDLE_DIR
from dcmseal.reader.isofiles import extract_iso
from tests.part10.dicomfiles import FAST_ITERATIONS
from tests.peers.tools import in_ci, require_tool

VIEWER_SRC = Path(__file__).resolve().parents[2] / "viewer"
#: The test-only RSA key pair of ../shared/vectors (copied beside the viewer's unit-test vectors).
TEST_KEY = VIEWER_SRC / "test" / "vectors" / "testonly-rsa2048-key.pem"
TEST_CERT = VIEWER_SRC / "test" / "vectors" / "testonly-rsa2048-cert.pem"
#: The password of the media the browser opens (a test password, never a real one; the policy accepts it).
VIEWER_PASSWORD = "Viewer-test-Kestrel-amber-lantern"
#: pydicom's samples: CT (16-bit signed, rescale), MR (16-bit, window in the file), US (JPEG baseline YBR_FULL_422,
#: 30 frames), RGB (implicit VR RGB, converted to explicit VR on burn), RGB JPEG lossless (process 14 SV1) and
#: PALETTE COLOR (8-bit indices, 16-bit tables).
SAMPLES = {
    "CT": "CT_small.dcm",
    "MR": "MR_small.dcm",
    "US": "examples_ybr_color.dcm",
    "OT": "SC_rgb_jpeg_dcmd.dcm",
    "JPEG_LOSSLESS": "SC_rgb_jpeg_gdcm.dcm",
    "PALETTE": "examples_palette.dcm",
}
#: Patient ID of examples_palette.dcm (its modality, US, is the multi-frame sample's too).
PALETTE_PATIENT = "11-05-25-142825"


def sample(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom's test file {name} is missing"
    return Path(path)


def artifacts_dir() -> Path:
    """Where screenshots go: $DCMSEAL_TEST_ARTIFACTS, else tests/artifacts/ (git-ignored)."""
    base = os.environ.get("DCMSEAL_TEST_ARTIFACTS")
    path = Path(base) if base else Path(__file__).resolve().parents[1] / "artifacts"
    return path / "viewer"


def _skip_or_fail(message: str) -> None:
    if in_ci():
        pytest.fail(f"{message} (run `make viewer` and `make system-deps`)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def node_bin() -> str:
    return require_tool("node", "nodejs")


@pytest.fixture(scope="session")
def viewer_tree(node_bin: str) -> Path:
    """The viewer's sources with node_modules installed (`make viewer` runs npm ci) and the bundle built."""
    if not (VIEWER_SRC / "node_modules" / "playwright-core").is_dir():
        _skip_or_fail("viewer/node_modules is missing: run `make viewer`")
    bundle = BUNDLE_DIR / "VIEWER" / "VIEWER.JS"
    if not (BUNDLE_DIR / "INDEX.HTM").is_file() or not bundle.is_file():
        _skip_or_fail("the viewer bundle is not built: run `make viewer`")
    newest = max(p.stat().st_mtime for p in (VIEWER_SRC / "src").iterdir())
    if newest > bundle.stat().st_mtime:
        # The browser tests run the built bundle: testing stale code would prove nothing.
        _skip_or_fail("the viewer bundle is older than viewer/src: run `make viewer`")
    return VIEWER_SRC


@pytest.fixture(scope="session")
def chromium_bin() -> str:
    return require_tool("chromium", "chromium")


@dataclass(frozen=True)
class Browser:
    """Runs viewer/test/browser.mjs (playwright-core driving Debian's Chromium) and returns its JSON."""

    node: str
    tree: Path
    chromium: str

    def run(self, scenario: str, medium: Path, **config: Any) -> dict[str, Any]:
        document = {"scenario": scenario, "medium": str(medium), "chromium": self.chromium, **config}
        done = subprocess.run(
            [self.node, str(self.tree / "test" / "browser.mjs"), json.dumps(document)],
            cwd=self.tree,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"browser.mjs failed:\n{done.stderr[-4000:]}"
        result: dict[str, Any] = json.loads(done.stdout)
        return result


@pytest.fixture(scope="session")
def browser(node_bin: str, viewer_tree: Path, chromium_bin: str) -> Browser:
    return Browser(node=node_bin, tree=viewer_tree, chromium=chromium_bin)


def burn_medium(
    workdir: Path,
    sources: Sequence[Path],
    *,
    password: str | None = VIEWER_PASSWORD,
    output_format: str = "iso",
    profile: Profile | None = None,
    iterations: int = FAST_ITERATIONS,
    viewer: bool = True,
    certificates: Sequence[x509.Certificate] = (),
) -> tuple[BurnResult, Path]:
    """Burn ``sources`` and return the result and the medium's folder (an ISO is extracted with our reader)."""
    workdir.mkdir(parents=True, exist_ok=True)
    registry = Registry.open(f"sqlite:///{workdir / 'registry.sqlite3'}")
    try:
        out = workdir / ("medium.iso" if output_format == "iso" else "medium")
        request = BurnRequest(
            sources=tuple(str(s) for s in sources),
            out=out,
            operator="viewer-test",
            output_format=output_format,
            profile=profile,
            password=password.encode() if password is not None else None,
            certificates=tuple(certificates),
            encrypt=password is not None or bool(certificates),
            viewer=viewer,
            iterations=iterations,
        )
        result = burn(request, registry=registry, audit=FileSink(workdir / "audit.log"))
    finally:
        registry.close()
    if output_format != "iso":
        return result, out
    folder = workdir / "disc"
    extract_iso(out, folder)
    return result, folder


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
