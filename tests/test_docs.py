"""The documentation works: every Python block of docs/library.md runs, and the site builds with --strict."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dcmseal import cms
from tests.conftest import RsaIdentityFactory
from tests.pydicom_data import pydicom_file

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_PAGE = ROOT / "docs" / "library.md"
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def _blocks(page: Path) -> list[str]:
    return _PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_library_page_has_the_examples_it_promises() -> None:
    code = "\n".join(_blocks(LIBRARY_PAGE))
    for call in (
        "dcmseal.seal(",
        "dcmseal.unseal(",
        "certificates=",
        "dcmseal.burn(",
        "open_medium(",
        "scan(",
        "context=context",
    ):
        assert call in code, call


def test_every_example_of_the_library_page_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rsa_identity_factory: RsaIdentityFactory
) -> None:
    shutil.copyfile(pydicom_file("CT_small.dcm"), tmp_path / "CT_small.dcm")
    (tmp_path / "identity").mkdir()
    cert, key = rsa_identity_factory(tmp_path / "identity", "docs recipient")
    shutil.copyfile(cert, tmp_path / "recipient-cert.pem")
    shutil.copyfile(key, tmp_path / "recipient-key.pem")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_library"}
    printed = io.StringIO()
    for number, block in enumerate(_blocks(LIBRARY_PAGE), start=1):
        with contextlib.redirect_stdout(printed):
            try:
                exec(compile(block, f"{LIBRARY_PAGE.name} block {number}", "exec"), namespace)  # noqa: S102
            except Exception as exc:
                pytest.fail(f"docs/library.md block {number} failed: {type(exc).__name__}: {exc}\n{block}")
    output = printed.getvalue()
    assert "password refused" in output
    assert "wrong password or key" in output
    assert "Kestrel" not in output  # no example prints a password
    assert (tmp_path / "disc.iso").is_file()
    # The shared context: three files unsealed, one key derived (each call alone would derive it again).
    context = namespace["context"]
    assert isinstance(context, cms.Context)
    assert sum(1 for p in Path("received").rglob("*") if p.is_file()) == 3
    assert context.kdf_cache.derivations == 1
    assert Path("audit.log").read_bytes().count(b"\n") >= 2  # the burn's Export and the open's Import


def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    """mkdocs --strict: a broken reference, or a docstring mkdocstrings cannot read, fails here and in CI."""
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        message = "mkdocs is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reference = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "Seal a DICOM file into a Secure DICOM File" in reference  # the docstrings are in
